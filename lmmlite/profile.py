"""Likelihood profiles of lmer and glmer fits: the signed root deviance ζ and its roots.

For a parameter ψ_i of a fit with deviance d and minimum d̂ (Bates et al.
2015, JSS 67(1), sec. 5.1; lme4's ``profile.merMod``),

    ζ_i(x) = sign(x - ψ̂_i) sqrt(d_i(x) - d̂),   d_i(x) = min { d(ψ) : ψ_i = x },

the deviance minimized over all the other parameters with ψ_i held at x.
The profile interval at level 1 - α is {x : |ζ_i(x)| ≤ z_{1-α/2}}; an end
that ζ does not reach before a bound of ψ_i (sd = 0, cor = ±1) is the bound.

:class:`Profile` holds what lmer and glmer share: ζ from a "minimum with ψ_i
fixed" callable, and the ends of the interval as roots of ζ(x) = ±z (secant
steps from the Wald guess ψ̂_i ± z se_i, safeguarded by bisection once the
root is bracketed). lme4 instead evaluates ζ on a grid and interpolates it
with a spline; the roots here are exact up to the tolerance of the inner
minimization, so lme4's intervals differ by its interpolation error.

The two callables:

* :func:`lmer_profile`: the parameters are (sd/cor, σ, β) on the ML deviance
  (REML fits are refitted by ML first, as lme4); with a variance parameter
  held the others are re-optimized with β profiled out by PLS; with β_j held
  the model is refitted with X_j β_j as an offset.
* :func:`glmer_profile`: the parameters are (sd/cor, β) on the fit's
  objective, -2 logLik of the Laplace (or adaptive Gauss-Hermite)
  approximation; β cannot be profiled out, so each ζ re-optimizes all other
  parameters (lme4 profiles glmer fits the same way, in the sd scale).
  The inner minimization is a quasi-Newton method started from the
  extrapolated path of the previous solutions, with the Hessian at the
  optimum as the first curvature (:class:`_Path`).
"""

import warnings

import numpy as np

from .deviance import Deviance
from .errors import LmmError
from .glmm import deriv12
from .optimize import quasi_newton, optimize_theta

ZETA_TOL = 1e-7       # |ζ(x) - target| at which an end is accepted
MAX_ZETA_EVALS = 40


class Profile:
    """ζ of each parameter of a fit, and the ends of its profile intervals.

    Parameters
    ----------
    names : list of str
        The parameters (lme4's names: .sig01, ..., then the fixed effects).
    est, lower, upper : arrays
        Estimates and bounds.
    se : array
        A first guess of each parameter's standard error (the first point
        tried is est ± z se).
    base : float
        The deviance at the estimates (its minimum).
    fixed_min : callable
        ``fixed_min(i, x)``: the deviance minimized over the other parameters
        with parameter i held at x (+inf where it cannot be evaluated).
    finish : callable, optional
        Called by the users of the profile when they are done with it.
    """

    def __init__(self, names, est, lower, upper, se, base, fixed_min, finish=None):
        self.names = list(names)
        self.est = np.asarray(est, dtype=float)
        self.lower = np.asarray(lower, dtype=float)
        self.upper = np.asarray(upper, dtype=float)
        self.se = np.asarray(se, dtype=float)
        self.base = float(base)
        self.fixed_min = fixed_min
        self.finish = finish or (lambda: None)

    def index(self, names=None):
        """Positions of ``names`` (all parameters when None), in the profile's order."""
        if names is None:
            return list(range(len(self.names)))
        bad = [n for n in names if n not in self.names]
        if bad:
            raise LmmError(f"unknown parameter(s) {', '.join(map(str, bad))}; "
                           f"choose from {', '.join(self.names)}")
        return [i for i, n in enumerate(self.names) if n in names]

    def zeta(self, i, x):
        """The signed root deviance of parameter i at x (±inf where d cannot be evaluated)."""
        if x == self.est[i]:
            return 0.0
        d = self.fixed_min(i, x) - self.base
        if not np.isfinite(d):
            return np.sign(x - self.est[i]) * np.inf
        return np.sign(x - self.est[i]) * np.sqrt(max(d, 0.0))

    def interval(self, i, z):
        """The ends of {x : |ζ_i(x)| ≤ z}: [lower end, upper end]."""
        return [self._end(i, -1, z), self._end(i, 1, z)]

    def _end(self, i, sgn, z):
        est, se = self.est[i], self.se[i]
        bound = self.lower[i] if sgn < 0 else self.upper[i]
        if est == bound:
            return bound
        target = sgn * z
        xtol = 1e-10 * (abs(est) + se)
        inner, outer = (est, 0.0), None     # |ζ| below z, at or beyond z
        prev = inner
        x = est + sgn * z * se
        x = max(x, bound) if sgn < 0 else min(x, bound)
        for _ in range(MAX_ZETA_EVALS):
            zx = self.zeta(i, x)
            if np.isfinite(zx) and abs(zx - target) < ZETA_TOL:
                return x
            if sgn * (zx - target) >= 0:
                outer = (x, zx)
            else:
                inner = (x, zx)
            if outer is None and x == bound:
                return bound                 # ζ does not reach z before the bound
            if outer is not None and abs(outer[0] - inner[0]) < xtol:
                root = _secant(inner, outer, target)
                return outer[0] if root is None else root
            nxt = _secant(prev, (x, zx), target) if np.isfinite(zx) else None
            prev = (x, zx) if np.isfinite(zx) else prev
            if outer is None:
                # not bracketed yet: extrapolate outwards, by at most 4 times the distance so far
                far = inner[0] + sgn * 4 * abs(inner[0] - est)
                if nxt is None or sgn * (nxt - inner[0]) <= 0:
                    nxt = far
                nxt = min(nxt, far) if sgn > 0 else max(nxt, far)
                nxt = max(nxt, bound) if sgn < 0 else min(nxt, bound)
            else:
                lo, hi = sorted((inner[0], outer[0]))
                # the secant step if it falls inside the bracket, else bisection
                if nxt is None or not lo < nxt < hi:
                    nxt = 0.5 * (inner[0] + outer[0])
            x = nxt
        warnings.warn(f"the profile of {self.names[i]} did not converge: NaN", stacklevel=3)
        return np.nan


