"""Confidence intervals for an lmer fit, as lme4's ``confint.merMod`` (and R's ``confint.lm``).

Rows ``.sig01, .sig02, ..., .sigma`` (the random-effects standard deviations
and correlations, term by term, each term's lower triangle column by column:
sd, cor, ..., sd; then the residual sd) followed by the fixed effects.

* ``"Wald"``: β̂ ± z se(β̂); NA for the variance parameters (as lme4).
* ``"profile"``: likelihood-ratio intervals from the profiled ML deviance
  (Bates et al. 2015, JSS 67(1), sec. 5.1; lme4's ``profile.merMod``).
  For a parameter ψ the signed root deviance is
  ζ(ψ) = sign(ψ - ψ̂) sqrt(d̃(ψ) - d(ψ̂)), with d̃ the ML deviance minimized
  over all other parameters (variance parameters in the sd/correlation scale
  with σ explicit; the fixed effects profiled out exactly by PLS).  The
  interval is {ψ: |ζ(ψ)| ≤ z_{1-α/2}}.  lme4 interpolates ζ with splines on a
  grid; here the end points are roots of ζ(ψ) = ±z found by Brent's method,
  so they agree with lme4 up to lme4's interpolation error (~1e-4).  An end
  that the profile does not reach before a bound (sd = 0, cor = ±1) is the
  bound, as lme4.  REML fits are profiled on the ML deviance (lme4 refits
  by ML first).
* ``"boot"``: parametric bootstrap (simulate from the fitted model, refit),
  percentile intervals with the normal-scale interpolation of the boot
  package (Davison & Hinkley 1997, eq. 5.8).
"""

import warnings

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .deviance import Deviance
from .errors import LmmError, message, progress_bar
from .fit import FitBase
from .optimize import optimize_theta
from .printing import format_scalar
from .simulate import draw_responses


def param_names(fit):
    """lme4's old-style names: .sig01, .sig02, ..., .sigma."""
    return fit.covariance.sdcor_names()


def _perc_names(level):
    a = (1 - level) / 2
    return [f"{format_scalar(100 * q, digits=3).strip()} %" for q in (a, 1 - a)]


def _exact_method(fit):
    """The optimizer of profiles and bootstrap refits: the fit's, run to the exact optimum."""
    return "lbfgsb" if fit.opt.method == "lbfgsb" else "bobyqa"


class _Profiler:
    """Signed root ML deviance ζ(ψ) of each parameter of a fit."""

    def __init__(self, fit):
        ml = fit.refit(REML=False) if fit.REML else fit
        self.fit = ml
        self.dev = Deviance(ml.devfun.blocks, ml.devfun.X, ml.devfun.y, REML=False)
        self.cov = ml.covariance
        self.method = _exact_method(fit)
        self.n = self.dev.n
        self.vp = self.cov.sdcor(ml.theta, ml.sigma)
        self.lower, self.upper = self.cov.sdcor_bounds()
        # the minimum of the same function (for weighted fits, ml.deviance adds -Σ log w)
        self.base = self.dev_vp(self.vp)
        self.beta = ml.fixef.to_numpy()
        self.se = np.sqrt(np.diag(ml.vcov.to_numpy()))

    def dev_vp(self, v):
        """ML deviance at the sd/cor/σ vector v, β profiled out."""
        sigma = v[-1]
        if sigma <= 0 or np.any(v > self.upper):    # a correlation above 1
            return np.inf
        try:
            fac = self.dev.factor(self.cov.theta_from_sdcor(v))
        except np.linalg.LinAlgError:
            return np.inf
        val = fac.logdet_Z() + self.dev.pwrss(fac) / sigma ** 2 + self.n * np.log(2 * np.pi * sigma ** 2)
        return val if np.isfinite(val) else np.inf

    def zeta_vp(self, w, x):
        free = np.arange(len(self.vp)) != w

        def f(z):
            v = self.vp.copy()
            v[w] = x
            v[free] = z
            return self.dev_vp(v)

        val = optimize_theta(f, self.vp[free], self.lower[free], self.method,
                             upper=self.upper[free], checks=False).value
        d = max(val - self.base, 0.0)
        return np.sign(x - self.vp[w]) * np.sqrt(d)

    def zeta_beta(self, j, b):
        X = self.dev.X
        keep = np.arange(X.shape[1]) != j
        d = Deviance(self.dev.blocks, X[:, keep], self.dev.y - b * X[:, j], REML=False)
        # only the minimum value matters here (first-order insensitive to θ), so the
        # exact-derivative last stage (grad_hess) is not worth its cost
        val = optimize_theta(d, self.fit.theta, d.lower, self.method, below=d.below,
                             checks=False).value
        return np.sign(b - self.beta[j]) * np.sqrt(max(val - self.base, 0.0))

    def interval(self, zeta, est, scale, lo, hi, z):
        """Solve ζ(ψ) = -z and +z, expanding from the estimate; a bound if not reached."""
        out = []
        for sgn, bound in ((-1, lo), (1, hi)):
            target = sgn * z
            a, za = est, 0.0
            step = scale
            found = None
            for _ in range(60):
                b = est + sgn * step
                if (sgn < 0 and b <= bound) or (sgn > 0 and b >= bound):
                    b = bound
                zb = zeta(b)
                if (zb - target) * sgn >= 0:
                    found = (a, b) if sgn > 0 else (b, a)
                    break
                if b == bound:
                    break
                a, za = b, zb
                step *= 2
            if found is None:
                out.append(bound)
                continue
            if est == bound:
                out.append(bound)
                continue
            r = optimize.brentq(lambda x: zeta(x) - target, found[0], found[1],
                                xtol=1e-10 * max(abs(est), scale), rtol=1e-10)
            out.append(r)
        return out


