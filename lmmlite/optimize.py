"""Stage 4: minimize the profiled deviance over θ under diag(Λ) ≥ 0.

Optimizers (``lmer(..., optimizer=)``):

* ``"nloptwrap"``: exactly lme4's default: NLopt's BOBYQA (Powell 2009) from
  θ = start with absolute tolerances 1e-8 on θ and on the criterion.  It
  stops where lme4 stops (up to round-off in the criterion), so digits that
  record lme4's early stop (e.g. 958.35 for the sleepstudy slope model of the
  slides, whose exact optimum prints 958.36) are reproduced.  Needs ``nlopt``.
* ``"bobyqa"`` (the default): the same BOBYQA (lmer stops it at tolerances 1e-6:
  the Newton steps below finish), then on to the exact
  optimum: restarts off the boundary where that lowers the criterion, and
  Newton steps on the score equations ∇d(θ) = 0 with the exact gradient and
  Hessian (``Deviance.grad_hess``; a finite-difference Newton polish first
  where θ is near a bound or the exact steps fail).  Its criterion is never
  above lme4's; results do not depend on round-off noise.
* ``"lbfgsb"``: pure scipy, L-BFGS-B with central-difference gradients, then
  the same restarts and Newton steps, so it ends at the same optimum (to
  ~1e-10 in θ), a little slower.  nlopt is a core dependency of lmmlite
  (wheels for every platform, Pyodide included); ``"auto"`` falls back to
  ``"lbfgsb"`` only where nlopt cannot be imported.

:func:`optimize_theta` is the one entry point: lmer, the profiles of
confint and the bootstrap refits all call it (with ``checks=False`` and
optional upper bounds for the last two).

Afterwards, lme4's checks: ``isSingular`` (a bounded θ within 1e-4 of its
bound) and ``checkConv`` (the scaled gradient and the Hessian at the optimum).
"""

from dataclasses import dataclass
from functools import partial
import warnings

import numpy as np
import scipy.linalg as sla
from scipy.optimize import minimize

from .errors import ConvergenceWarning, LmmError, MissingDependencyError

SINGULAR_TOL = 1e-4       # lme4's isSingular tolerance
GRAD_TOL = 2e-3           # lme4's check.conv.grad tolerance
FORWARD_H = 1e-6          # relative step of the one-sided differences (see _fd_grad)


@dataclass
class OptResult:
    theta: np.ndarray
    value: float
    nfev: int
    singular: bool
    messages: list
    method: str


def _steps(x, idx, h, unit):
    """Difference steps: h times each coordinate's unit (default max(|x_i|, 0.1))."""
    return h * (np.maximum(np.abs(x[idx]), 0.1) if unit is None else np.asarray(unit)[idx])


def fd_grad_hess(f, x, free, h=1e-4, f0=None, unit=None):
    """Central-difference gradient and Hessian of f on the coordinates ``free``
    (``f0``: f(x) when it is known already; ``unit``: see :func:`_steps`)."""
    with np.errstate(all="ignore"):  # a failed factorization gives +inf: NaN, not a warning
        return _fd_grad_hess(f, x, free, h, f0, unit)


def _fd_grad_hess(f, x, free, h, f0, unit):
    idx = np.flatnonzero(free)
    k = len(idx)
    f0 = f(x) if f0 is None else f0
    g = np.zeros(k)
    H = np.zeros((k, k))
    steps = _steps(x, idx, h, unit)
    fp, fm = np.zeros(k), np.zeros(k)
    for a, i in enumerate(idx):
        e = np.zeros_like(x)
        e[i] = steps[a]
        fp[a], fm[a] = f(x + e), f(x - e)
        g[a] = (fp[a] - fm[a]) / (2 * steps[a])
        H[a, a] = (fp[a] - 2 * f0 + fm[a]) / steps[a] ** 2
    for a in range(k):
        for b in range(a + 1, k):
            ea = np.zeros_like(x)
            eb = np.zeros_like(x)
            ea[idx[a]], eb[idx[b]] = steps[a], steps[b]
            fpp, fmm = f(x + ea + eb), f(x - ea - eb)
            # f(x+a+b) + f(x-a-b) - f(x+a) - f(x-a) - f(x+b) - f(x-b) + 2 f(x) = 2 h_a h_b H_ab
            H[a, b] = H[b, a] = (fpp + fmm - fp[a] - fm[a] - fp[b] - fm[b] + 2 * f0) \
                / (2 * steps[a] * steps[b])
    return g, H