def _secant(a, b, target):
    """Where the line through (x, ζ) points a and b reaches ζ = target (None if flat)."""
    (xa, za), (xb, zb) = a, b
    if zb == za or not (np.isfinite(za) and np.isfinite(zb)):
        return None
    return xb + (target - zb) * (xb - xa) / (zb - za)


# ---------------------------------------------------------------------- lmer
def exact_method(fit):
    """The optimizer of profiles and bootstrap refits: the fit's, run to the exact optimum."""
    return "lbfgsb" if fit.opt.method == "lbfgsb" else "bobyqa"


def lmer_profile(fit):
    """The profile of an lmer fit over (sd/cor, σ, β) on the ML deviance (module docstring)."""
    ml = fit.refit(REML=False) if fit.REML else fit
    dev = Deviance(ml.devfun.blocks, ml.devfun.X, ml.devfun.y, REML=False)
    cov = ml.covariance
    method = exact_method(fit)
    vp = cov.sdcor(ml.theta, ml.sigma)
    lo, hi = cov.sdcor_bounds()
    nvp = len(vp)

    def dev_vp(v):
        """ML deviance at the sd/cor/σ vector v, β profiled out."""
        sigma = v[-1]
        if sigma <= 0 or np.any(v > hi):    # a correlation above 1
            return np.inf
        try:
            fac = dev.factor(cov.theta_from_sdcor(v))
        except np.linalg.LinAlgError:
            return np.inf
        val = fac.logdet_Z() + dev.pwrss(fac) / sigma ** 2 + dev.n * np.log(2 * np.pi * sigma ** 2)
        return val if np.isfinite(val) else np.inf

    def fixed_min(i, x):
        if i < nvp:
            free = np.arange(nvp) != i

            def f(z):
                v = vp.copy()
                v[i] = x
                v[free] = z
                return dev_vp(v)

            return optimize_theta(f, vp[free], lo[free], method, upper=hi[free],
                                  checks=False).value
        j = i - nvp
        X = dev.X
        keep = np.arange(X.shape[1]) != j
        d = Deviance(dev.blocks, X[:, keep], dev.y - x * X[:, j], REML=False)
        # only the minimum value matters here (first-order insensitive to θ), so the
        # exact-derivative last stage (grad_hess) is not worth its cost
        return optimize_theta(d, ml.theta, d.lower, method, below=d.below, checks=False).value

    # first guesses of the standard errors: lme4's starting steps for the variance
    # parameters, the Wald standard errors for β
    se_vp = np.where(vp <= lo, np.where(hi == np.inf, 0.1 * vp[-1], 0.1),
                     np.where(hi == 1.0, 0.1 * (1 - np.abs(vp)) + 1e-3, 0.25 * vp))
    se_beta = np.sqrt(np.diag(ml.vcov.to_numpy()))
    p = len(se_beta)
    # the minimum of the same function (for weighted fits, ml.deviance adds -Σ log w)
    return Profile(cov.sdcor_names() + list(ml.fixef.index),
                   np.concatenate([vp, ml.fixef.to_numpy()]),
                   np.concatenate([lo, np.full(p, -np.inf)]),
                   np.concatenate([hi, np.full(p, np.inf)]),
                   np.concatenate([se_vp, se_beta]), dev_vp(vp), fixed_min)


