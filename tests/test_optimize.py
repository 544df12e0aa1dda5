"""The optimizer stage: one entry point (optimize_theta) for lmer, profiles and bootstrap.

Unit tests on functions whose minimum is known in closed form (no R), and
one cross-check with lme4's profile interval that went wrong while confint
had its own optimizer wrapper.
"""

import warnings

import numpy as np
import pytest

import lmmlite.optimize as optimize_module
from lmmlite import confint, lmer, load
from lmmlite.errors import LmmError, MissingDependencyError
from lmmlite.optimize import have_nlopt, optimize_theta

METHODS = ["lbfgsb"] + (["bobyqa", "nloptwrap"] if have_nlopt() else [])


@pytest.mark.parametrize("method", METHODS)
def test_bounded_quadratic(method):
    """min (x-2)² + (y+1)² + (z-0.5)² with x ≤ 1 and y ≥ 0: at (1, 0, 0.5)."""
    def f(v):
        return (v[0] - 2) ** 2 + (v[1] + 1) ** 2 + (v[2] - 0.5) ** 2

    opt = optimize_theta(f, [0.5, 0.5, 0.0], lower=[-np.inf, 0.0, -np.inf],
                         upper=[1.0, np.inf, np.inf], method=method, checks=False)
    np.testing.assert_allclose(opt.theta, [1.0, 0.0, 0.5], atol=1e-5)
    assert opt.value == pytest.approx(2.0, abs=1e-8)
    assert opt.messages == []


@pytest.mark.parametrize("method", [m for m in METHODS if m != "nloptwrap"])
def test_boundary_escape(method):
    """f(θ) = (θ² - 1)² has a stationary point at the bound θ = 0; the minimum is θ = 1.

    A local method started at 0 sees a zero gradient and stops; the escape
    off the boundary (part of the one entry point) finds the minimum."""
    opt = optimize_theta(lambda t: (t[0] ** 2 - 1) ** 2, [0.0], [0.0], method=method, checks=False)
    assert opt.theta[0] == pytest.approx(1.0, abs=1e-6)
    assert not opt.singular


def test_nothing_to_optimize():
    opt = optimize_theta(lambda t: 3.0, np.zeros(0), np.zeros(0), method="lbfgsb")
    assert opt.value == 3.0 and opt.theta.size == 0


def test_unknown_optimizer_is_an_lmm_error():
    with pytest.raises(LmmError, match="unknown optimizer 'newton'"):
        optimize_theta(lambda t: 0.0, [1.0], [0.0], method="newton")


def test_missing_nlopt(monkeypatch):
    monkeypatch.setattr(optimize_module, "have_nlopt", lambda: False)
    with pytest.raises(MissingDependencyError, match="needs the nlopt package"):
        optimize_theta(lambda t: 0.0, [1.0], [0.0], method="bobyqa")
    # still an ImportError for code that caught that before
    assert issubclass(MissingDependencyError, ImportError)


def test_auto_without_nlopt_reaches_the_same_optimum(monkeypatch):
    """Where nlopt (a core dependency) cannot be imported, "auto" falls back to the
    pure-scipy L-BFGS-B path, whose exact-derivative Newton stage ends at the root
    of the score equations that the BOBYQA path reaches."""
    df = load("sleepstudy")
    formula = "Reaction ~ Days + (1 + Days | Subject)"
    monkeypatch.setattr(optimize_module, "have_nlopt", lambda: False)
    fallback = lmer(formula, df)
    assert fallback.opt.method == "lbfgsb"
    if not have_nlopt():   # the real check (the module attribute is patched)
        pytest.skip("nlopt not importable: nothing to compare with")
    monkeypatch.undo()
    default = lmer(formula, df)
    assert default.opt.method == "bobyqa"
    np.testing.assert_allclose(fallback.theta, default.theta, rtol=1e-7)
    assert fallback.reml_criterion == pytest.approx(default.reml_criterion, abs=1e-9)


def test_checks_flag_singular_fits():
    """lme4's isSingular: a bounded θ within 1e-4 of its bound."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # checks=False never warns
        opt = optimize_theta(lambda t: (t[0] + 1) ** 2, [1.0], [0.0], method="lbfgsb", checks=False)
    assert opt.theta[0] == 0.0 and opt.singular
    opt = optimize_theta(lambda t: (t[0] + 1) ** 2, [1.0], [0.0], method="lbfgsb")
    assert "boundary (singular) fit: see help('isSingular')" in opt.messages


@pytest.mark.requires_r
def test_penicillin_ml_profile_without_nlopt():
    """lme4's Penicillin, ML: the profile interval of .sig01 (plate's sd) with the pure
    scipy optimizer.  With confint's own optimizer wrapper (no boundary escape, no
    Newton polish) the upper end was 1.182058 against lme4's 1.182104."""
    import r_inference_ref as R
    pen = R.lme4_dataset("Penicillin")
    formula = "diameter ~ 1 + (1 | plate) + (1 | sample)"
    ref = R.confint_ref(formula, pen, False, "profile")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lmer(formula, pen, REML=False, optimizer="lbfgsb")
        ci = confint(fit, parm=[".sig01"], quiet=True)
    k = ref["names"].index(".sig01")
    assert ci.loc[".sig01", "97.5 %"] == pytest.approx(ref["upper"][k], rel=1e-5)
    assert ci.loc[".sig01", "2.5 %"] == pytest.approx(ref["lower"][k], rel=1e-5)
