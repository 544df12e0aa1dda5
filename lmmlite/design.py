"""Stage 2: model matrices.

* ``model_matrix`` builds X from the fixed terms with R's coding rules and
  column names (treatment contrasts, ``group2``, ``a2:b3``).
* ``random_blocks`` builds one :class:`RandomBlock` per random term: the
  grouping factor's codes and the term's own model matrix, from which
  Z_k = (indicator of level) (x) (row of the term's matrix).  lme4 orders the
  columns of Z_k level by level (all columns of level 1 first) and sorts the
  terms by decreasing number of levels; we do the same, so θ has lme4's order.
* ``drop_rank_deficient`` removes aliased fixed-effect columns as lme4 does.
"""

from dataclasses import dataclass
import warnings

import numpy as np
import pandas as pd

from .errors import LmmError


def _level_names(cat):
    return [str(c) for c in cat.categories]


def _factor_columns(cat, contrasts):
    """Indicator columns of a factor: all levels, or all but the first (treatment)."""
    codes = cat.codes
    levels = _level_names(cat)
    start = 1 if contrasts else 0
    mats = [(codes == k).astype(float) for k in range(start, len(levels))]
    return mats, levels[start:]


def model_matrix(intercept, terms, frame):
    """R's ``model.matrix`` for the given terms (a list of tuples of variable names).

    A factor in a term is coded by treatment contrasts when the term without
    that factor is also in the model (the intercept counting as the empty
    term), otherwise by one indicator per level -- R's rule (Chambers &
    Hastie 1992, sec. 2.4.1). In an interaction, the first variable's columns
    vary fastest, as in R.
    """
    present = {frozenset()} if intercept else set()
    present |= {frozenset(t) for t in terms}
    cols = [np.ones(frame.nobs)] if intercept else []
    names = ["(Intercept)"] if intercept else []
    for term in terms:
        term_cols, term_names = [np.ones(frame.nobs)], [""]
        for var in term:
            if frame.is_factor(var):
                if len(frame.columns[var].categories) < 2:
                    raise LmmError(f"factor '{var}' has only one level in the data used; "
                                   "contrasts can be applied only to factors with 2 or "
                                   "more levels (remove it from the formula)")
                contrasts = frozenset(term) - {var} in present
                vcols, vlevels = _factor_columns(frame.columns[var], contrasts)
                vnames = [f"{var}{lev}" for lev in vlevels]
            else:
                vcols, vnames = [frame.columns[var]], [var]
            # first variable varies fastest: loop the new variable outermost
            term_cols = [c * v for v in vcols for c in term_cols]
            term_names = [f"{a}:{b}" if a else b for b in vnames for a in term_names]
        cols += term_cols
        names += term_names
    X = np.column_stack(cols) if cols else np.zeros((frame.nobs, 0))
    return X, names


def drop_rank_deficient(X, names, tol=1e-7, quiet=False):
    """Drop columns that are (numerically) linear combinations of earlier ones.

    Like R's ``qr(X, tol = 1e-7)`` with LINPACK's limited pivoting, which
    lme4's ``chkRank.drop.cols`` uses: a column is aliased when its norm after
    projecting out the kept columns is below ``tol`` times its own norm.
    Returns the kept matrix, kept names and dropped names.
    """
    keep = []
    q = np.zeros((X.shape[0], 0))
    for j in range(X.shape[1]):
        x = X[:, j]
        norm = np.linalg.norm(x)
        resid = x - q @ (q.T @ x)
        rn = np.linalg.norm(resid)
        if norm > 0 and rn > tol * norm:
            keep.append(j)
            q = np.column_stack([q, resid / rn])
    dropped = [names[j] for j in range(X.shape[1]) if j not in keep]
    if dropped and not quiet:
        n = len(dropped)
        warnings.warn(f"fixed-effect model matrix is rank deficient so dropping {n} "
                      f"column{'s' if n > 1 else ''} / coefficient{'s' if n > 1 else ''} "
                      f"({', '.join(dropped)})", stacklevel=3)
    return X[:, keep], [names[j] for j in keep], dropped


def check_scale(X, tol=1000.0):
    """lme4's checkScaleX: warn when continuous columns' SDs differ by > tol, or are
    themselves > tol or < 1/tol."""
    cont = [j for j in range(X.shape[1]) if not np.all(np.isin(X[:, j], (0.0, 1.0)))]
    if not cont:
        return
    sd = X[:, cont].std(axis=0, ddof=1)
    if np.any(sd == 0):
        return
    logsd = np.log(sd)
    spread = np.abs(logsd[:, None] - logsd[None, :])
    if max(spread.max(), np.abs(logsd).max()) > np.log(tol):
        warnings.warn("Some predictor variables are on very different scales: "
                      "consider rescaling", stacklevel=3)


