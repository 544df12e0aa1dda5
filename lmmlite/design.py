"""Stage 3: the design -- model matrices with R's coding rules, built once per fit.

* :func:`term_matrix` is R's ``model.matrix`` for a list of terms: contrasts
  (treatment, sum, Helmert, polynomial), R's rule for which factor of an
  interaction is fully coded, column names (``group2``, ``a2:b3``,
  ``poly(x, 2)1``, ``temperature.L``) and ``assign``.
* :class:`RandomBlock` is one random-effects term: its grouping factor and its own
  columns, Z_k = (indicator of level) (x) (row of the term's matrix), columns level by
  level as lme4. :func:`random_blocks` orders the terms as lme4's ``mkReTrms``.
* :class:`Design` holds everything a fit needs and everything ``predict`` needs to
  give new data the same columns: y, X with names and ``assign``, dropped columns,
  contrasts, weights, offset, the random blocks, and the frame's transform states.
"""

from dataclasses import dataclass, field
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .covariance import T_from_theta, ntheta, theta_lower, theta_start
from .errors import LmmError
from .formula import parse_formula
from .frame import model_frame, new_frame
from .transforms import Factor, Matrix, level_label


# -- contrasts ---------------------------------------------------------------------------------
def contrast_matrix(kind, levels):
    """R's contrast matrix (k x (k-1)) and its column names for a factor's levels."""
    k = len(levels)
    labels = [level_label(v) for v in levels]
    if kind == "contr.treatment":
        return np.eye(k)[:, 1:], labels[1:]
    if kind == "contr.sum":
        return np.vstack([np.eye(k - 1), -np.ones(k - 1)]), [str(j) for j in range(1, k)]
    if kind == "contr.helmert":
        C = np.zeros((k, k - 1))
        for j in range(1, k):       # column j: -1 for the first j levels, j for level j+1
            C[:j, j - 1] = -1.0
            C[j, j - 1] = j
        return C, [str(j) for j in range(1, k)]
    if kind == "contr.poly":
        # orthonormal polynomials in the scores 1..k (R's make.poly): Gram-Schmidt on
        # the centred powers, i.e. the QR factor Q with the signs of diag(R)
        scores = np.arange(1, k + 1, dtype=float)
        Q, R = np.linalg.qr(np.vander(scores - scores.mean(), k, increasing=True))
        C = (Q * np.sign(np.diag(R)))[:, 1:]
        names = [".L", ".Q", ".C"] + [f"^{j}" for j in range(4, k)]
        return C, names[:k - 1]
    raise LmmError(f"unknown contrasts '{kind}'")


def default_contrasts(fac):
    """R's options('contrasts'): treatment for unordered factors, poly for ordered."""
    return "contr.poly" if fac.ordered else "contr.treatment"


def _codings(intercept, terms, frame):
    """For each (term, factor): 'contrasts' or 'dummy', by R's rule (model.c TermCode).

    A factor v in term T is coded by contrasts when T without v is empty or is
    contained in an earlier term; otherwise by one indicator per level. Without an
    intercept, the first factor of the first term that has one is fully coded.
    """
    coding = {}
    for k, term in enumerate(terms):
        for v in term:
            if not frame.is_factor(v):
                continue
            rest = set(term) - {v}
            margin = not rest or any(rest <= set(prev) for prev in terms[:k])
            coding[k, v] = "contrasts" if margin else "dummy"
    if not intercept:
        for k, term in enumerate(terms):
            first = next((v for v in term if frame.is_factor(v)), None)
            if first is not None:
                coding[k, first] = "dummy"
                break
    return coding


def _variable_columns(label, value, how, contrasts):
    """Columns and names of one variable within a term."""
    if isinstance(value, Factor):
        levels = list(value.values.categories)
        if len(levels) < 2:
            raise LmmError(f"factor '{label}' has only one level in the data used; "
                           "contrasts can be applied only to factors with 2 or more "
                           "levels (remove it from the formula)")
        codes = np.asarray(value.values.codes)
        if how == "dummy":
            C, names = np.eye(len(levels)), [level_label(v) for v in levels]
            kind = None
        else:
            kind = value.contrasts or contrasts.get(label) or default_contrasts(value)
            # C(f, contr.treatment) calls contr.treatment(k): columns named 2..k
            C, names = contrast_matrix(kind, range(1, len(levels) + 1) if value.from_call
                                       else levels)
        cols = np.where((codes >= 0)[:, None], C[np.maximum(codes, 0)], np.nan)
        return [cols[:, j] for j in range(cols.shape[1])], [label + n for n in names], kind
    if isinstance(value, Matrix):
        k = value.values.shape[1]
        names = value.colnames
        if names is None:
            names = [""] if k == 1 else [str(j) for j in range(1, k + 1)]
        return [value.values[:, j] for j in range(k)], [label + n for n in names], None
    return [np.asarray(value, dtype=float)], [label], None


