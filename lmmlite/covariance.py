"""The covariance parameters of the random effects: θ ↔ T_k (Λ) ↔ Σ_k ↔ sd/cor.

For a random term k with p_k columns, lme4 writes the covariance of one
level's random effects as Σ_k = σ² T_k T_k', T_k lower triangular, and θ
holds the entries of every T_k's lower triangle column by column (Bates et
al. 2015, J. Stat. Softw. 67(1), sec. 2.2 and 3.1): for p = 2, θ = (T_11,
T_21, T_22).  Λ is block diagonal with one copy of T_k per level of term k.

The same column-major lower-triangle order is used for the sd/correlation
scale of ``confint`` (sd on the diagonal, correlations below it; lme4's
``Cv_to_Sv``) and for the variance/covariance scale γ (Kenward-Roger).

:class:`CovarianceParameters` does these conversions for a whole model
from the list of term sizes; the per-term functions below are its pieces.
"""

from functools import lru_cache

import numpy as np
import pandas as pd


# --------------------------------------------------------------------------
# one term
@lru_cache(maxsize=None)
def tril_index(p):
    """(i, j) of the lower triangle of a p x p matrix, column by column (θ's order)."""
    return tuple((i, j) for j in range(p) for i in range(j, p))


@lru_cache(maxsize=None)
def _tril_arrays(p):
    rows, cols = zip(*tril_index(p))
    return np.array(rows), np.array(cols)


def ntheta(p):
    """Number of θ entries of a term with p columns: p(p+1)/2."""
    return p * (p + 1) // 2


def theta_lower(p):
    """Lower bounds of a term's θ: 0 on the diagonal of T, -inf below it."""
    return np.array([0.0 if i == j else -np.inf for i, j in tril_index(p)])


def theta_start(p):
    """lme4's start for a term: T = identity."""
    return np.array([1.0 if i == j else 0.0 for i, j in tril_index(p)])


def T_from_theta(theta, p):
    """The p x p lower-triangular relative covariance factor T from a term's θ."""
    if p == 1:
        return np.reshape(np.asarray(theta, dtype=float), (1, 1))
    T = np.zeros((p, p))
    T[_tril_arrays(p)] = theta
    return T


def vech(S):
    """The lower triangle of S column by column (θ's order)."""
    return S[_tril_arrays(S.shape[0])]


def sd_cor(S, zero=np.nan):
    """Standard deviations and correlation matrix of a covariance matrix.

    A correlation with a zero standard deviation is undefined: it is ``zero``
    (NaN for printing, as lme4; 0 where a number is needed).
    """
    sd = np.sqrt(np.maximum(np.diag(S), 0.0))
    outer = np.outer(sd, sd)
    with np.errstate(invalid="ignore", divide="ignore"):
        cor = np.where(outer > 0, S / np.where(outer > 0, outer, 1.0), zero)
    np.fill_diagonal(cor, 1.0)
    return sd, cor


def _semidefinite_cholesky(S):
    """Lower Cholesky factor of a positive semi-definite S (zero pivots give zero columns)."""
    p = S.shape[0]
    L = np.zeros_like(S)
    for j in range(p):
        d = S[j, j] - L[j, :j] @ L[j, :j]
        if d <= 1e-14 * max(S[j, j], 1e-300):
            continue
        L[j, j] = np.sqrt(d)
        for i in range(j + 1, p):
            L[i, j] = (S[i, j] - L[i, :j] @ L[j, :j]) / L[j, j]
    return L


# --------------------------------------------------------------------------
# a model: all terms
def group_names(groups):
    """lme4's names of the terms in VarCorr: a repeated grouping factor g gives g, g.1, g.2 ..."""
    seen, out = {}, []
    for g in groups:
        k = seen.get(g, 0)
        out.append(g if k == 0 else f"{g}.{k}")
        seen[g] = k + 1
    return out