def profile_parameters(pr, fit, names=None):
    """For each parameter to profile: (name, ζ function, estimate, step, lower, upper bound).

    ``pr`` is the fit's profiler; ``names`` restricts the parameters (default all).
    The step is the first distance tried from the estimate (confint, plot_profile).
    """
    out = []
    allnames = param_names(fit) + list(fit.fixef.index)
    for w in range(len(pr.vp)):
        nm = allnames[w]
        if names is not None and nm not in names:
            continue
        est = pr.vp[w]
        lo, hi = pr.lower[w], pr.upper[w]
        if est <= lo:          # lme4 does not profile below a parameter at its bound
            scale = 0.1 * pr.vp[-1] if hi == np.inf else 0.1
        elif hi == 1.0:
            scale = 0.1 * (1 - abs(est)) + 1e-3
        else:
            scale = 0.25 * est
        out.append((nm, lambda x, w=w: pr.zeta_vp(w, x), est, scale, lo, hi))
    for j, nm in enumerate(fit.fixef.index):
        if names is not None and nm not in names:
            continue
        out.append((nm, lambda b, j=j: pr.zeta_beta(j, b), pr.beta[j], pr.se[j],
                    -np.inf, np.inf))
    return out


def _profile_ci(fit, names, level):
    z = stats.norm.ppf(1 - (1 - level) / 2)
    pr = _Profiler(fit)
    return {nm: pr.interval(zeta, est, scale, lo, hi, z)
            for nm, zeta, est, scale, lo, hi in profile_parameters(pr, fit, names)}


def _wald_ci(fit, level):
    z = stats.norm.ppf(1 - (1 - level) / 2)
    rows = {nm: [np.nan, np.nan] for nm in param_names(fit)}
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    for nm, b, s in zip(fit.fixef.index, fit.fixef.to_numpy(), se):
        rows[nm] = [b - z * s, b + z * s]
    return rows


def bootstrap(fit, nsim=500, seed=None, progress=True):
    """Parametric bootstrap replicates of (sd/cor parameters, σ, β), an nsim x k array.

    Each replicate simulates y* = Xβ̂ + Zb* + ε*, b* ~ N(0, σ̂²ΛΛ'),
    ε* ~ N(0, σ̂²/w) (:func:`lmmlite.simulate.draw_responses`, as ``simulate``),
    and refits the model (REML or ML as the fit) from θ̂ through
    ``fit.model.refit(y=...).optimize()`` (lmer's optimizer, run to the exact
    optimum). A failed refit leaves a row of NaN.
    """
    rng = np.random.default_rng(seed)
    n, p = fit.nobs, len(fit.fixef)
    method = _exact_method(fit)
    out = np.full((nsim, len(fit.theta) + 1 + p), np.nan)
    for s in range(nsim):
        y = draw_responses(fit, rng)
        try:
            model = fit.model.refit(y=y)
            th = model.optimize(method, theta0=fit.theta, checks=False).theta
            d = model.dev
            fac = d.factor(th)
            beta, _ = d.solve(fac)
            sig = np.sqrt(d.pwrss(fac) / (n - p if fit.REML else n))
            out[s] = np.concatenate([d.covariance.sdcor(th, sig), beta])
        except (np.linalg.LinAlgError, ValueError):
            pass
        if progress:
            progress_bar(s + 1, nsim)
    return out