def term_matrix(intercept, terms, frame, contrasts=None):
    """R's ``model.matrix`` for the given terms (a list of tuples of variable labels).

    Returns X, its column names, ``assign`` (0 for the intercept, k for term k) and the
    contrasts used per factor. In an interaction the first variable's columns vary
    fastest, as in R.
    """
    contrasts = contrasts or {}
    coding = _codings(intercept, terms, frame)
    cols = [np.ones(frame.nobs)] if intercept else []
    names = ["(Intercept)"] if intercept else []
    assign = [0] if intercept else []
    used = {}
    for k, term in enumerate(terms):
        term_cols, term_names = [np.ones(frame.nobs)], [""]
        for v in term:
            vcols, vnames, kind = _variable_columns(v, frame.columns[v], coding.get((k, v)),
                                                    contrasts)
            if kind:
                used[v] = kind
            # first variable varies fastest: loop the new variable outermost
            term_cols = [c * x for x in vcols for c in term_cols]
            term_names = [f"{a}:{b}" if a else b for b in vnames for a in term_names]
        cols += term_cols
        names += term_names
        assign += [k + 1] * len(term_cols)
    X = np.column_stack(cols) if cols else np.zeros((frame.nobs, 0))
    return X, names, assign, used


def drop_rank_deficient(X, names, tol=1e-7, quiet=False):
    """Drop columns that are (numerically) linear combinations of earlier ones.

    Like R's ``qr(X, tol = 1e-7)`` with LINPACK's limited pivoting, which
    lme4's ``chkRank.drop.cols`` uses: a column is aliased when its norm after
    projecting out the kept columns is below ``tol`` times its own norm.
    Returns the kept column indices and the dropped names.
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
                      f"({', '.join(dropped)})", stacklevel=4)
    return keep, dropped


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
                      "consider rescaling", stacklevel=4)


# -- random-effects terms ----------------------------------------------------------------------
@dataclass
class RandomBlock:
    """One random-effects term: grouping factor, its levels and the term's columns."""

    group: str          # grouping factor name, e.g. 'Subject' or 'clinic:region'
    levels: list        # level values in order (strings 'a:b' for interactions)
    codes: np.ndarray   # level index of each observation
    X: np.ndarray       # n x p: the term's model matrix
    cnames: list        # its column names, e.g. ['(Intercept)', 'Days']
    term: object = None  # the formula's RandomTerm, to build the same columns for new data

    @property
    def p(self):
        return self.X.shape[1]

    @property
    def nlevels(self):
        return len(self.levels)

    @property
    def ntheta(self):
        return ntheta(self.p)

    def theta_lower(self):
        """Lower bounds for θ: 0 on the diagonal of T, -inf below it (column-major)."""
        return theta_lower(self.p)

    def theta_start(self):
        """lme4's start: T = identity."""
        return theta_start(self.p)

    def T(self, theta):
        """The p x p lower-triangular relative covariance factor from θ (column-major)."""
        return T_from_theta(theta, self.p)

    def Z(self):
        """Sparse n x (levels * p) matrix Z_k, columns ordered level by level."""
        n, p = self.X.shape
        rows = np.repeat(np.arange(n), p)
        cols = (self.codes[:, None] * p + np.arange(p)[None, :]).ravel()
        return sp.csc_matrix((self.X.ravel(), (rows, cols)), shape=(n, self.nlevels * p))

    def scaled(self, s):
        """The same term with every row multiplied by s (prior weights: s = sqrt(w))."""
        return RandomBlock(self.group, self.levels, self.codes, self.X * s[:, None],
                           self.cnames, self.term)


