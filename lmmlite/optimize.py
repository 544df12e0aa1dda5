"""Stage 4: minimize the profiled deviance over θ under diag(Λ) ≥ 0.

Two optimizers:

* ``"bobyqa"``: lme4's default (``nloptwrap``): NLopt's BOBYQA (Powell 2009)
  from θ = start with absolute tolerances 1e-8 on θ and on the criterion.
  Same algorithm, settings and start as lme4, so the same stopping point --
  lme4's printed digits are reproduced.  Needs the optional ``nlopt`` package.
* ``"lbfgsb"``: pure scipy: L-BFGS-B with central finite-difference
  gradients, then a few Newton steps on the free coordinates using a
  finite-difference Hessian.  Converges more tightly than lme4 (its
  criterion is never higher, often lower by ~1e-8), so a variance component
  can differ from lme4's in the 5th significant digit.

``"auto"`` takes bobyqa when nlopt is installed.  Afterwards, lme4's checks:
``isSingular`` (a bounded θ within 1e-4 of its bound) and ``checkConv``
(the scaled gradient and the Hessian at the optimum).
"""

from dataclasses import dataclass
import warnings

import numpy as np
from scipy.optimize import minimize

from .errors import ConvergenceWarning

SINGULAR_TOL = 1e-4       # lme4's isSingular tolerance
GRAD_TOL = 2e-3           # lme4's check.conv.grad tolerance


@dataclass
class OptResult:
    theta: np.ndarray
    value: float
    nfev: int
    singular: bool
    messages: list
    method: str


def fd_grad_hess(f, x, free, h=1e-4):
    """Central-difference gradient and Hessian of f on the coordinates ``free``."""
    idx = np.flatnonzero(free)
    k = len(idx)
    f0 = f(x)
    g = np.zeros(k)
    H = np.zeros((k, k))
    steps = h * np.maximum(np.abs(x[idx]), 0.1)
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


def _at_bound(theta, lower, tol=1e-10):
    return np.isfinite(lower) & (theta <= lower + tol)


def _polish(f, theta, lower, fval):
    """A few projected Newton steps on the coordinates away from their bounds."""
    for _ in range(6):
        free = ~_at_bound(theta, lower)
        if not free.any():
            break
        g, H = fd_grad_hess(f, theta, free)
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)):
            break
        improved = False
        t = 1.0
        for _ in range(8):
            cand = theta.copy()
            cand[free] -= t * step
            cand = np.maximum(cand, lower)
            fc = f(cand)
            if fc <= fval:
                improved = fc < fval
                theta, fval = cand, fc
                break
            t /= 2
        if not improved or np.max(np.abs(t * step)) < 1e-10:
            break
    return theta, fval


def _escape_boundary(f, theta, lower, fval):
    """Probe into the interior from components stuck at their bound.

    d(θ) depends on Λ through ΛΛ', so θ_i = 0 is always a stationary point in
    its own coordinate: a gradient method that lands there may stop although
    the interior holds a lower deviance.  Returns a better start, or None.
    """
    best, best_val = None, fval
    for i in np.flatnonzero(_at_bound(theta, lower)):
        for step in (1e-3, 1e-2, 0.05, 0.2, 0.5, 1.0):
            cand = theta.copy()
            cand[i] = lower[i] + step
            fc = f(cand)
            if fc < best_val - 1e-10:
                best, best_val = cand, fc
    return best


def have_nlopt():
    try:
        import nlopt  # noqa: F401
    except ImportError:
        return False
    return True


def _bobyqa(fun, theta0, lower):
    """NLopt's BOBYQA with lme4's nloptwrap settings."""
    import nlopt
    opt = nlopt.opt(nlopt.LN_BOBYQA, len(theta0))
    opt.set_lower_bounds([lo if np.isfinite(lo) else -np.inf for lo in lower])
    opt.set_upper_bounds([np.inf] * len(theta0))
    opt.set_min_objective(lambda x, grad: float(fun(np.asarray(x))))
    opt.set_xtol_abs(1e-8)
    opt.set_ftol_abs(1e-8)
    opt.set_maxeval(100000)
    theta = np.asarray(opt.optimize(list(map(float, theta0))), dtype=float)
    return theta, float(opt.last_optimum_value())


_CONTROLLER = []


def blas_single_thread():
    """Limit BLAS to one thread (a context manager), when threadpoolctl is installed.

    The matrices are small to medium; multi-threaded OpenBLAS gains little on
    them and can be many times slower when the cores are busy.  The library
    scan is done once per process.
    """
    import contextlib
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return contextlib.nullcontext()
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


def optimize_theta(f, theta0, lower, method="auto"):
    """Minimize ``f`` (the profiled deviance) from ``theta0`` under ``lower`` bounds."""
    counter = {"n": 0}

    def fun(t):
        counter["n"] += 1
        return f(t)

    if method == "auto":
        method = "bobyqa" if have_nlopt() else "lbfgsb"
    if method == "bobyqa":
        if not have_nlopt():
            raise ImportError("optimizer='bobyqa' needs the nlopt package: pip install nlopt "
                              "(or use optimizer='lbfgsb')")
        theta, fval = _bobyqa(fun, theta0, lower)
    elif method == "lbfgsb":
        theta, fval = _lbfgsb(fun, theta0, lower)
    else:
        raise ValueError(f"unknown optimizer {method!r}: use 'bobyqa', 'lbfgsb' or 'auto'")
    return _finish(fun, theta, fval, lower, method, counter)


def _lbfgsb(fun, theta0, lower):
    """L-BFGS-B from the start, restarted off the boundary if needed, then polished."""
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
    start = np.asarray(theta0, dtype=float)
    theta, fval = start, np.inf
    for _ in range(5):
        res = minimize(fun, start, method="L-BFGS-B", jac="2-point", bounds=bounds,
                       options={"ftol": 1e-12, "gtol": 1e-6, "maxiter": 2000})
        if res.fun < fval:
            theta, fval = np.asarray(res.x, dtype=float), float(res.fun)
        start = _escape_boundary(fun, theta, lower, fval)
        if start is None:
            break
    theta, fval = _polish(fun, theta, lower, fval)
    # tiny bounded values are set to the bound exactly
    near = np.isfinite(lower) & (theta < lower + 1e-9)
    if near.any():
        cand = np.where(near, lower, theta)
        fc = fun(cand)
        if fc <= fval + 1e-10:
            theta, fval = cand, fc
    return theta, fval


def _finish(fun, theta, fval, lower, method, counter):
    """lme4's post-fit checks: isSingular, then checkConv for a regular fit."""
    singular = bool(np.any(np.isfinite(lower) & (theta < lower + SINGULAR_TOL)))
    messages = []
    if singular:
        messages.append("boundary (singular) fit: see help('isSingular')")
    else:
        messages += check_convergence(fun, theta, lower)
    return OptResult(theta=theta, value=fval, nfev=counter["n"], singular=singular,
                     messages=messages, method=method)


def check_convergence(f, theta, lower, hess_tol=1e-6):
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
    g, H = fd_grad_hess(f, theta, free, h=1e-4)
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