def _singular(theta, lower):
    """lme4's isSingular: some bounded θ_i within SINGULAR_TOL of its bound."""
    return bool(np.any(np.isfinite(lower) & (theta < lower + SINGULAR_TOL)))


def _at_bound(theta, lower, tol=1e-10, upper=None):
    at = np.isfinite(lower) & (theta <= lower + tol)
    return at if upper is None else at | (np.isfinite(upper) & (theta >= upper - tol))


def _newton_step(g, H):
    """The Newton step H⁻¹g; where H is not positive definite (a saddle or a ridge)
    its eigenvalues are taken in absolute value, so the step goes downhill."""
    lam, V = np.linalg.eigh(H)
    lam = np.maximum(np.abs(lam), 1e-8 * max(np.abs(lam).max(), 1e-300))
    return V @ ((V.T @ g) / lam)


def _negligible(step, g, theta, fval, ftol=1e-13):
    """A step too small to matter, or a promised decrease below round-off in d(θ)
    (``ftol`` relative to d)."""
    return bool(np.max(np.abs(step) / (1 + np.abs(theta))) < 1e-7
                or 0.5 * float(g @ step) < ftol * (1 + abs(fval)))


def _backtrack(f, theta, free, step, lower, upper, fval):
    """θ - t·step on the free coordinates, clipped to the bounds, for the first of
    t = 1, 1/2, ..., 1/128 that does not raise d; None if none does."""
    t = 1.0
    for _ in range(8):
        cand = theta.copy()
        cand[free] -= t * step
        cand = np.clip(cand, lower, np.inf if upper is None else upper)
        fc = f(cand)
        if fc <= fval:
            return cand, fc, t
        t /= 2
    return None


def _polish(f, theta, lower, fval, upper=None):
    """A few projected Newton steps on the coordinates away from their bounds.

    Returns θ, d(θ) and whether the last Newton step was negligible (converged).
    The gradient and Hessian at the returned θ are kept on ``f.derivs`` (when
    ``f`` records them) for the convergence check.
    """
    for _ in range(6):
        free = ~_at_bound(theta, lower, upper=upper)
        if not free.any():
            return theta, fval, True
        g, H = fd_grad_hess(f, theta, free)
        if hasattr(f, "derivs"):
            f.derivs = (theta.copy(), g, H)
        if not (np.all(np.isfinite(g)) and np.all(np.isfinite(H))):
            return theta, fval, False
        try:
            step = _newton_step(g, H)
        except np.linalg.LinAlgError:
            return theta, fval, False
        if not np.all(np.isfinite(step)):
            return theta, fval, False
        if _negligible(step, g, theta[free], fval):
            return theta, fval, True
        found = _backtrack(f, theta, free, step, lower, upper, fval)
        if found is None:
            return theta, fval, False
        if found[1] == fval:
            return theta, fval, True
        theta, fval = found[:2]
    return theta, fval, False


