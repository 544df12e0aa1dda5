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


def test_forward_gradient_is_second_order_with_the_hessian():
    """(f(x + h) - f(x)) / h - H h / 2 has error O(h²) with the exact H; a 10 % wrong H
    adds only 5 % of H h to it."""
    from lmmlite.optimize import _fd_grad
    f = lambda x: np.exp(x[0]) + x[0] * x[1] ** 3
    x = np.array([0.3, 1.2])
    g = np.array([np.exp(0.3) + 1.2 ** 3, 3 * 0.3 * 1.2 ** 2])
    H = np.array([[np.exp(0.3), 3 * 1.2 ** 2], [3 * 1.2 ** 2, 6 * 0.3 * 1.2]])
    free = np.ones(2, bool)
    exact = _fd_grad(f, x, free, 1e-4, fx=f(x), H=H)
    np.testing.assert_allclose(exact, g, rtol=1e-7)
    plain = _fd_grad(f, x, free, 1e-4, fx=f(x), H=np.zeros((2, 2)))
    assert np.max(np.abs(plain - g) / np.abs(g)) > 1e-5       # without H: O(h) error
    off = _fd_grad(f, x, free, 1e-4, fx=f(x), H=1.1 * H)
    np.testing.assert_allclose(off - g, -0.05 * np.diag(H) * 1e-4 * np.maximum(x, 0.1),
                               rtol=1e-2)


def test_quasi_newton_logs_converges_and_returns_derivatives_in_theta():
    """Minimizing in log θ reaches the optimum and hands the checks θ's own gradient and
    Hessian (here a function with a known minimum at θ = (0.5, 2))."""
    from lmmlite.optimize import _Tracked, quasi_newton_logs
    target = np.array([0.5, 2.0])
    A = np.array([[3.0, 1.0], [1.0, 2.0]])
    f = _Tracked(lambda th: float((th - target) @ A @ (th - target)) + 1.0
                 + 0.3 * float(np.sum((th - target) ** 3)))
    start = np.array([0.6, 1.7])
    theta, fval, ok = quasi_newton_logs(f, start, f(start), np.full(2, np.inf))
    assert ok
    np.testing.assert_allclose(theta, target, rtol=1e-7)
    at, g, H = f.derivs
    np.testing.assert_array_equal(at, theta)
    np.testing.assert_allclose(g, 0.0, atol=1e-5)
    np.testing.assert_allclose(H, 2 * A, rtol=0.1)   # BFGS: near, not exact (in φ: θθ'H)


def test_quasi_newton_logs_stops_at_the_floor():
    """An optimum at θ = 0 is not for the log scale: it stops unconverged at the floor."""
    from lmmlite.optimize import _Tracked, quasi_newton_logs
    f = _Tracked(lambda th: float(np.sum(th ** 2)) + 1.0)
    theta, _, ok = quasi_newton_logs(f, np.array([0.3, 0.2]), f(np.array([0.3, 0.2])),
                                     np.full(2, np.inf))
    assert not ok


def test_thread_chooser_times_both_and_keeps_the_faster(monkeypatch):
    """One thread first, then all cores, then the faster of the two latest times, with
    the other tried again every ``retry`` calls."""
    from lmmlite import threads
    monkeypatch.setattr(threads, "_cores", lambda: 2)
    chooser = threads.ThreadChooser(retry=4)
    assert chooser._pick() == 1
    chooser.last[1] = 0.5
    assert chooser._pick() == 2
    chooser.last[2] = 0.3
    chooser.calls = 1
    assert chooser._pick() == 2
    chooser.calls = 4
    assert chooser._pick() == 1          # the retry of the slower arm
    chooser.last[2] = 2.0                # load appeared: threads now lose
    chooser.calls = 5
    assert chooser._pick() == 1
    assert chooser(lambda a: a + 1, 1) == 2
    monkeypatch.setattr(threads, "_cores", lambda: 1)
    assert threads.ThreadChooser()._pick() == 1