class CovarianceParameters:
    """θ's layout for a model, and its conversions.

    Parameters
    ----------
    sizes : list of int
        p_k, the number of columns of each random term (lme4's term order).
    groups : list of str, optional
        The grouping factor of each term (for names).
    cnames : list of list of str, optional
        The column names of each term, e.g. ``["(Intercept)", "Days"]``.
    """

    def __init__(self, sizes, groups=None, cnames=None):
        self.sizes = [int(p) for p in sizes]
        self.groups = list(groups) if groups is not None else [f"g{k + 1}" for k in range(len(sizes))]
        self.cnames = list(cnames) if cnames is not None else [[f"x{i + 1}" for i in range(p)]
                                                              for p in self.sizes]
        self.ntheta = [ntheta(p) for p in self.sizes]
        self.offsets = np.concatenate([[0], np.cumsum(self.ntheta)]).astype(int)

    @classmethod
    def of_blocks(cls, blocks):
        """From the random-effect terms of a design (objects with ``p``, ``group``, ``cnames``)."""
        return cls([b.p for b in blocks], [b.group for b in blocks], [b.cnames for b in blocks])

    # -- θ scale
    @property
    def size(self):
        return int(self.offsets[-1])

    @property
    def lower(self):
        """Lower bounds of θ (0 for the diagonal of each T_k, -inf below it)."""
        return np.concatenate([theta_lower(p) for p in self.sizes]) if self.sizes else np.zeros(0)

    @property
    def start(self):
        """lme4's starting θ (every T_k the identity)."""
        return np.concatenate([theta_start(p) for p in self.sizes]) if self.sizes else np.zeros(0)

    def split(self, theta):
        """θ as one array per term."""
        theta = np.asarray(theta, dtype=float)
        return [theta[a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:])]

    def factors(self, theta):
        """T_k of every term."""
        return [T_from_theta(t, p) for t, p in zip(self.split(theta), self.sizes)]

    def below(self):
        """For each θ index on a diagonal of T, the θ indices below it in its column."""
        out, k = {}, 0
        for p in self.sizes:
            for j in range(p):
                out[k] = list(range(k + 1, k + p - j))
                k += p - j
        return out

    # -- covariance scale
    def covariances(self, theta, sigma):
        """Σ_k = σ² T_k T_k' of every term."""
        return [sigma ** 2 * T @ T.T for T in self.factors(theta)]

    def gamma(self, theta, sigma):
        """The variance/covariance parameters (vech of every Σ_k, then σ²)."""
        return np.concatenate([vech(S) for S in self.covariances(theta, sigma)] + [[sigma ** 2]])

    # -- sd/cor scale (confint's parameters)
    def sdcor(self, theta, sigma):
        """sd and correlations of every term (θ's order), then σ: lme4's ``.sig01 ... .sigma``."""
        out = []
        for S in self.covariances(theta, sigma):
            sd, cor = sd_cor(S, zero=0.0)
            out += [sd[i] if i == j else cor[i, j] for i, j in tril_index(S.shape[0])]
        return np.array(out + [sigma])

    def theta_from_sdcor(self, v):
        """Inverse of :meth:`sdcor`: θ from the sd/cor vector (its last entry σ)."""
        v = np.asarray(v, dtype=float)
        sigma = v[-1]
        out = []
        for vals, p in zip(self.split(v[:-1]), self.sizes):
            idx = tril_index(p)
            sd = np.zeros(p)
            for (i, j), val in zip(idx, vals):
                if i == j:
                    sd[i] = val
            S = np.zeros((p, p))
            for (i, j), val in zip(idx, vals):
                S[i, j] = S[j, i] = sd[i] ** 2 if i == j else val * sd[i] * sd[j]
            out.append(vech(_semidefinite_cholesky(S / sigma ** 2)))
        return np.concatenate(out) if out else np.zeros(0)

    def sdcor_bounds(self):
        """Bounds of the sd/cor vector: sd in [0, inf), cor in [-1, 1], σ in [0, inf)."""
        lo, hi = [], []
        for p in self.sizes:
            for i, j in tril_index(p):
                lo.append(0.0 if i == j else -1.0)
                hi.append(np.inf if i == j else 1.0)
        return np.array(lo + [0.0]), np.array(hi + [np.inf])

    def sdcor_names(self):
        """lme4's names of the sd/cor parameters in confint: .sig01, .sig02, ..., .sigma."""
        return [f".sig{i + 1:02d}" for i in range(self.size)] + [".sigma"]

    # -- tables
    def names(self):
        """The terms' names in VarCorr (g, g.1, ...)."""
        return group_names(self.groups)

    def varcorr(self, theta, sigma):
        """R's ``as.data.frame(VarCorr(fit))``: grp, var1, var2, vcov, sdcor."""
        rows = []
        for name, cn, S in zip(self.names(), self.cnames, self.covariances(theta, sigma)):
            sd, cor = sd_cor(S)
            p = S.shape[0]
            rows += [(name, cn[i], None, S[i, i], sd[i]) for i in range(p)]
            rows += [(name, cn[j], cn[i], S[i, j], cor[i, j])
                     for i, j in tril_index(p) if i != j]
        rows.append(("Residual", None, None, sigma ** 2, sigma))
        return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])

    def summary_rows(self, theta, sigma):
        """The rows of lme4's printed "Random effects:" block (one per column of each term)."""
        rows = []
        for name, cn, S in zip(self.names(), self.cnames, self.covariances(theta, sigma)):
            sd, cor = sd_cor(S)
            rows += [{"group": name, "name": c, "variance": S[i, i], "sd": sd[i],
                      "corr": list(cor[i, :i])} for i, c in enumerate(cn)]
        rows.append({"group": "Residual", "name": "", "variance": sigma ** 2, "sd": sigma})
        return rows