def _fd_grad(f, x, free, h=1e-4, unit=None, fx=None, H=None):
    """Central-difference gradient of f on the coordinates ``free`` (2 evaluations each).

    With ``fx`` = f(x) and a Hessian model ``H``: one-sided differences corrected to
    second order, (f(x + h_i e_i) - f(x)) / h_i - H_ii h_i / 2, one evaluation each.
    Their error is H_ii's error times h_i / 2, plus O(h_i²) and round-off / h_i: with
    h = 1e-6 (relative) and a model Hessian 10 % off, the Newton step moves by ~5e-8
    of θ, about the round-off of a criterion near 1e6 (one ulp ~1e-10) over h.
    """
    idx = np.flatnonzero(free)
    steps = _steps(x, idx, h, unit)
    g = np.zeros(len(idx))
    with np.errstate(all="ignore"):
        for a, i in enumerate(idx):
            e = np.zeros_like(x)
            e[i] = steps[a]
            if H is None:
                g[a] = (f(x + e) - f(x - e)) / (2 * steps[a])
            else:
                g[a] = (f(x + e) - fx) / steps[a] - 0.5 * H[a, a] * steps[a]
    return g


def quasi_newton(f, theta, lower, fval, upper=None, iterations=12, hessian=None,
                 forward=False, ftol=1e-13, unit=None):
    """Newton steps from a start near the optimum, for an expensive criterion.

    The first step uses the finite-difference Hessian (2k + k(k-1) evaluations
    for k parameters besides f(θ)), or ``hessian`` when given (e.g. from a nearby
    optimum: the profiles of glmer); later steps only the gradient, with the Hessian
    carried forward by the BFGS update (Nocedal & Wright 2006, eq. 6.19) from the
    step s and the change y in the gradient, while y's > 0.  The gradient is by
    central differences (2k evaluations), or with ``forward`` by one-sided ones
    corrected by the Hessian model (k; :func:`_fd_grad`).  It stops when the
    Newton step is below 1e-7 of θ or promises a decrease below ``ftol`` of d.
    ``unit``: the coordinates' scales for the differences (see :func:`_steps`).
    Converges superlinearly, at about half the evaluations of :func:`_polish`.
    Returns θ, d(θ) and whether the last step was negligible; the gradient and the
    Hessian at the returned θ are kept on ``f.derivs``.
    """
    free = ~_at_bound(theta, lower, upper=upper)
    if not free.any():
        return theta, fval, False
    if hessian is None:
        g, H = fd_grad_hess(f, theta, free, f0=fval, unit=unit)
    else:
        g, H = _fd_grad(f, theta, free, unit=unit), np.asarray(hessian)[np.ix_(free, free)]
    for _ in range(iterations):
        if hasattr(f, "derivs"):
            f.derivs = (theta.copy(), g, H)
        if not (np.all(np.isfinite(g)) and np.all(np.isfinite(H))):
            return theta, fval, False
        step = _newton_step(g, H)
        if _negligible(step, g, theta[free], fval, ftol):
            return theta, fval, True
        found = _backtrack(f, theta, free, step, lower, upper, fval)
        if found is None:
            return theta, fval, False
        cand, fc, t = found
        if np.any(_at_bound(cand, lower, upper=upper) & free):
            return cand, fc, False      # a bound was reached: the usual path takes over
        g_new = (_fd_grad(f, cand, free, FORWARD_H, unit, fx=fc, H=H) if forward
                 else _fd_grad(f, cand, free, unit=unit))
        s_k, y_k = cand[free] - theta[free], g_new - g
        if t < 1.0 or not float(y_k @ s_k) > 0:
            g_new, H = fd_grad_hess(f, cand, free, f0=fc, unit=unit)    # a poor model: afresh
        else:
            Hs = H @ s_k
            H = H + np.outer(y_k, y_k) / float(y_k @ s_k) - np.outer(Hs, Hs) / float(s_k @ Hs)
        theta, fval, g = cand, fc, g_new
    return theta, fval, False


class _InLogs:
    """f on φ = log θ (θ > 0): the profiled deviance of variance components is much
    closer to quadratic in log θ than in θ (from the moment start of a MovieLens-shaped
    model one Newton step lands 2e-4 from the optimum in log θ, 1.1e-3 in θ)."""

    def __init__(self, f):
        self.f = f
        self.derivs = None

    def __call__(self, phi):
        return self.f(np.exp(phi))


