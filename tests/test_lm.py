"""lm(): the printed summary equals R's summary.lm (through rpy2), and basic identities."""

import numpy as np
import pytest

import simdata
from lmmlite import LmmError, lm
from r_reference import _r, _to_r, require_r


def _r_summary_lines(formula, df):
    ro = _r()
    ro.r("lmm_lm_print <- function(f, d) paste(capture.output(print(summary(lm(as.formula(f), data = d)))), collapse = '\\n')")
    text = str(ro.r["lmm_lm_print"](formula, _to_r(df))[0])
    return _from_residuals(text)


def _from_residuals(text):
    lines = [ln.rstrip() for ln in text.splitlines()]
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Residuals:"))
    body = lines[start:]
    while body and not body[-1]:
        body.pop()
    return body


def _aliased():
    d = simdata.factors()
    d["x2"] = 2 * d["x"] + 1
    return d


CASES = [
    ("sleepstudy", simdata.sleepstudy, "Reaction ~ Days"),
    ("factors", simdata.factors, "y ~ a * b + x"),
    ("no_intercept", simdata.factors, "y ~ 0 + a + x"),
    ("missing", simdata.with_missing, "Reaction ~ Days"),
    ("aliased", _aliased, "y ~ a + x + x2"),
]


@pytest.mark.parametrize("name,make,formula", CASES, ids=[c[0] for c in CASES])
def test_summary_matches_r(name, make, formula):
    require_r()
    df = make()
    ours = _from_residuals(str(lm(formula, df).summary()))
    assert ours == _r_summary_lines(formula, df)


def test_least_squares_identities():
    d = simdata.factors()
    fit = lm("y ~ a + x", d)
    X = np.column_stack([np.ones(len(d)), d["a"] == "lo", d["a"] == "mid", d["x"]]).astype(float)
    beta, *_ = np.linalg.lstsq(X, d["y"].to_numpy(), rcond=None)
    np.testing.assert_allclose(fit.coefficients.to_numpy(), beta, rtol=1e-10)
    assert list(fit.coefficients.index) == ["(Intercept)", "alo", "amid", "x"]
    assert abs(fit.residuals().sum()) < 1e-8


def test_random_terms_point_to_lmer():
    with pytest.raises(LmmError, match="use lmer"):
        lm("Reaction ~ Days + (1 | Subject)", simdata.sleepstudy())


def test_categorical_numeric_column_is_a_factor():
    """A pandas categorical of numbers is a factor (R: factor(group)), not a covariate."""
    import pandas as pd
    d = simdata.factors()
    d["gnum"] = pd.Categorical(d["g"].str[1:].astype(int))
    fit = lm("y ~ x + gnum", d)
    assert list(fit.coefficients.index[:3]) == ["(Intercept)", "x", "gnum1"]
    assert len(fit.coefficients) == 2 + 9