def _lm_ci(fit, parm, level):
    """R's ``confint.lm`` (the fit's own method), restricted to ``parm``."""
    ci = fit.confint(level=level)
    if parm is None:
        return ci
    names = [parm] if isinstance(parm, str) else list(parm)
    bad = [p for p in names if p not in ci.index]
    if bad:
        raise LmmError(f"unknown parameter(s) {', '.join(map(str, bad))}; "
                       f"choose from {', '.join(ci.index)}")
    return ci.loc[names]


def _perc(t, level):
    """boot's percentile interval: order statistics interpolated on the normal scale."""
    t = np.sort(t[np.isfinite(t)])
    R = t.size
    out = []
    for a in ((1 - level) / 2, (1 + level) / 2):
        rk = (R + 1) * a
        k = int(np.floor(rk))
        if k == rk and 1 <= k <= R:
            out.append(t[k - 1])
        elif k < 1:
            out.append(t[0])
        elif k >= R:
            out.append(t[-1])
        else:
            qa, qk, qk1 = stats.norm.ppf([a, k / (R + 1), (k + 1) / (R + 1)])
            out.append(t[k - 1] + (qa - qk) / (qk1 - qk) * (t[k] - t[k - 1]))
    return out


def confint(fit, parm=None, level=0.95, method="profile", nsim=500, seed=None, quiet=False):
    """Confidence intervals for the parameters of a fit (lme4's ``confint``, R's ``confint.lm``).

    Parameters
    ----------
    fit : LmerFit or LmFit
        An lm fit gets R's t intervals of its coefficients (``method`` is
        ignored; aliased coefficients give NA).
    parm : list of str, "theta_" or "beta_", optional
        Rows to compute (names as in the result); default all.
    level : float
        Confidence level.
    method : {"profile", "Wald", "boot"}
    nsim : int
        Bootstrap replicates (``"boot"``).
    seed : int, optional
        Seed of the bootstrap's random numbers (numpy's default_rng).
    quiet : bool
        Suppress lme4's "Computing ... confidence intervals ..." message and
        the bootstrap's progress bar (both go to stderr).

    Returns
    -------
    pandas.DataFrame
        Index ``.sig01, ..., .sigma`` and the fixed-effect names; columns
        e.g. ``"2.5 %"``, ``"97.5 %"``.
    """
    if not isinstance(fit, FitBase):
        raise LmmError(f"confint() takes an lm or lmer fit, not {type(fit).__name__}")
    if not 0 < level < 1:
        raise LmmError(f"level must be between 0 and 1, not {level}")
    if not fit.mixed:
        return _lm_ci(fit, parm, level)
    allnames = param_names(fit) + list(fit.fixef.index)
    nvp = len(fit.theta) + 1
    if parm is None:
        names = allnames
    elif isinstance(parm, str) and parm == "theta_":
        names = allnames[:nvp]
    elif isinstance(parm, str) and parm == "beta_":
        names = allnames[nvp:]
    else:
        parm = [parm] if isinstance(parm, str) else list(parm)
        bad = [p for p in parm if p not in allnames]
        if bad:
            raise LmmError(f"unknown parameter(s) {', '.join(map(str, bad))}; "
                           f"choose from {', '.join(allnames)}")
        names = [p for p in allnames if p in parm]
    cols = _perc_names(level)
    if method in ("profile", "boot") and not quiet:
        message(f"Computing {'profile' if method == 'profile' else 'bootstrap'} "
                "confidence intervals ...")
    if method == "Wald":
        rows = _wald_ci(fit, level)
    elif method == "profile":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows = _profile_ci(fit, names, level)
    elif method == "boot":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = bootstrap(fit, nsim=nsim, seed=seed, progress=not quiet)
        if np.all(np.isnan(t)):
            raise LmmError("all bootstrap runs failed")
        nfail = int(np.isnan(t[:, 0]).sum())
        if nfail:
            warnings.warn(f"{nfail} of {nsim} bootstrap refits failed", stacklevel=2)
        rows = {nm: _perc(t[:, k], level) for k, nm in enumerate(allnames)}
    else:
        raise LmmError(f"method must be 'profile', 'Wald' or 'boot', not {method!r}")
    return pd.DataFrame([rows[nm] for nm in names], index=names, columns=cols)