def quasi_newton_logs(f, theta, fval, upper, floor=SINGULAR_TOL):
    """:func:`quasi_newton` in φ = log θ, for θ > 0 with lower bounds 0, with
    forward differences and a decrease tolerance of 1e-15 of d (the criterion of a
    large model has ~1e-16 relative round-off, and 1e-13 of d ~ 5e5 let θ stop 1e-6
    short).  θ reaching ``floor`` ends it unconverged (a fit at the boundary is for
    the usual path).  Differences in φ are relative steps in θ (unit 1).  ``f.derivs``
    gets the gradient and Hessian in θ:
    g_θ = g_φ / θ, H_θ = (H_φ - diag(g_φ)) / θθ'."""
    F = _InLogs(f)
    with np.errstate(divide="ignore"):
        log_upper = np.log(upper)
    phi, fval, ok = quasi_newton(F, np.log(theta), np.full(len(theta), np.log(floor)), fval,
                                 log_upper, forward=True, ftol=1e-15, unit=np.ones(len(theta)))
    theta = np.exp(phi)
    if F.derivs is not None and hasattr(f, "derivs"):
        at, g, H = F.derivs
        th = np.exp(at)
        f.derivs = (th, g / th, (H - np.diag(g)) / np.outer(th, th))
    return theta, fval, ok


def _exact_newton(fun, grad_hess, theta, lower, fval):
    """The last stage: solve ∇d(θ) = 0 on the free coordinates by Newton's method
    with the exact gradient and Hessian (``grad_hess``, e.g. Deviance.grad_hess).

    Function values near the optimum are flat to round-off (d changes by ~1e-13
    when θ moves by ~1e-7 on a weakly determined surface), so a minimizer of
    function values stops anywhere in that flat region, depending on round-off
    and hence on row order or BLAS.  The score equations have a well-defined root:
    Newton steps with exact derivatives reach it to ~1e-12 relative.  A step is
    taken only while H is positive definite, the step stays inside the bounds and
    d does not rise above round-off; otherwise θ is returned unchanged.
    Returns θ, d(θ) and the (θ, g, H) of the last derivatives, or None.
    """
    derivs = None
    free = ~_at_bound(theta, lower)
    if not free.any():
        return theta, fval, None
    tol = 1e-10 * (1 + abs(fval))  # a rise in d this small is round-off, not a worse point
    for _ in range(30):
        try:
            out = grad_hess(theta)
        except np.linalg.LinAlgError:
            return theta, fval, derivs
        if out is None:
            return theta, fval, derivs
        g, H = out[0][free], out[1][np.ix_(free, free)]
        if not (np.all(np.isfinite(g)) and np.all(np.isfinite(H))):
            return theta, fval, derivs
        derivs = (theta.copy(), g, H)
        try:
            step = sla.cho_solve(sla.cho_factor(H, lower=True), g)
        except np.linalg.LinAlgError:
            return theta, fval, derivs    # not a minimum in the free coordinates
        rel = np.max(np.abs(step) / (1e-3 + np.abs(theta[free])))
        if rel < 1e-13:
            return theta, fval, derivs    # converged; the derivatives are those at θ
        cand = theta.copy()
        cand[free] -= step
        if np.any(cand < lower):
            return theta, fval, derivs
        fc = fun(cand)
        if not fc <= fval + tol:
            return theta, fval, derivs
        theta, fval = cand, fc
        if rel < 1e-8:
            # within Newton's quadratic convergence the next step would be ~rel² (below
            # round-off): stop here, with the gradient at the new θ to that order,
            # g - H·step, and H, for the convergence check
            return theta, fval, (theta.copy(), g - H @ step, H)
    try:  # the derivatives at the returned θ, for the convergence check
        out = grad_hess(theta)
        derivs = (theta.copy(), out[0][free], out[1][np.ix_(free, free)])
    except np.linalg.LinAlgError:
        pass
    return theta, fval, derivs


