"""glmer's parts against closed forms: families, responses, bad input, singular fits."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest

import lmmlite as L
from lmmlite.errors import LmmError, SingularFitWarning
from lmmlite.family import as_family
from lmmlite.agq import gauss_hermite

from test_glmer_ref import data, fitted

MU = np.array([0.01, 0.2, 0.5, 0.77, 0.99])


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_binomial_links_invert_and_differentiate(link):
    fam = L.binomial(link)
    eta = fam.linkfun(MU)
    np.testing.assert_allclose(fam.linkinv(eta), MU, rtol=1e-12)
    h = 1e-6
    num = (fam.linkinv(eta + h) - fam.linkinv(eta - h)) / (2 * h)
    np.testing.assert_allclose(fam.mu_eta(eta), num, rtol=1e-7)


def test_poisson_log_link():
    fam = L.poisson()
    mu = np.array([0.1, 1.0, 7.5])
    np.testing.assert_allclose(fam.linkinv(fam.linkfun(mu)), mu, rtol=1e-14)
    np.testing.assert_allclose(fam.mu_eta(np.log(mu)), mu, rtol=1e-14)


def test_binomial_aic_includes_the_binomial_coefficients():
    fam = L.binomial()
    k, n = np.array([0, 3, 5]), np.array([4, 6, 5])
    mu = np.array([0.2, 0.4, 0.9])
    direct = -2 * sum(math.log(math.comb(int(nn), int(kk)) * m ** kk * (1 - m) ** (nn - kk))
                      for kk, nn, m in zip(k, n, mu))
    assert fam.aic(k / n, n, mu, n.astype(float)) == pytest.approx(direct, rel=1e-12)
    # deviance = aic - aic at the saturated fit mu = y
    y = k / n
    sat = fam.aic(y, n, np.clip(y, 1e-300, 1 - 1e-16), n.astype(float))
    assert np.sum(fam.dev_resids(y, mu, n)) == pytest.approx(fam.aic(y, n, mu, n) - sat, rel=1e-9)


def test_poisson_aic_and_deviance():
    fam = L.poisson()
    y, mu = np.array([0.0, 2.0, 5.0]), np.array([0.5, 1.5, 6.0])
    direct = -2 * sum(kk * math.log(m) - m - math.lgamma(kk + 1) for kk, m in zip(y, mu))
    assert fam.aic(y, np.ones(3), mu, np.ones(3)) == pytest.approx(direct, rel=1e-12)
    dev = 2 * np.sum(np.where(y > 0, y * np.log(np.where(y > 0, y, 1) / mu), 0) - (y - mu))
    assert np.sum(fam.dev_resids(y, mu, np.ones(3))) == pytest.approx(dev, rel=1e-12)


def test_family_arguments():
    assert as_family("poisson").name == "poisson"
    assert as_family(L.binomial).link.name == "logit"
    for bad in ("gaussian", 3):
        with pytest.raises(LmmError, match="family"):
            as_family(bad)
    with pytest.raises(LmmError, match="link 'log' is not available"):
        L.binomial("log")


def test_gauss_hermite_rule_integrates_normal_moments():
    z, w = gauss_hermite(7)
    assert w.sum() == pytest.approx(1.0, rel=1e-13)
    assert (w * z ** 2).sum() == pytest.approx(1.0, rel=1e-12)
    assert (w * z ** 4).sum() == pytest.approx(3.0, rel=1e-12)


def test_response_forms_give_the_same_fit():
    """A factor (first level failure), 0/1 and logical response: one model."""
    d = data("contra")
    fits = [L.glmer(f"{y} ~ age + urban + (1 | district)", d)
            for y in ("use", "use01", "uselgl")]
    for f in fits[1:]:
        assert f.loglik == pytest.approx(fits[0].loglik, abs=1e-9)
        np.testing.assert_allclose(f.fixef.to_numpy(), fits[0].fixef.to_numpy(), atol=1e-7)


def test_cbind_and_proportion_with_weights_agree():
    a, b = fitted("cbpp_logit"), fitted("cbpp_prop_weights")
    assert a.loglik == pytest.approx(b.loglik, abs=1e-9)
    np.testing.assert_allclose(a.fixef.to_numpy(), b.fixef.to_numpy(), atol=1e-7)


def test_offset_in_formula_and_argument_agree():
    a, b = fitted("counts_offset"), fitted("counts_offset_arg")
    assert a.loglik == pytest.approx(b.loglik, abs=1e-9)
    # lme4's predict(newdata) keeps offset() terms but drops the offset= argument
    new = data("counts").iloc[:3]
    np.testing.assert_allclose(a.predict(new) - b.predict(new), np.log(new["expo"]), atol=1e-6)


def test_bad_responses():
    d = data("counts")
    with pytest.raises(LmmError, match="0 <= y <= 1"):
        L.glmer("y ~ x + (1 | g)", d)
    with pytest.raises(LmmError, match="2 columns"):
        L.glmer("cbind(y, y, y) ~ x + (1 | g)", d)
    neg = d.assign(y=-d["y"])
    with pytest.raises(LmmError, match="negative values"):
        L.glmer("y ~ x + (1 | g)", neg, family="poisson")
    with pytest.raises(LmmError, match="single, scalar"):
        L.glmer("y ~ x + (x | g)", d, family="poisson", nAGQ=5)
    with pytest.raises(LmmError, match="nAGQ"):
        L.glmer("y ~ x + (1 | g)", d, family="poisson", nAGQ=26)
    with pytest.raises(LmmError, match="no random effects"):
        L.glmer("y ~ x", d, family="poisson")


def test_singular_fit_warns_as_lme4():
    # every group has the same proportion of successes: the group variance is 0
    d = pd.DataFrame({"g": np.repeat([f"g{i}" for i in range(8)], 10),
                      "y": np.tile([1, 0, 0, 1, 0, 1, 0, 0, 1, 0], 8)})
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fit = L.glmer("y ~ 1 + (1 | g)", d)
    assert fit.theta[0] == 0.0 and fit.singular
    assert any(issubclass(w.category, SingularFitWarning) for w in rec)
    assert "boundary (singular) fit: see help('isSingular')" in str(fit.summary())
    assert L.isSingular(fit)
    # with θ = 0 the model is the GLM: logit of the overall proportion
    assert fit.fixef.iloc[0] == pytest.approx(math.log(0.4 / 0.6), abs=1e-6)


def test_print_and_accessors():
    fit = fitted("cbpp_logit")
    text = repr(fit)
    assert text.startswith("Generalized linear mixed model fit by maximum likelihood")
    assert "Fixed Effects:" in text
    vc = L.VarCorr(fit)
    assert list(vc["grp"]) == ["herd"]
    assert vc["vcov"].iloc[0] == pytest.approx(fit.theta[0] ** 2)
    assert L.deviance(fit) == fit.deviance
    assert L.logLik(fit) == fit.loglik
