"""The fit interface shared by lm and lmer fits (fit.py), and the R-like functions mirroring it.

No R needed: the checks are definitions (AIC = -2 logLik + 2 npar, R's
confint.lm = β̂ ± t se) and the closed-form least-squares solution.
"""

import logging
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import lmmlite
from lmmlite import anova, lm, lmer, load
from lmmlite.fit import FitBase
from lmmlite.inference import kenward_roger, satterthwaite

SHARED = ["fixef", "vcov", "sigma", "nobs", "n_dropped", "aliased", "dropped", "loglik", "npar",
          "aic", "bic", "deviance", "df_residual", "mixed", "formula", "data_name"]
METHODS = ["coef", "fitted", "residuals", "summary", "confint"]


@pytest.fixture(scope="module")
def sleep():
    return load("sleepstudy")


@pytest.fixture(scope="module")
def fits(sleep):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"lm": lm("Reaction ~ Days", sleep),
                "lmer": lmer("Reaction ~ Days + (1 | Subject)", sleep)}


@pytest.mark.parametrize("kind", ["lm", "lmer"])
def test_same_names(fits, kind):
    fit = fits[kind]
    assert isinstance(fit, FitBase)
    assert fit.mixed == (kind == "lmer")
    for name in SHARED:
        assert hasattr(fit, name), name
    for name in METHODS:
        assert callable(getattr(fit, name)), name
    assert isinstance(fit.fixef, pd.Series)
    assert list(fit.vcov.index) == list(fit.fixef.index) == ["(Intercept)", "Days"]
    assert fit.aic == pytest.approx(-2 * fit.loglik + 2 * fit.npar)
    assert fit.bic == pytest.approx(-2 * fit.loglik + np.log(fit.nobs) * fit.npar)
    assert len(fit.fitted()) == len(fit.residuals()) == fit.nobs == 180
    assert fit.dropped == fit.aliased == []


@pytest.mark.parametrize("kind", ["lm", "lmer"])
def test_module_functions_mirror_the_fit(fits, kind):
    fit = fits[kind]
    pd.testing.assert_series_equal(lmmlite.fixef(fit), fit.fixef)
    assert lmmlite.vcov(fit) is fit.vcov
    assert lmmlite.sigma(fit) == fit.sigma
    assert lmmlite.nobs(fit) == fit.nobs
    assert lmmlite.logLik(fit) == fit.loglik
    assert lmmlite.AIC(fit) == fit.aic and lmmlite.BIC(fit) == fit.bic
    assert lmmlite.deviance(fit) == fit.deviance
    assert lmmlite.df_residual(fit) == fit.df_residual
    pd.testing.assert_series_equal(lmmlite.fitted(fit), fit.fitted())
    pd.testing.assert_series_equal(lmmlite.residuals(fit), fit.residuals())
    coef = lmmlite.coef(fit)
    if kind == "lm":
        pd.testing.assert_series_equal(coef, fit.coefficients)
    else:
        assert list(coef) == ["Subject"] and not lmmlite.isSingular(fit)


def test_lm_against_least_squares(sleep, fits):
    """lm's numbers from the normal equations, and R's df.residual, deviance, confint.lm."""
    fit = fits["lm"]
    X = np.column_stack([np.ones(len(sleep)), sleep["Days"]])
    y = sleep["Reaction"].to_numpy()
    beta = np.linalg.solve(X.T @ X, X.T @ y)
    rss = float(np.sum((y - X @ beta) ** 2))
    np.testing.assert_allclose(fit.fixef, beta, rtol=1e-10)
    assert fit.df_residual == 178
    assert fit.deviance == pytest.approx(rss, rel=1e-10)
    se = np.sqrt(np.diag(rss / 178 * np.linalg.inv(X.T @ X)))
    t = stats.t.ppf(0.975, 178)
    ci = fit.confint()
    assert list(ci.columns) == ["2.5 %", "97.5 %"]
    np.testing.assert_allclose(ci["2.5 %"], beta - t * se, rtol=1e-10)
    np.testing.assert_allclose(lmmlite.confint(fit, level=0.9)["95 %"],
                               beta + stats.t.ppf(0.95, 178) * se, rtol=1e-10)


def test_lm_aliased_coefficients():
    """An aliased column: NA in coef() (R's coef.lm), absent from fixef and vcov, NA in confint."""
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"x": rng.normal(size=30)})
    d["x2"] = 2 * d["x"]
    d["y"] = 1 + d["x"] + rng.normal(size=30)
    fit = lm("y ~ x + x2", d)
    assert fit.aliased == fit.dropped == ["x2"]
    assert list(fit.fixef.index) == ["(Intercept)", "x"]
    assert np.isnan(fit.coef()["x2"])
    ci = fit.confint()
    assert ci.loc["x2"].isna().all() and ci.loc["x"].notna().all()


def test_lmer_df_residual(fits):
    fit = fits["lmer"]
    assert fit.df_residual == 180 - 4      # lme4's df.resid: nobs - (2 fixef + θ + σ)


def test_cache_is_owned_by_the_fit(fits):
    """Derived inference objects are built once per fit and kept by it, under public keys."""
    fit = fits["lmer"]
    assert satterthwaite(fit) is satterthwaite(fit)
    assert kenward_roger(fit) is kenward_roger(fit)
    assert fit.cached("satterthwaite", lambda f: None) is satterthwaite(fit)
    assert not any(k.startswith("_lmmlite") for k in vars(fit))


def test_refit_message_can_be_silenced(sleep, capsys):
    """anova's "refitting model(s) with ML" is a message (lme4's message()), through logging."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m1 = lmer("Reaction ~ Days + (1 | Subject)", sleep)
        m2 = lmer("Reaction ~ Days + (Days | Subject)", sleep)
    anova(m1, m2)
    assert capsys.readouterr().err == "refitting model(s) with ML (instead of REML)\n"
    log = logging.getLogger("lmmlite")
    level = log.level
    try:
        log.setLevel(logging.WARNING)
        anova(m1, m2)
    finally:
        log.setLevel(level)
    assert capsys.readouterr().err == ""