def _newton_converged(derivs, lower, tol=1e-10):
    """Whether exact-Newton derivatives (θ, g, H) mark an interior minimum: every
    bounded θ_i more than 1e-4 above its bound (near a bound, the projected polish
    decides), H positive definite and the next Newton step below ``tol`` relative
    to θ."""
    if derivs is None:
        return False
    theta, g, H = derivs
    if _singular(theta, lower) or len(g) != len(theta):
        return False
    try:
        step = sla.cho_solve(sla.cho_factor(H, lower=True), g)
    except np.linalg.LinAlgError:
        return False
    return bool(np.max(np.abs(step) / (1e-3 + np.abs(theta))) < tol)


def _escape_boundary(f, theta, lower, fval, below=None, scale=None):
    """Probe into the interior from components at or near their bound.

    d(θ) depends on Λ through ΛΛ', so θ_i = 0 is always a stationary point in
    its own coordinate: a local method that lands at (or just above) it may
    stop although the interior holds a lower deviance.  Each such θ_i is moved
    to a few positive values, also with the signs of the entries below it in
    its column of T flipped (at θ_i = 0 their sign is arbitrary, so the local
    method may have settled on the wrong one).  The probes are absolute, and also
    relative to ``scale`` (θ_i's natural size, 1 / the RMS of its column of Z), so a
    covariate on a scale of 1e6 is probed near 1e-6.  Returns a better start, or None.
    """
    best, best_val = None, fval
    near = np.isfinite(lower) & (theta < lower + SINGULAR_TOL)
    for i in np.flatnonzero(near):
        col = (below or {}).get(i, [])
        for flip in ([False, True] if col else [False]):
            steps = [1e-3, 1e-2, 0.05, 0.2, 0.5, 1.0]
            if scale is not None and not 0.1 < scale[i] < 10:
                steps += [scale[i] * s for s in steps]
            for step in steps:
                cand = theta.copy()
                cand[i] = lower[i] + step
                if flip:
                    cand[col] = -cand[col]
                fc = f(cand)
                if fc < best_val - 1e-10:
                    best, best_val = cand, fc
    return best


def have_nlopt():
    """Whether nlopt (a core dependency) can be imported; without it ``"auto"``
    falls back to the pure-scipy ``"lbfgsb"``, which reaches the same optimum."""
    try:
        import nlopt  # noqa: F401
    except (ImportError, OSError):  # not installed, or its compiled library fails to load
        return False
    return True


class _Tracked:
    """The objective, counting evaluations and remembering the best point seen."""

    def __init__(self, f):
        self.f, self.n = f, 0
        self.best_x, self.best_f = None, np.inf
        self.derivs = None  # (θ, gradient, Hessian) from the last Newton step

    def __call__(self, theta):
        self.n += 1
        with np.errstate(all="ignore"):
            value = float(self.f(theta))
        if value < self.best_f:
            self.best_x, self.best_f = np.array(theta, dtype=float), value
        return value


def _bobyqa(fun, theta0, lower, upper, tol=1e-8):
    """NLopt's BOBYQA with lme4's nloptwrap settings (start θ0, absolute tolerances
    ``tol`` on θ and f: lme4's 1e-8 by default).

    NLopt may stop with a round-off error when the criterion is flat at the
    optimum; then, as lme4, the best point found is returned.
    """
    import nlopt
    opt = nlopt.opt(nlopt.LN_BOBYQA, len(theta0))
    opt.set_lower_bounds([lo if np.isfinite(lo) else -np.inf for lo in lower])
    opt.set_upper_bounds([float(hi) for hi in upper])
    opt.set_min_objective(lambda x, grad: fun(np.asarray(x)))
    opt.set_xtol_abs(tol)
    opt.set_ftol_abs(tol)
    opt.set_maxeval(100000)
    try:
        opt.optimize(list(map(float, theta0)))
    except nlopt.RoundoffLimited:
        pass
    return fun.best_x, fun.best_f