# ---------------------------------------------------------------------- glmer
def glmer_profile(fit):
    """The profile of a glmer fit over (sd/cor, β) on its objective (module docstring)."""
    if fit.nAGQ == 0:
        raise LmmError("profile intervals need a fit with nAGQ >= 1 (its objective is a "
                       "function of θ and β); use method='Wald' or refit with nAGQ=1")
    model, cov = fit.model, fit.covariance
    k = len(fit.theta)
    lo, hi = cov.sdcor_bounds()
    p = len(fit.fixef)
    lower = np.concatenate([lo[:-1], np.full(p, -np.inf)])
    upper = np.concatenate([hi[:-1], np.full(p, np.inf)])
    est = np.concatenate([cov.sdcor(fit.theta, 1.0)[:-1], fit.fixef.to_numpy()])
    x_opt = np.concatenate([fit.theta, fit.fixef.to_numpy()])

    def dev(v):
        """The fit's objective at v = (sd/cor, β)."""
        if np.any(v[:k] > hi[:-1]) or np.any(v[:k] < lo[:-1]):
            return np.inf
        theta = cov.theta_from_sdcor(np.append(v[:k], 1.0))
        return model.objective(np.concatenate([theta, v[k:]]))

    base = dev(est)
    H = _hessian(dev, est, lower, base)
    se = _wald_se(H, est, lower)
    path = _Path(dev, est, H, lower, upper, se, exact_method(fit))
    # leave the PIRLS warm start at the optimum when done
    return Profile(cov.sdcor_names()[:-1] + list(fit.fixef.index), est, lower, upper, se,
                   base, path.fixed_min, finish=lambda: model.objective(x_opt))


def _hessian(dev, est, lower, base):
    """lme4's deriv12 Hessian of the deviance at the estimates, over the parameters
    above their bounds (a parameter at its bound gets curvature 1, no cross terms)."""
    n = len(est)
    free = est > lower
    H = np.eye(n)
    if free.any():
        idx = np.flatnonzero(free)

        def sub(w):
            v = est.copy()
            v[idx] = w
            return dev(v)

        _, Hf = deriv12(sub, est[idx], fx=base, lower=lower[idx])
        H[np.ix_(idx, idx)] = 0.5 * (Hf + Hf.T)
    return H


def _wald_se(H, est, lower):
    """sqrt(diag(2 H⁻¹)) of the deviance's Hessian; for a parameter at its bound (or
    where H is not positive definite) 0.1 + 0.1 |est|, a first step only."""
    se = np.full(len(est), np.nan)
    free = est > lower
    try:
        V = 2 * np.linalg.inv(H[np.ix_(free, free)])
        se[free] = np.sqrt(np.diag(V))
    except np.linalg.LinAlgError:
        pass
    bad = ~np.isfinite(se) | (se <= 0)
    se[bad] = 0.1 + 0.1 * np.abs(est[bad])
    return se


class _Recorded:
    """f, with the (θ, gradient, Hessian) that the quasi-Newton steps leave on it."""

    def __init__(self, f):
        self.f, self.derivs = f, None

    def __call__(self, x):
        return self.f(x)


class _Path:
    """The minima of the deviance with one parameter held, along each parameter's path.

    For parameter i held at x the other parameters start from the line through
    the two previous solutions of the same path nearest to x (or from the
    optimum moved along -H_oo⁻¹ H_oi, the implicit-function direction at ψ̂),
    and are minimized by quasi-Newton steps (:func:`lmmlite.optimize.quasi_newton`)
    from the last curvature of the path; where they do not converge (a bound reached), by
    :func:`lmmlite.optimize.optimize_theta`.
    """

    def __init__(self, dev, est, H, lower, upper, se, method):
        self.dev, self.est, self.H = dev, est, H
        self.lower, self.upper, self.se, self.method = lower, upper, se, method
        self.solved = {}           # i -> list of (x, full parameter vector), from ψ̂
        self.curvature = {}        # i -> the last quasi-Newton matrix of path i

    def _start(self, i, x, others):
        path = self.solved.setdefault(i, [(self.est[i], self.est)])
        pts = sorted(path, key=lambda s: abs(s[0] - x))[:2]
        if len(pts) == 2 and pts[0][0] != pts[1][0]:
            (x0, v0), (x1, v1) = pts
            v = v0 + (x - x0) * (v1 - v0) / (x1 - x0)
        else:
            Hoo = self.H[np.ix_(others, others)]
            try:
                slope = -np.linalg.solve(Hoo, self.H[others, i])
            except np.linalg.LinAlgError:
                slope = np.zeros(len(others))
            v = self.est.copy()
            v[others] += (x - self.est[i]) * slope
        return np.clip(v[others], self.lower[others], self.upper[others])

    def fixed_min(self, i, x):
        others = np.flatnonzero(np.arange(len(self.est)) != i)

        def f(z):
            v = self.est.copy()
            v[i] = x
            v[others] = z
            return self.dev(v)

        start = self._start(i, x, others)
        lower, upper = self.lower[others], self.upper[others]
        fun = _Recorded(f)
        B = self.curvature.get(i, self.H[np.ix_(others, others)])
        with np.errstate(all="ignore"):
            z, value, ok = quasi_newton(fun, start, lower, fun(start), upper, hessian=B)
        if ok and fun.derivs is not None and len(fun.derivs[1]) == len(others):
            self.curvature[i] = fun.derivs[2]      # the path's last curvature: the next start
        elif not ok:
            opt = optimize_theta(f, z, lower, self.method, upper=upper, checks=False)
            z, value = opt.theta, opt.value
        if np.isfinite(value):
            v = self.est.copy()
            v[i] = x
            v[others] = z
            self.solved.setdefault(i, []).append((x, v))
        return value
