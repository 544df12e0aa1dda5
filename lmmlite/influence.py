"""Leverage and influence: ``hatvalues``, ``influence``, ``cooks_distance`` (lme4 1.1-31).

* **Leverage.**  The fitted values of an LMM solve the penalized least-squares
  problem of Bates et al. (2015, JSS 67(1), eq. 3.7 and 3.13): with the
  prior weights W, ŷ_w = W^{1/2}[ZΛ X] û_β̂ = H W^{1/2} y and

      H = W^{1/2}[ZΛ X] A^{-1} [ZΛ X]' W^{1/2},
      A = [ZΛ X]'W[ZΛ X] + diag(I_q, 0),

  the hat matrix of the augmented least-squares system.  With A = LL' (the
  fit's blocked Cholesky factor, deviance.py), h_i = ||L^{-1} c_i||², c_i the
  i-th column of [ZΛ X]'W^{1/2}: lme4's ``hatvalues.merMod`` (C_L and C_R
  there are the two parts of L^{-1}c_i).  For an lm fit H is the usual
  W^{1/2}X(X'WX)^{-1}X'W^{1/2}, h_i = ||Q_i||² from the QR of W^{1/2}X.
* **Cook's distance of a fit** (lme4's ``cooks.distance.merMod``, as R's
  for lm): D_i = (r_i / (1 - h_i))² h_i / (σ̂² p), r_i the Pearson residual
  sqrt(w_i)(y_i - ŷ_i), p the rank of X.  It uses no refit: it is the lm
  formula with the mixed model's leverages.
* **Deletion influence** (lme4's ``influence.merMod``): the model is refitted
  without each case (or each level of ``groups``), starting from the full
  fit's θ̂ as lme4 does (``start = theta``), and the fixed effects, the
  variance components (σ², then each term's covariance matrix, lower
  triangle by columns) and Cov(β̂) are kept for every deletion.  Its
  ``cooks_distance()`` is lme4's ``cooks.distance.influence.merMod``:
  D_i = (β̂_(-i) - β̂)' Cov(β̂)^{-1} (β̂_(-i) - β̂) (n - p)/(n p), n the number of
  deletions.

Refits build the deleted data's design (``build_design``: the formula is not
re-parsed; stateful transforms such as ``scale`` are evaluated on the
remaining rows, as R's ``update(subset = )``) and go through the model's own
optimizer (``LmerModel.optimize``).
"""

from dataclasses import dataclass
import time
import warnings

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp

from .design import build_design
from .errors import LmmError, progress_bar
from .fit import FitBase
from .model import LmerModel
from .threads import blas_single_thread

PROGRESS_AFTER = 3.0    # seconds: the progress bar appears when the refits take longer


def _check_fit(fit, what):
    if not isinstance(fit, FitBase):
        raise LmmError(f"{what}() takes an lm or lmer fit, not {type(fit).__name__}")


# ---------------------------------------------------------------------- leverage
def hatvalues(fit):
    """Diagonal of the hat matrix (lme4's ``hatvalues.merMod``, R's ``hatvalues.lm``).

    Returns
    -------
    pandas.Series
        h_i for each observation used by the fit (index: the data's row labels).
    """
    _check_fit(fit, "hatvalues")
    if not fit.mixed:
        return pd.Series(_lm_hat(fit), index=fit.frame.row_index)
    return pd.Series(_lmer_hat(fit.devfun, fit._fac), index=fit.frame.row_index)


def _lm_hat(fit):
    X = fit.design.X
    w = np.ones(X.shape[0]) if fit.design.weights is None else fit.design.weights
    if X.shape[1] == 0:
        return np.zeros(X.shape[0])
    Q, _ = np.linalg.qr(X * np.sqrt(w)[:, None])
    return np.einsum("ij,ij->i", Q, Q)