def _lbfgsb(fun, theta0, lower, upper, scale=None):
    """L-BFGS-B with central-difference gradients and tight tolerances.

    With ``scale`` (θ's natural sizes) it works in φ = θ / scale, so that a covariate
    measured in micro-units does not leave the problem badly conditioned.
    """
    s = np.ones(len(theta0)) if scale is None else np.asarray(scale, dtype=float)
    bounds = [(lo / si if np.isfinite(lo) else None, hi / si if np.isfinite(hi) else None)
              for lo, hi, si in zip(lower, upper, s)]
    with np.errstate(all="ignore"):  # differences of +inf (failed factorizations)
        minimize(lambda phi: fun(phi * s), np.asarray(theta0, dtype=float) / s,
                 method="L-BFGS-B", jac="3-point", bounds=bounds,
                 options={"ftol": 1e-15, "gtol": 1e-9, "maxiter": 2000})
    return fun.best_x, fun.best_f


def _to_exact_optimum(fun, local, theta, fval, lower, below=None, upper=None, grad_hess=None,
                      scale=None):
    """Restart off the boundary while that lowers d, then Newton steps to the root of
    ∇d: with exact derivatives when ``grad_hess`` is given (alone, when they reach an
    interior minimum from the local optimizer's point), else, and near a bound, the
    projected finite-difference polish first."""
    upper = np.full(len(lower), np.inf) if upper is None else upper
    for _ in range(4):
        start = _escape_boundary(fun, theta, lower, fval, below, scale)
        if start is None:
            break
        local(fun, np.minimum(start, upper), lower, upper)
        theta, fval = fun.best_x, fun.best_f
    exact = grad_hess is not None and not np.isfinite(upper).any()
    done = False
    if exact:
        # exact Newton straight from the local optimizer's point: when it converges to
        # an interior minimum, the finite-difference polish (1 + k + k² evaluations
        # per step) has nothing left to do
        theta_n, fval_n, derivs = _exact_newton(fun, grad_hess, theta, lower, fval)
        if _newton_converged(derivs, lower):
            fun.derivs = derivs
            theta, fval, done = theta_n, fval_n, True
    if not done:
        theta, fval, converged = _polish(fun, theta, lower, fval, upper)
        if not converged and getattr(local, "func", local) is not _lbfgsb:
            # BOBYQA can stop on a flat ridge where Newton steps from a finite-difference
            # Hessian make no progress; a gradient method from there finishes the job
            _lbfgsb(fun, theta, lower, upper)
            theta, fval, _ = _polish(fun, fun.best_x, lower, fun.best_f, upper)
        if exact:
            theta, fval, derivs = _exact_newton(fun, grad_hess, theta, lower, fval)
            if derivs is not None:
                fun.derivs = derivs
    # tiny bounded values are set to the bound exactly
    near = np.isfinite(lower) & (theta < lower + 1e-9)
    if near.any():
        cand = np.where(near, lower, theta)
        fc = fun(cand)
        if fc <= fval + 1e-10:
            theta, fval = cand, fc
    return theta, fval


OPTIMIZERS = ("auto", "bobyqa", "lbfgsb", "nloptwrap")


