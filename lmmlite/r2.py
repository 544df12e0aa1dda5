"""Variance shares of an lmer fit: the ICC and Nakagawa's R², as R's performance package.

Nakagawa & Schielzeth (2013, Methods Ecol. Evol. 4, 133-142) and Johnson's
extension to random slopes (2014, Methods Ecol. Evol. 5, 944-946):

* σ²_f = var(X β̂) over the observations (denominator n - 1);
* σ²_r = Σ_k mean_i z_ik' Σ_k z_ik, the random-effect variance averaged over
  the observations (z_ik: row i of term k's columns, Σ_k its covariance), so a
  random slope's share depends on where its covariate is centred;
* σ²_ε = σ̂².

R²_marginal = σ²_f / (σ²_f + σ²_r + σ²_ε), R²_conditional = (σ²_f + σ²_r) / (...);
ICC adjusted = σ²_r / (σ²_r + σ²_ε), unadjusted = σ²_r / (σ²_f + σ²_r + σ²_ε).
A singular fit gives NaN (performance returns NA with a warning).
"""

import warnings

import numpy as np

from .errors import LmmError


def variance_components(fit, first_term_per_group=False):
    """(σ²_f, σ²_r, σ²_ε) of an lmer fit as performance (insight::get_variance) computes them.

    ``first_term_per_group=True`` counts only the first random term of each grouping
    factor, as performance 0.10 / insight 0.19 do (they select the variance
    components by grouping-factor name, so a second term such as ``(0 + x | g)``
    beside ``(1 | g)`` is left out); the default counts every term.
    """
    if not getattr(fit, "mixed", False):
        raise LmmError("icc() and r2() need an lmer fit")
    vf = float(np.var(fit.design.X @ fit.fixef.to_numpy(), ddof=1))
    vr, seen = 0.0, set()
    for b, S in zip(fit.blocks, fit.covariance.covariances(fit.theta, fit.sigma)):
        if first_term_per_group and b.group in seen:
            continue
        seen.add(b.group)
        vr += float(np.mean(np.einsum("ij,jk,ik->i", b.X, S, b.X)))
    return vf, vr, float(fit.sigma) ** 2


def _singular(fit, what):
    if fit.singular:
        warnings.warn(f"{what}: the fit is singular; the variance shares are not defined",
                      stacklevel=3)
        return True
    return False


def icc(fit, first_term_per_group=False):
    """Intraclass correlation, as performance::icc: {"adjusted", "unadjusted"}.

    ``first_term_per_group``: see :func:`variance_components`.
    """
    if _singular(fit, "icc"):
        return {"adjusted": np.nan, "unadjusted": np.nan}
    vf, vr, ve = variance_components(fit, first_term_per_group)
    return {"adjusted": vr / (vr + ve), "unadjusted": vr / (vf + vr + ve)}


def r2(fit, first_term_per_group=False):
    """Nakagawa's R², as performance::r2_nakagawa: {"conditional", "marginal"}.

    ``first_term_per_group``: see :func:`variance_components`.
    """
    if _singular(fit, "r2"):
        return {"conditional": np.nan, "marginal": np.nan}
    vf, vr, ve = variance_components(fit, first_term_per_group)
    tot = vf + vr + ve
    return {"conditional": (vf + vr) / tot, "marginal": vf / tot}