def _lmer_hat(dev, fac, chunk_entries=2_000_000):
    """h_i = ||L^{-1} c_i||² from the blocked factor (deviance.py's notation).

    L = [[L1, 0], [L21, L22]]: L1 per level of term 1 (the first p1 rows of
    c_i: T_1' z_1i in the block of i's level), L21 and L22 for the rest
    (Λ_k' z_ki of terms 2..K, then the centred x̃_i).  The y row of L is not
    used.  Dev's blocks and X already carry sqrt(w).
    """
    b1, T1 = dev.blocks[0], fac.Ts[0]
    n, p1, m = dev.n, dev.p1, dev.m
    # term 1: a1_i = L1[l_i]^{-1} T1' z_1i
    v1 = b1.X @ T1
    a1 = np.linalg.solve(fac.L1[b1.codes], v1[:, :, None])[:, :, 0]
    h = np.einsum("ij,ij->i", a1, a1)
    L22 = fac.L22[:m - 1, :m - 1]
    L21 = fac.L21[:m - 1]
    step = max(1, chunk_entries // max(m, 1))
    for start in range(0, n, step):
        rows = np.arange(start, min(n, start + step))
        k = len(rows)
        # a1 as a sparse (q1 x k) matrix: entries at level l_i's p1 rows, column i
        A1 = sp.csc_matrix((a1[rows].ravel(),
                            ((b1.codes[rows, None] * p1 + np.arange(p1)).ravel(),
                             np.repeat(np.arange(k), p1))), shape=(dev.l1 * p1, k))
        S = A1.T @ L21.T                             # (k x (m-1)): L21 a1 for every row
        rhs = _rest_columns(dev, fac.Ts, rows) - (S.toarray() if sp.issparse(S) else S).T
        a2 = sla.solve_triangular(L22, rhs, lower=True, check_finite=False)
        h[rows] += np.einsum("ij,ij->j", a2, a2)
    return h


def _rest_columns(dev, Ts, rows):
    """[Λ_2'Z_2' .. Λ_K'Z_K'; X̃'] for the given rows, an ((m-1) x len(rows)) array."""
    out = np.zeros((dev.m - 1, len(rows)))
    start, cols = 0, np.arange(len(rows))
    for b, T in zip(dev.blocks[1:], Ts[1:]):
        v = b.X[rows] @ T                            # (k, p): T_k' z_ki as rows
        for j in range(b.p):
            out[start + b.codes[rows] * b.p + j, cols] = v[:, j]
        start += b.nlevels * b.p
    out[start:] = dev.Xc[rows].T
    return out


# ---------------------------------------------------------------------- Cook's distance
def cooks_distance(x):
    """Cook's distance, as lme4's two methods (and R's for lm).

    Parameters
    ----------
    x : LmerFit, LmFit or Influence
        A fit: D_i = (r_i/(1 - h_i))² h_i / (σ̂² p) from the leverages (no
        refits; r the Pearson residuals, p the rank of X).  An
        :class:`Influence` (from :func:`influence`): from the deletion refits,
        D_i = Δβ_i' Cov(β̂)^{-1} Δβ_i (n - p)/(n p).

    Returns
    -------
    pandas.Series
    """
    if isinstance(x, Influence):
        return x.cooks_distance()
    _check_fit(x, "cooks_distance")
    h = hatvalues(x).to_numpy()
    if x.mixed:
        r = x.residuals(type="pearson").to_numpy()
    else:
        w = np.ones(x.nobs) if x.design.weights is None else x.design.weights
        r = np.sqrt(w) * x.residuals().to_numpy()
    p = x.design.X.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (r / (1 - h)) ** 2 * h / (x.sigma ** 2 * p)
    d[~np.isfinite(d)] = np.nan
    return pd.Series(d, index=x.frame.row_index)


# ---------------------------------------------------------------------- deletion
@dataclass(repr=False)
class Influence:
    """Deletion diagnostics of an lmer fit (lme4's ``influence.merMod`` object).

    Attributes
    ----------
    fixed_effects : Series
        β̂ of the full fit; ``fixed_effects_deleted`` (DataFrame, one row per
        deletion) β̂ without it.
    var_cov_comps : Series
        σ² and each term's variances and covariances (lme4's names, e.g.
        ``sigma^2``, ``Subject:v[(Intercept)]``, ``Subject:C[Days,(Intercept)]``);
        ``var_cov_comps_deleted`` per deletion.
    vcov : DataFrame
        Cov(β̂) of the full fit; ``vcov_deleted`` a list of them, per deletion.
    groups : str
        ``"case"`` or the column whose levels were deleted.
    deleted : list
        The deleted cases (row labels) or levels, in order of appearance.
    converged : ndarray of bool
        Whether each refit ended without an optimizer warning.
    function_evals : ndarray of int
        Deviance evaluations of each refit.
    """

    fixed_effects: pd.Series
    fixed_effects_deleted: pd.DataFrame
    var_cov_comps: pd.Series
    var_cov_comps_deleted: pd.DataFrame
    vcov: pd.DataFrame
    vcov_deleted: list
    groups: str
    deleted: list
    converged: np.ndarray
    function_evals: np.ndarray

    def __repr__(self):
        what = "case" if self.groups == "case" else f"level of {self.groups}"
        return (f"<Influence: {len(self.deleted)} refits, each without one {what}; "
                f"{int(np.sum(~self.converged))} with optimizer warnings. "
                "See cooks_distance(x), x.dfbeta(), x.dfbetas(), x.fixed_effects_deleted>")

    def dfbeta(self, which="fixed"):
        """Change of each estimate on deletion (lme4's ``dfbeta``): deleted minus full.

        ``which="fixed"`` for β̂, ``"var.cov"`` for the variance components.
        """
        if which == "fixed":
            return self.fixed_effects_deleted - self.fixed_effects
        if which == "var.cov":
            return self.var_cov_comps_deleted - self.var_cov_comps
        raise LmmError(f"which must be 'fixed' or 'var.cov', not {which!r}")

    def dfbetas(self):
        """dfbeta of β̂ divided by the deleted fit's standard errors (lme4's ``dfbetas``)."""
        se = np.array([np.sqrt(np.diag(v.to_numpy())) for v in self.vcov_deleted])
        return self.dfbeta() / se

    def cooks_distance(self):
        """lme4's ``cooks.distance.influence.merMod`` (see :func:`cooks_distance`)."""
        db = self.dfbeta().to_numpy()
        n, p = db.shape
        vinv = (n - p) / (n * p) * np.linalg.inv(self.vcov.to_numpy())
        return pd.Series(np.einsum("ij,jk,ik->i", db, vinv, db),
                         index=self.fixed_effects_deleted.index)


def var_cov_comps(fit):
    """σ² and every term's covariance matrix (lower triangle by columns), lme4's names.

    As ``influence.merMod``: entries ``v[a]`` (variances) and ``C[a,b]``
    (covariances), prefixed by the term's name and ``:`` when the model has
    more than one term.
    """
    terms = fit.cov_matrices()
    values, names = [fit.sigma ** 2], ["sigma^2"]
    for name, cn, S in terms:
        prefix = f"{name}:" if len(terms) > 1 else ""
        for j in range(len(cn)):
            for i in range(j, len(cn)):
                names.append(prefix + (f"v[{cn[i]}]" if i == j else f"C[{cn[i]},{cn[j]}]"))
                values.append(S[i, j])
    return pd.Series(values, index=names)


def influence(fit, groups=None, progress=None):
    """Deletion influence of cases or groups, as lme4's ``influence.merMod``.

    Parameters
    ----------
    fit : LmerFit
    groups : str or list of str, optional
        A column of the fit's data: each of its levels is deleted in turn
        (e.g. ``"Subject"``).  Default: each case (row) in turn.  Several
        columns delete each combination of their values that occurs.
    progress : bool, optional
        A progress bar on stderr; by default it appears when the refits take
        more than a few seconds.

    Returns
    -------
    Influence
        Use ``cooks_distance(result)``, ``result.dfbeta()``, ``result.dfbetas()``.

    Notes
    -----
    Only the rows the fit used are deleted (rows dropped for missing values
    change nothing).  Each refit starts from the full fit's θ̂ (lme4's
    ``start``) and runs the fit's optimizer; optimizer warnings are recorded
    in ``converged`` instead of being shown, as lme4 does.
    """
    if not getattr(fit, "mixed", False):
        raise LmmError(f"influence() takes an lmer fit, not {type(fit).__name__}")
    if fit.data is None:
        raise LmmError("influence() needs the fit's data (fit.data is None)")
    used = fit.data.loc[fit.frame.row_index] if fit.data.index.is_unique \
        else fit.data.iloc[np.flatnonzero(fit.data.index.isin(fit.frame.row_index))]
    labels, name = _deletion_units(used, groups)
    weights, offset = _row_arguments(fit, used)
    units = list(pd.unique(labels))
    fixed, vcs, vcovs, conv, nfev = [], [], [], [], []
    t0, show = time.perf_counter(), bool(progress)
    for k, unit in enumerate(units):
        keep = np.asarray(labels != unit)
        refit = _refit_rows(fit, used[keep], _take(weights, keep), _take(offset, keep), unit, name)
        if list(refit.fixef.index) != list(fit.fixef.index):
            raise LmmError(f"deleting {name} {unit!r} changes the fixed effects "
                           f"({', '.join(refit.fixef.index)}): influence needs every "
                           "deletion to keep the model's columns")
        fixed.append(refit.fixef.to_numpy())
        vcs.append(var_cov_comps(refit).to_numpy())
        vcovs.append(refit.vcov)
        conv.append(not [m for m in refit.messages if "singular" not in m])
        nfev.append(refit.opt.nfev)
        if progress is None and not show and k + 1 < len(units):
            show = (time.perf_counter() - t0) * len(units) / (k + 1) > PROGRESS_AFTER
        if show:
            progress_bar(k + 1, len(units))
    index = pd.Index(units, name=name)
    full_vc = var_cov_comps(fit)
    return Influence(
        fixed_effects=fit.fixef.copy(),
        fixed_effects_deleted=pd.DataFrame(fixed, index=index, columns=fit.fixef.index),
        var_cov_comps=full_vc,
        var_cov_comps_deleted=pd.DataFrame(vcs, index=index, columns=full_vc.index),
        vcov=fit.vcov.copy(), vcov_deleted=vcovs, groups=name, deleted=units,
        converged=np.array(conv), function_evals=np.array(nfev))


def _deletion_units(used, groups):
    """The label of each used row (its row label, or its level of ``groups``) and a name."""
    if groups is None:
        return np.asarray(used.index, dtype=object), "case"
    cols = [groups] if isinstance(groups, str) else list(groups)
    missing = [c for c in cols if c not in used.columns]
    if missing:
        raise LmmError(f"groups: {', '.join(map(repr, missing))} not a column of the fit's data")
    if used[cols].isna().any().any():
        raise LmmError(f"groups column {', '.join(cols)} has missing values in rows the fit used")
    if len(cols) == 1:
        return used[cols[0]].to_numpy(dtype=object), cols[0]
    labels = used[cols].astype(str).agg(".".join, axis=1).to_numpy(dtype=object)
    return labels, ".".join(cols)


def _row_arguments(fit, used):
    """weights= and offset= of the fit for the used rows: column names as given, arrays
    (one value per row of the fit's data) cut to the rows the fit used."""
    positions = fit.data.index.get_indexer(used.index) if fit.data.index.is_unique \
        else np.flatnonzero(fit.data.index.isin(used.index))
    out = []
    for arg in (fit.call.weights, fit.call.offset):
        if arg is not None and not isinstance(arg, str):
            arg = np.asarray(arg, dtype=float)[positions]
        out.append(arg)
    return out


def _take(arg, keep):
    return arg[keep] if isinstance(arg, np.ndarray) else arg


def _refit_rows(fit, data, weights, offset, unit, name):
    """The fit's model on other rows, from the fit's θ̂, with the fit's optimizer."""
    try:
        design = build_design(fit.spec, data, weights, offset, fit.design.contrasts_arg)
        model = LmerModel(design, fit.REML, getattr(fit.model, "solver", "auto"))
        with warnings.catch_warnings(), blas_single_thread():
            warnings.simplefilter("ignore")
            opt = model.optimize(fit.opt.method, theta0=fit.theta)
    except LmmError as err:
        raise LmmError(f"refit without {name} {unit!r}: {err}") from None
    return type(fit)(model, opt, fit.data_name, data)