def optimize_theta(f, theta0, lower, method="auto", upper=None, below=None, checks=True,
                   grad_hess=None, scale=None, newton_first=False, polish_only=False,
                   bobyqa_tol=None):
    """Minimize ``f`` from ``theta0`` under bounds: the one optimizer entry point.

    lmer, the profiles of confint and the bootstrap refits all call this, so
    they share the boundary escape and the Newton polish.

    Parameters
    ----------
    f : callable
        θ -> criterion (a :class:`~lmmlite.deviance.Deviance`, or any function
        returning +inf where it cannot be evaluated).
    theta0, lower : arrays
        Start and lower bounds (-inf for none).
    method : {"auto", "bobyqa", "lbfgsb", "nloptwrap"}
        ``"nloptwrap"`` stops where lme4 stops; ``"bobyqa"`` and ``"lbfgsb"``
        go on to the exact optimum (off-boundary restarts and Newton polish);
        ``"auto"`` is ``"bobyqa"``, or ``"lbfgsb"`` where nlopt (a core
        dependency) cannot be imported.
    upper : array, optional
        Upper bounds (default none).
    below : dict, optional
        For each θ index on a diagonal of some T_k, the indices below it in
        its column (``Deviance.below``): the boundary escape also tries their
        other sign.
    checks : bool
        Run lme4's post-fit checks (isSingular, checkConv, with their
        warnings); without them ``messages`` is empty.

    Returns
    -------
    OptResult
    grad_hess : callable, optional
        θ -> (exact gradient, Hessian) or None; the last stage of ``"bobyqa"`` and
        ``"lbfgsb"`` then solves the score equations with it, so that θ does not
        depend on round-off in ``f`` (lmer passes ``Deviance.grad_hess``; profiles
        and bootstrap refits, which need values rather than θ to round-off, do not).
    newton_first : bool
        Begin with Newton steps from ``theta0`` (lmer, for large models started near
        the optimum by start.moment_start); if they converge away from the bounds,
        no derivative-free search is run.
    polish_only : bool
        θ0 is a local optimizer's result already (glmer's stage 2 after its own BOBYQA
        run): skip the first local run, go on with the restarts and Newton steps.
    bobyqa_tol : float, optional
        BOBYQA's absolute tolerances on θ and f instead of lme4's 1e-8 (lmer's and glmer's
        default paths, whose BOBYQA runs only give the Newton steps their start).
    """
    if method not in OPTIMIZERS:
        raise LmmError(f"unknown optimizer {method!r}: use one of {', '.join(OPTIMIZERS)}")
    if method == "auto":
        method = "bobyqa" if have_nlopt() else "lbfgsb"
    if method in ("bobyqa", "nloptwrap") and not have_nlopt():
        raise MissingDependencyError(
            f"optimizer={method!r} needs the nlopt package, a dependency of lmmlite that "
            "cannot be imported here: reinstall it (pip install nlopt), or use "
            "optimizer='lbfgsb' (pure scipy, the same exact optimum)")
    lower = np.asarray(lower, dtype=float)
    upper = np.full(len(lower), np.inf) if upper is None else np.asarray(upper, dtype=float)
    theta0 = np.clip(np.asarray(theta0, dtype=float), lower, upper)
    fun = _Tracked(f)
    if len(theta0) == 0:        # nothing to optimize (e.g. a profile of a one-parameter model)
        return OptResult(theta=theta0, value=fun(theta0), nfev=1, singular=False,
                         messages=[], method=method)
    local = partial(_lbfgsb, scale=scale) if method == "lbfgsb" else \
        _bobyqa if bobyqa_tol is None else partial(_bobyqa, tol=bobyqa_tol)
    if newton_first and method != "nloptwrap":
        # from a start near the optimum, Newton steps with a finite-difference Hessian
        # converge in a few iterations; where they do not, the usual path goes on from
        # the best point they reached
        if np.all(lower == 0) and np.all(theta0 > SINGULAR_TOL):
            theta, fval, converged = quasi_newton_logs(fun, theta0, fun(theta0), upper)
        else:
            theta, fval, converged = quasi_newton(fun, theta0, lower, fun(theta0), upper)
        if converged and not _singular(theta, lower):
            return _result(fun, theta, fval, lower, method, checks)
        theta0 = fun.best_x
    if polish_only:     # θ0 is already BOBYQA's end: on to the exact optimum from there
        theta, fval = theta0, fun(theta0)
    else:
        theta, fval = local(fun, theta0, lower, upper)
    if method == "lbfgsb" and scale is not None and np.any((scale < 0.1) | (scale > 10)):
        # a badly scaled covariate: also start from T at its natural size, diag(scale)
        theta, fval = local(fun, np.clip(theta0 * scale, lower, upper), lower, upper)
    if theta is None:
        raise LmmError("the profiled deviance could not be evaluated at any θ tried "
                       "(the model matrices are numerically degenerate); check the data "
                       "for constant or duplicated columns")
    if method != "nloptwrap":
        theta, fval = _to_exact_optimum(fun, local, theta, fval, lower, below, upper, grad_hess,
                                        scale)
    return _result(fun, theta, fval, lower, method, checks)