@dataclass
class RandomBlock:
    """One random-effects term: grouping factor, its levels and the term's columns."""

    group: str          # grouping factor name, e.g. 'Subject' or 'clinic:region'
    levels: list        # level values in order (strings 'a:b' for interactions)
    codes: np.ndarray   # level index of each observation
    X: np.ndarray       # n x p: the term's model matrix
    cnames: list        # its column names, e.g. ['(Intercept)', 'Days']

    @property
    def p(self):
        return self.X.shape[1]

    @property
    def nlevels(self):
        return len(self.levels)

    @property
    def ntheta(self):
        return self.p * (self.p + 1) // 2

    def theta_lower(self):
        """Lower bounds for θ: 0 on the diagonal of T, -inf below it (column-major)."""
        return np.array([0.0 if i == j else -np.inf
                         for j in range(self.p) for i in range(j, self.p)])

    def theta_start(self):
        """lme4's start: T = identity."""
        return np.array([1.0 if i == j else 0.0
                         for j in range(self.p) for i in range(j, self.p)])

    def T(self, theta):
        """The p x p lower-triangular relative covariance factor from θ (column-major)."""
        if self.p == 1:
            return np.reshape(np.asarray(theta, dtype=float), (1, 1))
        if not hasattr(self, "_tidx"):
            rows, cols = np.triu_indices(self.p)  # (col-major lower) == (row-major upper).T
            self._tidx = (cols, rows)
        T = np.zeros((self.p, self.p))
        T[self._tidx] = theta
        return T

    def Z(self):
        """Sparse n x (levels * p) matrix Z_k, columns ordered level by level."""
        import scipy.sparse as sp
        n, p = self.X.shape
        rows = np.repeat(np.arange(n), p)
        cols = (self.codes[:, None] * p + np.arange(p)[None, :]).ravel()
        return sp.csc_matrix((self.X.ravel(), (rows, cols)), shape=(n, self.nlevels * p))


def _grouping_factor(names, frame):
    """The grouping factor of a random term: one factor or the interaction a:b:..."""
    cats = [frame.columns[v] for v in names]
    if len(cats) == 1:
        # keep the data's own level values (ints stay ints), as the user will look them up
        cat = cats[0].remove_unused_categories()
        return list(cat.categories), np.asarray(cat.codes)
    # interaction: first factor varies slowest, as R's ':' on factors; unused dropped
    labels = [np.asarray(_level_names(c), dtype=object)[c.codes] for c in cats]
    key = np.zeros(frame.nobs, dtype=np.int64)
    for c in cats:
        key = key * len(c.categories) + c.codes
    uniq, codes = np.unique(key, return_inverse=True)
    first = np.array([np.flatnonzero(codes == k)[0] for k in range(len(uniq))])
    levels = [":".join(str(lab[i]) for lab in labels) for i in first]
    return levels, codes


def random_blocks(spec, frame):
    """Build the random-effects blocks, sorted by decreasing number of levels."""
    blocks = []
    for rt in spec.random:
        levels, codes = _grouping_factor(rt.group, frame)
        name = rt.group_name
        if len(levels) < 2:
            raise LmmError(f"grouping factor '{name}' has only {len(levels)} level; "
                           "a random effect needs at least 2 levels (lme4: "
                           "'grouping factors must have > 1 sampled level')")
        if len(levels) >= frame.nobs:
            raise LmmError(f"grouping factor '{name}' has {len(levels)} levels for "
                           f"{frame.nobs} observations; the number of levels of each "
                           "grouping factor must be < number of observations, "
                           "otherwise the random effect cannot be told from the residual")
        X, cnames = model_matrix(rt.intercept, list(rt.terms), frame)
        nre = len(levels) * X.shape[1]
        if frame.nobs <= nre:  # lme4's check.nobs.vs.nRE ("stop" by default)
            raise LmmError(f"number of observations (={frame.nobs}) <= number of random "
                           f"effects (={nre}) for term {rt.text}; the random-effects "
                           "parameters and the residual variance are probably unidentifiable")
        blocks.append(RandomBlock(name, levels, np.asarray(codes, dtype=np.int64), X, cnames))
    # stable sort by decreasing number of levels, as lme4's mkReTrms
    order = sorted(range(len(blocks)), key=lambda k: -blocks[k].nlevels)
    return [blocks[k] for k in order]
