"""The PIRLS system (glmm_system.py) against the dense matrix it factors, and the
Newton PIRLS steps against Fisher scoring."""

import numpy as np
import pytest

import lmmlite as L
from lmmlite.glmm import GlmerModel

from test_glmer_ref import data, fitted

# term 1 alone, crossed terms, a random slope, and nested chains (obs in brood in location)
KEYS = ["cbpp_logit", "crossed", "contra_slope", "cbpp_olre", "grouse_nested", "grouse_olre"]


def dense_system(model, theta, w, joint):
    """[U X]'W[U X] + diag(I_q, 0) built densely from the model's row values."""
    V1, Vr = model._parts(np.asarray(theta, dtype=float))
    U = np.zeros((model.nobs, model.q))
    rows = np.arange(model.nobs)
    for j in range(model.p1):
        U[rows, model.codes1 * model.p1 + j] = V1[:, j]
    for a in range(Vr.shape[1]):
        U[rows, model.q1 + model.rest_cols[:, a]] = Vr[:, a]
    M = np.hstack([U, model.X]) if joint else U
    A = M.T @ (w[:, None] * M)
    A[np.arange(model.q), np.arange(model.q)] += 1.0
    return A


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("joint", [False, True])
def test_factor_solves_the_dense_system(key, joint):
    fit = fitted(key)
    model = fit.model
    rng = np.random.default_rng(20261202)
    theta = fit.theta * rng.uniform(0.5, 1.5, len(fit.theta)) + 0.05
    w = rng.uniform(0.05, 2.0, model.nobs)
    A = dense_system(model, theta, w, joint)
    fac = model.factor(theta, w, joint=joint)
    r = rng.normal(size=A.shape[0])
    np.testing.assert_allclose(fac.solve(r), np.linalg.solve(A, r), rtol=1e-9, atol=1e-11)
    if not joint:
        assert fac.logdet() == pytest.approx(np.linalg.slogdet(A)[1], rel=1e-12)


def test_nested_terms_are_eliminated_blockwise():
    """(1 | BROOD) + (1 | INDEX) + (1 | LOCATION): INDEX in BROOD in LOCATION, so all
    three terms are block diagonal in turn and only X is dense."""
    pat = fitted("grouse_olre").model.pattern(joint=True)
    assert [lev.nl for lev in pat.levels][:2] == [403, 118]
    assert pat.md < 70


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_second_derivative_of_the_inverse_link(link):
    fam = L.binomial(link)
    eta, h = np.linspace(-3, 2, 11), 1e-5
    num = (fam.mu_eta(eta + h) - fam.mu_eta(eta - h)) / (2 * h)
    np.testing.assert_allclose(fam.link.mu_eta2(eta), num, rtol=1e-6, atol=1e-10)
    mu = np.linspace(0.05, 0.95, 7)
    np.testing.assert_allclose(fam.variance_deriv(mu),
                               (fam.variance(mu + h) - fam.variance(mu - h)) / (2 * h), atol=1e-9)


@pytest.mark.parametrize("key", ["cbpp_probit", "cbpp_cloglog", "contra_logical"])
def test_newton_and_fisher_pirls_find_the_same_mode(key, monkeypatch):
    fit = fitted(key)
    model = fit.model
    theta, beta = fit.theta * 1.1, fit.fixef.to_numpy() * 0.9
    newton = model.pirls(theta, beta, np.zeros(model.q))
    fam = model.family
    plain = fam.working
    monkeypatch.setattr(fam, "working", lambda *a, newton=False: plain(*a))
    fisher = model.pirls(theta, beta, np.zeros(model.q))
    assert newton.iterations < fisher.iterations
    np.testing.assert_allclose(newton.u, fisher.u, rtol=1e-8, atol=1e-10)
    assert newton.laplace == pytest.approx(fisher.laplace, rel=1e-12)
    assert isinstance(model, GlmerModel)
