"""The exact gradient and Hessian of the profiled deviance (deviance.ProfiledDerivatives),
used by the optimizer's last stage, against finite differences; and what they buy: an
optimum that does not depend on the row order of the data."""

import warnings

import numpy as np
import pytest

from lmmlite import lmer, load

MODELS = [
    ("plasma", "conc ~ age + (1 + age | group)"),
    ("sleepstudy", "Reaction ~ Days + (1 + Days | Subject)"),
    ("sleepstudy", "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"),
    ("clinics_nested", "y ~ x + (1 | region/clinic)"),
    ("clinics_crossed", "y ~ x + (x | clinic) + (x | doctor)"),
]


def _fit(data, formula, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lmer(formula, data, **kw)


def _fd_grad(f, theta, h):
    g = np.empty(len(theta))
    for i in range(len(theta)):
        e = np.zeros(len(theta))
        e[i] = h[i]
        g[i] = (f(theta + e) - f(theta - e)) / (2 * h[i])
    return g


@pytest.mark.parametrize("REML", [True, False])
@pytest.mark.parametrize("name, formula", MODELS)
def test_exact_derivatives_match_differences(name, formula, REML):
    """At a θ away from the optimum (seeded), the exact gradient agrees with central
    differences of d(θ) (whose truncation error is ~1e-8 relative here) and the
    Hessian with central differences of the exact gradient."""
    fit = _fit(load(name), formula, REML=REML)
    dev = fit.model.dev
    rng = np.random.default_rng(7)
    theta = fit.theta * (1 + 0.1 * rng.standard_normal(len(fit.theta)))
    g, H = dev.grad_hess(theta)
    h = 1e-4 * np.maximum(np.abs(theta), 0.1)
    np.testing.assert_allclose(g, _fd_grad(dev, theta, h), rtol=0, atol=1e-5 * (1 + np.abs(g).max()))
    hg = 1e-6 * np.maximum(np.abs(theta), 0.1)
    Hfd = np.column_stack([_fd_grad(lambda t: dev.grad_hess(t)[0][i], theta, hg)
                           for i in range(len(theta))])
    np.testing.assert_allclose(H, Hfd, rtol=0, atol=1e-6 * np.abs(H).max())


@pytest.mark.parametrize("name, formula", MODELS)
def test_gradient_vanishes_at_the_fitted_optimum(name, formula):
    """The default optimizer ends where the exact score equations hold."""
    fit = _fit(load(name), formula)
    assert not fit.singular
    g, H = fit.model.dev.grad_hess(fit.theta)
    assert np.abs(g).max() < 1e-6
    assert np.linalg.eigvalsh(H).min() > 0


@pytest.mark.parametrize("optimizer", ["auto", "lbfgsb"])
def test_theta_does_not_depend_on_row_order(optimizer):
    """The plasma random-slope criterion is flat to ~1e-13 over 1e-6 in θ; solving the
    score equations pins θ to far better than that, for any row order."""
    df = load("plasma")
    f = "conc ~ age + (1 + age | group)"
    ref = _fit(df, f, optimizer=optimizer).theta
    for seed in (11, 12, 13):
        shuffled = df.sample(frac=1, random_state=np.random.RandomState(seed))
        theta = _fit(shuffled.reset_index(drop=True), f, optimizer=optimizer).theta
        np.testing.assert_allclose(theta, ref, rtol=1e-9)