def _result(fun, theta, fval, lower, method, checks):
    """The OptResult at θ: with lme4's post-fit checks, or (``checks=False``) without."""
    if not checks:
        return OptResult(theta=theta, value=fval, nfev=fun.n, method=method, messages=[],
                         singular=_singular(theta, lower))
    return _finish(fun, theta, fval, lower, method, fun)


def _finish(fun, theta, fval, lower, method, counter):
    """lme4's post-fit checks: isSingular, then checkConv for a regular fit."""
    singular = _singular(theta, lower)
    messages = []
    diag = np.isfinite(lower)
    if np.any(theta[diag] > 1e6):
        # d(θ) still falling as a relative SD grows without bound: σ² -> 0
        messages.append(f"Model failed to converge: a relative standard deviation reached "
                        f"{theta[diag].max():.3g} (the residual variance is nearly zero; "
                        "the random effects fit the data exactly?)")
        warnings.warn(messages[-1], ConvergenceWarning, stacklevel=3)
    if singular:
        messages.append("boundary (singular) fit: see help('isSingular')")
    else:
        known = fun.derivs if fun.derivs is not None and np.array_equal(fun.derivs[0], theta) \
            else None
        messages += check_convergence(fun, theta, lower, derivs=known)
    return OptResult(theta=theta, value=fval, nfev=counter.n, singular=singular,
                     messages=messages, method=method)


def check_convergence(f, theta, lower, hess_tol=1e-6, derivs=None):
    """lme4's checkConv on the finite-difference gradient g and Hessian H of d(θ).

    * gradient: with H = U'U (R's upper ``chol``), lme4 scales the gradient as
      ``solve(U, g)`` and warns when max(min(|scaled|, |g|)) > 0.002;
    * Hessian: a negative eigenvalue (degenerate Hessian), or eigenvalues so large
      or so spread that the model is nearly unidentifiable (tolerance 1e-6).
    """
    msgs = []
    free = ~_at_bound(theta, lower)
    if not free.any():
        return msgs
    g, H = derivs[1:] if derivs is not None else fd_grad_hess(f, theta, free, h=1e-4)
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(H))):
        # lme4's checkConv messages when the derivatives cannot be evaluated
        msgs += ["unable to evaluate scaled gradient",
                 "Problem with Hessian check (infinite or missing values?)"]
        for m in msgs:
            warnings.warn(m, ConvergenceWarning, stacklevel=4)
        return msgs
    ev = np.linalg.eigvalsh(H)
    if ev.min() < -hess_tol:
        msgs.append(f"Model failed to converge: degenerate  Hessian with "
                    f"{int((ev < -hess_tol).sum())} negative eigenvalues")
    else:
        try:
            scaled = np.linalg.solve(np.linalg.cholesky(H).T, g)
        except np.linalg.LinAlgError:
            scaled = g
        bad = np.minimum(np.abs(scaled), np.abs(g))
        if bad.max() > GRAD_TOL:
            k = int(np.argmax(bad))
            msgs.append(f"Model failed to converge with max|grad| = {bad.max():.6g} "
                        f"(tol = {GRAD_TOL}, component {k + 1})")
        if ev.max() * hess_tol > 1:
            msgs.append("Model is nearly unidentifiable: very large eigenvalue\n"
                        " - Rescale variables?")
        elif ev.min() > 0 and ev.max() / ev.min() > 1 / hess_tol:
            msgs.append("Model is nearly unidentifiable: large eigenvalue ratio\n"
                        " - Rescale variables?")
    for m in msgs:
        warnings.warn(m, ConvergenceWarning, stacklevel=4)
    return msgs
