"""lme4's messages and warnings (singular fits, convergence, scaling) are given by lmmlite too."""

import warnings

import pytest

import simdata
from lmmlite import ConvergenceWarning, SingularFitWarning, lmer
from r_reference import _r, _to_r, require_r

R_CAPTURE = r"""
lmm_messages <- function(f, d) {
  msgs <- character()
  m <- withCallingHandlers(lme4::lmer(as.formula(f), data = d),
    warning = function(w) { msgs <<- c(msgs, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(m) { msgs <<- c(msgs, trimws(conditionMessage(m))); invokeRestart("muffleMessage") })
  msgs
}
"""


def _scaled():
    d = simdata.sleepstudy()
    d["Days"] = d["Days"] * 1e4
    return d


CASES = [
    ("regular", simdata.sleepstudy, "Reaction ~ Days + (Days | Subject)"),
    ("near_singular", simdata.singular, "y ~ x + (1 | g)"),
    ("factor_singular", simdata.factors, "y ~ a + x + (1 + x | g)"),
    ("badly_scaled", _scaled, "Reaction ~ Days + (Days | Subject)"),
]


def _ours(formula, df):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fit = lmer(formula, df)
    return fit, sorted(str(w.message) for w in rec)


@pytest.mark.parametrize("name,make,formula", CASES, ids=[c[0] for c in CASES])
def test_same_messages_as_lme4(name, make, formula):
    require_r()
    df = make()
    ro = _r()
    ro.r(R_CAPTURE)
    theirs = sorted(str(m) for m in ro.r["lmm_messages"](formula, _to_r(df)))
    fit, ours = _ours(formula, df)
    assert ours == theirs
    assert fit.singular == any("singular" in m for m in theirs)


def test_warning_classes():
    with pytest.warns(SingularFitWarning, match="boundary"):
        lmer("y ~ a + x + (1 + x | g)", simdata.factors())
    assert issubclass(ConvergenceWarning, UserWarning)