def group_codes(names, frame, levels=None):
    """Levels and codes of a grouping factor: one factor or the interaction a:b:...

    With ``levels`` (the training levels), codes of new data; -1 for a level not in
    ``levels`` or a missing value.
    """
    facs = [frame.columns[v].values for v in names]
    if len(facs) == 1:
        cat = facs[0]
        if levels is None:
            # keep the data's own level values (ints stay ints), as the user will look them up
            cat = cat.remove_unused_categories()
            return list(cat.categories), np.asarray(cat.codes, dtype=np.int64)
        lookup = {lev: i for i, lev in enumerate(levels)}
        codes = [lookup.get(cat.categories[c], -1) if c >= 0 else -1 for c in cat.codes]
        return levels, np.asarray(codes, dtype=np.int64)
    # interaction: first factor varies slowest, as R's ':' on factors; unused dropped
    labels = [np.asarray([level_label(v) for v in c.categories] + [None], dtype=object)[c.codes]
              for c in facs]
    keys = [None if any(lab[i] is None for lab in labels) else ":".join(lab[i] for lab in labels)
            for i in range(frame.nobs)]
    if levels is not None:
        lookup = {lev: i for i, lev in enumerate(levels)}
        return levels, np.asarray([lookup.get(k, -1) for k in keys], dtype=np.int64)
    key = np.zeros(frame.nobs, dtype=np.int64)
    for c in facs:
        key = key * len(c.categories) + np.asarray(c.codes)
    uniq, codes = np.unique(key, return_inverse=True)
    first = np.array([np.flatnonzero(codes == k)[0] for k in range(len(uniq))])
    return [keys[i] for i in first], np.asarray(codes, dtype=np.int64)


def lme4_order(nlevels):
    """lme4's mkReTrms: reorder only if some term has more levels than the one before,
    and then by ``rev(order(nlevels))`` (decreasing; ties in reverse formula order)."""
    k = len(nlevels)
    if not any(nlevels[i + 1] > nlevels[i] for i in range(k - 1)):
        return list(range(k))
    return list(reversed(sorted(range(k), key=lambda i: nlevels[i])))


def random_blocks(spec, frame, glmer=False):
    """Build the random-effects blocks, in lme4's order.

    With ``glmer`` the checks are glmer's (lme4's glFormula: ``allow.n = TRUE``, and
    ``check.nobs.vs.nRE = "ignore"``): an observation-level random effect is allowed.
    """
    blocks = []
    for rt in spec.random:
        levels, codes = group_codes(rt.group, frame)
        name = rt.group_name
        if len(levels) < 2:
            raise LmmError(f"grouping factor '{name}' has only {len(levels)} level; "
                           "a random effect needs at least 2 levels (lme4: "
                           "'grouping factors must have > 1 sampled level')")
        if len(levels) > frame.nobs or (len(levels) == frame.nobs and not glmer):
            raise LmmError(f"grouping factor '{name}' has {len(levels)} levels for "
                           f"{frame.nobs} observations; the number of levels of each "
                           "grouping factor must be < number of observations, "
                           "otherwise the random effect cannot be told from the residual")
        X, cnames, _, _ = term_matrix(rt.intercept, list(rt.terms), frame)
        nre = len(levels) * X.shape[1]
        if frame.nobs <= nre and not glmer:  # lme4's check.nobs.vs.nRE ("stop" by default)
            raise LmmError(f"number of observations (={frame.nobs}) <= number of random "
                           f"effects (={nre}) for term {rt.text}; the random-effects "
                           "parameters and the residual variance are probably unidentifiable")
        blocks.append(RandomBlock(name, levels, codes, X, cnames, rt))
    return [blocks[k] for k in lme4_order([b.nlevels for b in blocks])]


