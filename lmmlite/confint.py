"""Confidence intervals for an lmer or glmer fit, as lme4's ``confint.merMod``
(and R's ``confint.lm``).

Rows ``.sig01, .sig02, ..., .sigma`` (the random-effects standard deviations
and correlations, term by term, each term's lower triangle column by column:
sd, cor, ..., sd; then the residual sd, which a glmer fit does not have)
followed by the fixed effects.

* ``"Wald"``: β̂ ± z se(β̂); NA for the variance parameters (as lme4).
* ``"profile"``: likelihood-ratio intervals {ψ: |ζ(ψ)| ≤ z_{1-α/2}} from the
  signed root deviance ζ of each parameter (:mod:`lmmlite.profile`: the ML
  deviance of lmer, REML fits refitted by ML first as lme4; glmer's Laplace
  or AGQ objective).  lme4 interpolates ζ with splines on a grid; here the
  end points are roots of ζ(ψ) = ±z, so they agree with lme4 up to lme4's
  interpolation error (~1e-4).  An end that the profile does not reach
  before a bound (sd = 0, cor = ±1) is the bound, as lme4.
* ``"boot"`` (lmer only): parametric bootstrap (simulate from the fitted model, refit),
  percentile intervals with the normal-scale interpolation of the boot
  package (Davison & Hinkley 1997, eq. 5.8).
"""

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from .errors import LmmError, message, progress_bar
from .fit import FitBase
from .printing import format_scalar
from .profile import exact_method, glmer_profile, lmer_profile
from .simulate import draw_responses


def is_glmm(fit):
    return getattr(fit, "family", None) is not None


def param_names(fit):
    """lme4's old-style names: .sig01, .sig02, ..., .sigma (no .sigma for glmer)."""
    names = fit.covariance.sdcor_names()
    return names[:-1] if is_glmm(fit) else names


def _perc_names(level):
    a = (1 - level) / 2
    return [f"{format_scalar(100 * q, digits=3).strip()} %" for q in (a, 1 - a)]


def profile_of(fit):
    """The likelihood profile of an lmer or glmer fit (:mod:`lmmlite.profile`)."""
    return glmer_profile(fit) if is_glmm(fit) else lmer_profile(fit)


def _profile_ci(fit, names, level):
    z = stats.norm.ppf(1 - (1 - level) / 2)
    pr = profile_of(fit)
    try:
        return {pr.names[i]: pr.interval(i, z) for i in pr.index(names)}
    finally:
        pr.finish()


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
    method = exact_method(fit)
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
    fit : LmerFit, GlmerFit or LmFit
        An lm fit gets R's t intervals of its coefficients (``method`` is
        ignored; aliased coefficients give NA).
    parm : list of str, "theta_" or "beta_", optional
        Rows to compute (names as in the result); default all.
    level : float
        Confidence level.
    method : {"profile", "Wald", "boot"}
        ``"boot"`` for lmer fits only.
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
        Index ``.sig01, ..., .sigma`` (no ``.sigma`` for glmer) and the
        fixed-effect names; columns
        e.g. ``"2.5 %"``, ``"97.5 %"``.
    """
    if not isinstance(fit, FitBase):
        raise LmmError(f"confint() takes an lm, lmer or glmer fit, not {type(fit).__name__}")
    if not 0 < level < 1:
        raise LmmError(f"level must be between 0 and 1, not {level}")
    if not fit.mixed:
        return _lm_ci(fit, parm, level)
    allnames = param_names(fit) + list(fit.fixef.index)
    nvp = len(param_names(fit))
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
    if method == "boot" and is_glmm(fit):
        raise LmmError("method='boot' is not available for glmer fits; use 'profile' or 'Wald'")
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
