"""The moment start and the Newton-first path lmer takes for large all-intercept models."""

import numpy as np
import pytest

import lmmlite as L
from lmmlite.deviance import ProfiledDerivatives
from lmmlite.start import is_intercepts_only, moment_start
from test_deviance import _skewed_crossed


def test_moment_start_is_near_the_optimum():
    """One-way moment estimates start within a factor 1.5 of the REML optimum."""
    data = _skewed_crossed(seed=5, users=300, items=120)
    fit = L.lmer("y ~ x + (1 | user) + (1 | item)", data)
    dev = fit.model.dev
    assert is_intercepts_only(dev.blocks)
    start = moment_start(dev.blocks, dev.X, dev.y)
    assert np.all(start / fit.theta < 1.5) and np.all(start / fit.theta > 1 / 1.5)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_slopes_are_not_intercepts_only():
    fit = L.lmer("y ~ x + (x | user) + (1 | item)", _skewed_crossed())
    assert not is_intercepts_only(fit.model.dev.blocks)


@pytest.mark.parametrize("REML", [True, False])
def test_newton_first_reaches_the_same_optimum(monkeypatch, REML):
    """Taken as a large model (no exact derivatives, Newton steps from the moment start,
    no derivative-free search), the fit has the optimum of the usual path."""
    data = _skewed_crossed(seed=5, users=300, items=120)
    usual = L.lmer("y ~ x + (1 | user) + (1 | item)", data, REML=REML)
    monkeypatch.setattr(ProfiledDerivatives, "MAX_Q", 10)
    large = L.lmer("y ~ x + (1 | user) + (1 | item)", data, REML=REML)
    assert large.model.is_large()
    assert large.opt.nfev < usual.opt.nfev
    np.testing.assert_allclose(large.theta, usual.theta, rtol=1e-6)
    assert large.opt.value == pytest.approx(usual.opt.value, abs=1e-8)
    assert large.opt.messages == []