# -- the design ----------------------------------------------------------------------------------
@dataclass
class Design:
    """Everything a fit needs, built once: y, X, random blocks, weights, offset.

    ``X`` holds the kept columns (``xnames``, ``assign``); ``dropped`` the aliased ones
    (``full_names`` all of them, in R's order). ``frame`` keeps the transform states
    that :meth:`fixed_matrix` and :meth:`random_rows` apply to new data.
    """

    spec: object
    frame: object
    y: np.ndarray
    X: np.ndarray
    xnames: list
    assign: list
    dropped: list
    full_names: list
    keep: list
    contrasts: dict
    contrasts_arg: dict
    blocks: list = field(default_factory=list)
    weights: np.ndarray = None
    offset: np.ndarray = None
    response: object = None     # the response as evaluated (glmer: may be a Factor or Matrix)

    @property
    def nobs(self):
        return self.frame.nobs

    def term_columns(self):
        """Term label -> indices of its kept columns in X (R's assign, per term)."""
        out = {}
        for k, term in enumerate(self.spec.terms):
            out[":".join(term)] = [i for i, a in enumerate(self.assign) if a == k + 1]
        return out

    def with_response(self, y):
        """The same design with another response (simulation, bootstrap)."""
        out = Design(**{f: getattr(self, f) for f in self.__dataclass_fields__})
        out.y = np.asarray(y, dtype=float)
        return out

    # -- new data
    def fixed_matrix(self, newdata):
        """X for new data with the training transforms, levels and contrasts (kept columns).

        A missing predictor gives a row of NaN; a factor level not seen in training
        is an error naming it.
        """
        spec = self.spec
        variables = [v for t in spec.terms for v in t]
        frame = new_frame(spec, self.frame, newdata, variables)
        for v in variables:
            value = frame.columns[v]
            if isinstance(value, Factor) and value.new_levels:
                raise LmmError(f"factor {v} has new level{'s' if len(value.new_levels) > 1 else ''} "
                               f"{', '.join(value.new_levels)}")
        X, _, _, _ = term_matrix(spec.intercept, spec.terms, frame, self.contrasts_arg)
        return X[:, self.keep]

    def new_offset(self, newdata):
        """The offset() terms of the formula on new data (0 when there are none)."""
        if not self.spec.offsets:
            return np.zeros(len(newdata))
        frame = new_frame(self.spec, self.frame, newdata, self.spec.offsets)
        return np.sum([frame.columns[v] for v in self.spec.offsets], axis=0)

    def random_rows(self, newdata, block):
        """A block's columns and level codes on new data (-1: a new or missing level)."""
        rt = block.term
        variables = [v for t in rt.terms for v in t] + list(rt.group)
        frame = new_frame(self.spec, self.frame, newdata, variables)
        X, _, _, _ = term_matrix(rt.intercept, list(rt.terms), frame)
        _, codes = group_codes(rt.group, frame, levels=block.levels)
        return X, codes


def build_design(spec, data, weights=None, offset=None, contrasts=None,
                 drop_unused_levels=True, quiet_rank=False, glm_response=False):
    """The :class:`Design` of a parsed formula on data (frame, X, random blocks).

    With ``glm_response`` (glmer) the response may be a factor or a matrix such as
    ``cbind(s, f)``: it is kept as evaluated in ``Design.response`` (``y`` is then NaN)."""
    if contrasts is not None:
        if not isinstance(contrasts, dict):
            raise LmmError("contrasts must be a dict such as {'f': 'contr.sum'}")
        for name, kind in contrasts.items():
            if kind not in ("contr.treatment", "contr.sum", "contr.helmert", "contr.poly"):
                raise LmmError(f"unknown contrasts '{kind}' for '{name}'; use contr.treatment, "
                               "contr.sum, contr.helmert or contr.poly")
    frame = model_frame(spec, data, weights, offset, drop_unused_levels, glm_response)
    if contrasts:
        for name in contrasts:
            if name not in frame.columns or not frame.is_factor(name):
                raise LmmError(f"contrasts given for '{name}', which is not a factor of the model")
    Xfull, names, assign, used = term_matrix(spec.intercept, spec.terms, frame, contrasts)
    keep, dropped = drop_rank_deficient(Xfull, names, quiet=quiet_rank)
    y = frame.columns[spec.response] if spec.response else np.full(frame.nobs, np.nan)
    response = y
    if isinstance(y, (Matrix, Factor)) and glm_response:
        y = np.full(frame.nobs, np.nan)
    elif isinstance(y, Matrix):
        raise LmmError(f"the response '{spec.response}' must be one column")
    blocks = random_blocks(spec, frame, glm_response) if spec.random else []
    return Design(spec=spec, frame=frame, y=np.asarray(y, dtype=float), X=Xfull[:, keep],
                  xnames=[names[j] for j in keep], assign=[assign[j] for j in keep],
                  dropped=dropped, full_names=names, keep=keep, contrasts=used,
                  contrasts_arg=dict(contrasts or {}), blocks=blocks,
                  weights=frame.weights, offset=frame.offset, response=response)


def model_matrix(formula, data, contrasts=None):
    """R's ``model.matrix(formula, data, contrasts.arg = contrasts)`` as a DataFrame.

    Columns have R's names and order; rows with a missing value are dropped (R's
    na.omit); ``.attrs["assign"]`` is R's ``assign`` and ``.attrs["contrasts"]`` the
    contrasts used. Random-effects terms are not allowed here.
    """
    spec = parse_formula(formula, one_sided=True)
    if spec.random:
        raise LmmError("model_matrix() is for the fixed part; remove the terms "
                       + ", ".join(rt.text for rt in spec.random))
    frame = model_frame(spec, data, drop_unused_levels=False)
    X, names, assign, used = term_matrix(spec.intercept, spec.terms, frame, contrasts)
    out = pd.DataFrame(X, columns=names, index=frame.row_index)
    out.attrs["assign"] = assign
    out.attrs["contrasts"] = used
    return out
