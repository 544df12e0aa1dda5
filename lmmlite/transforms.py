"""Evaluate a formula's variables on data: arithmetic, functions and stateful transforms.

:class:`Evaluator` walks an expression tree of :mod:`formula` against a DataFrame.
Plain functions (``log``, ``exp``, ``sqrt``, ``abs``, ``sin``, ``cos``, ...) and
arithmetic act elementwise. *Stateful* transforms learn something from the
training data -- ``scale`` its centre and scale, ``poly`` its recurrence
coefficients, ``factor``/``C()`` and factor columns their levels -- and the
evaluator records that state under the call's label. Given a recorded state
(``Evaluator(newdata, state)``), the same expression gives new data the training
transform, as R's ``makepredictcall`` does for ``predict``.

Values are float arrays (n,), :class:`Matrix` (several columns, e.g. ``poly``) or
:class:`Factor` (a pandas Categorical and the contrasts it asks for).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import LmmError
from .formula import FUNCTIONS, BinOp, Call, Name, Num, Paren, Str, Unary, deparse_node

CONTRASTS = ("contr.treatment", "contr.sum", "contr.helmert", "contr.poly")


@dataclass
class Matrix:
    """A variable with several columns; R names them label + colname."""

    values: np.ndarray          # (n, k)
    colnames: list              # e.g. ['1', '2'] for poly(x, 2); None: label alone / 1..k


@dataclass
class Levels:
    """The recorded state of a factor: its training levels and orderedness."""

    levels: list
    ordered: bool = False


@dataclass
class Factor:
    """A factor: a pandas Categorical (its categories are R's levels) and its contrasts."""

    values: pd.Categorical
    contrasts: str = None       # set by C(); None: R's default for the factor
    ordered: bool = False
    new_levels: list = None     # on new data: values that are not training levels
    from_call: bool = False     # contrasts set by C(): treatment columns are named 2..k


def level_label(value):
    """A level as R's as.character writes it: 1 not 1.0, TRUE not True."""
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (float, np.floating)):
        if float(value).is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.15g}"
    return str(value)


def _sorted_levels(values):
    try:
        return sorted(values)
    except TypeError:  # mixed types: sort by their text
        return sorted(values, key=str)


def make_factor(series, levels=None, ordered=None):
    """A Factor from a Series: R's level order (sorted values, or the categories given)."""
    if isinstance(series, Factor):
        if levels is None:
            return series
        series = pd.Series(np.asarray(series.values, dtype=object))
    if not isinstance(series, pd.Series):
        series = pd.Series(series)
    if levels is None:
        if isinstance(series.dtype, pd.CategoricalDtype):
            cat = pd.Categorical(series)
            return Factor(cat, ordered=bool(cat.ordered) if ordered is None else ordered)
        levels = _sorted_levels(series.dropna().unique())
    is_ordered = bool(ordered) or bool(getattr(series.dtype, "ordered", False))
    values = series.astype(object) if isinstance(series.dtype, pd.CategoricalDtype) else series
    codes = pd.Index(levels, dtype=object).get_indexer(values.to_numpy(dtype=object))
    cat = pd.Categorical.from_codes(codes, categories=levels, ordered=is_ordered)
    return Factor(cat, ordered=is_ordered)


def is_factor_like(series):
    return (isinstance(series.dtype, pd.CategoricalDtype)
            or pd.api.types.is_object_dtype(series)
            or pd.api.types.is_string_dtype(series)
            or pd.api.types.is_bool_dtype(series))


# -- poly: R's orthogonal polynomials ---------------------------------------------------------
def poly_fit(x, degree):
    """Orthogonal polynomial columns of x and the coefficients that rebuild them.

    As R's ``poly``: with x̄ the mean, the QR factorization of the centred
    Vandermonde matrix [1, (x-x̄), ..., (x-x̄)^k] gives Z_j = Q_j R_jj; then
    α_j = Σ (x-x̄) Z_j² / Σ Z_j² + x̄ and N_j = Σ Z_j², and the columns are Z_j / sqrt(N_j),
    which the three-term recurrence :func:`poly_predict` reproduces on new x.
    """
    xbar = x.mean()
    xc = x - xbar
    Q, R = np.linalg.qr(np.vander(xc, degree + 1, increasing=True))
    Z = Q * np.diag(R)
    norm2 = (Z ** 2).sum(axis=0)
    alpha = ((xc[:, None] * Z ** 2).sum(axis=0) / norm2 + xbar)[:degree]
    norm2 = np.concatenate([[1.0], norm2])
    return Z[:, 1:] / np.sqrt(norm2[2:]), (alpha, norm2)


def poly_predict(x, coefs):
    """R's poly(x, coefs = ...): the three-term recurrence of the training polynomials."""
    alpha, norm2 = coefs
    degree = len(alpha)
    Z = np.ones((len(x), degree + 1))
    Z[:, 1] = x - alpha[0]
    for i in range(1, degree):
        Z[:, i + 1] = (x - alpha[i]) * Z[:, i] - (norm2[i + 1] / norm2[i]) * Z[:, i - 1]
    return Z[:, 1:] / np.sqrt(norm2[2:])


# -- the evaluator ------------------------------------------------------------------------------
_MATH = {"log": np.log, "exp": np.exp, "sqrt": np.sqrt, "abs": np.abs, "sin": np.sin,
         "cos": np.cos, "tan": np.tan, "log2": np.log2, "log10": np.log10,
         "log1p": np.log1p, "expm1": np.expm1, "floor": np.floor, "ceiling": np.ceil}
_ARITH = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power,
          "%%": np.mod, "%/%": np.floor_divide, "==": np.equal, "!=": np.not_equal,
          "<": np.less, ">": np.greater, "<=": np.less_equal, ">=": np.greater_equal}
_CONSTANTS = {"pi": np.pi, "TRUE": True, "FALSE": False, "T": True, "F": False}
assert set(_MATH) | {"I", "scale", "poly", "factor", "as.factor", "ordered", "C",
                     "offset", "cbind"} == set(FUNCTIONS)


class Evaluator:
    """Evaluates expression trees on ``data``; records (or reuses) transform states."""

    def __init__(self, data, state=None):
        self.data = data
        self.n = len(data)
        self.training = state is None
        self.state = {} if state is None else state

    # -- entry point: a variable of the formula
    def variable(self, node):
        """The value of a formula variable: float array, Matrix or Factor."""
        value = self.eval(node)
        label = deparse_node(node)
        if isinstance(value, pd.Series):
            if is_factor_like(value):
                return self._factor(label, value)
            return self._numeric(value, label)
        if isinstance(value, (Factor, Matrix)):
            return value
        value = np.asarray(value)
        if value.dtype == bool:
            return self._factor(label, pd.Series(value))
        if value.ndim == 0:
            value = np.full(self.n, float(value))
        return value.astype(float)

    def _factor(self, label, series, contrasts=None, ordered=None):
        """A factor with the training levels (recorded under ``label``)."""
        if self.training:
            fac = make_factor(series, ordered=ordered)
            self.state[label] = Levels(list(fac.values.categories), fac.ordered)
        else:
            known = self.state[label]
            fac = make_factor(series, levels=known.levels, ordered=known.ordered)
            new = series[~pd.isna(series).to_numpy() & (fac.values.codes < 0)]
            if len(new):
                fac.new_levels = _sorted_levels({level_label(v) for v in new})
        fac.contrasts = contrasts
        return fac

    def _numeric(self, series, label):
        if pd.api.types.is_bool_dtype(series):
            return self._factor(label, series)
        return series.to_numpy(dtype=float)

    # -- the tree
    def eval(self, node):
        if isinstance(node, Name):
            return self._name(node)
        if isinstance(node, Num):
            return node.value
        if isinstance(node, Str):
            return node.value
        if isinstance(node, Paren):
            return self.eval(node.inner)
        if isinstance(node, Unary):
            x = self._arith_operand(node.operand)
            return -x if node.op == "-" else x
        if isinstance(node, BinOp):
            if node.op not in _ARITH:
                raise LmmError(f"cannot evaluate '{node.op}' in {deparse_node(node)}")
            a, b = self._arith_operand(node.left), self._arith_operand(node.right)
            with np.errstate(all="ignore"):
                return _ARITH[node.op](a, b)
        if isinstance(node, Call):
            return self._call(node)
        raise LmmError(f"cannot evaluate {deparse_node(node)}")

    def _name(self, node):
        data = self.data
        if node.id in data.columns:
            count = list(data.columns).count(node.id)
            if count > 1:
                raise LmmError(f"the data has {count} columns named '{node.id}'; rename "
                               f"them so that '{node.id}' is unambiguous")
            return data[node.id]
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        if node.id == ".":
            raise LmmError("'.' (all other columns) is not supported in lmmlite formulas; "
                           "name the variables")
        cols = ", ".join(map(str, data.columns[:20]))
        raise LmmError(f"variable '{node.id}' is not a column of the data "
                       f"(columns are: {cols}{', ...' if len(data.columns) > 20 else ''})")

    def _arith_operand(self, node, call=None):
        """A numeric operand: float array or scalar; factors are an error."""
        value = self.eval(node)
        if isinstance(value, Factor) or (isinstance(value, pd.Series) and is_factor_like(value)
                                         and not pd.api.types.is_bool_dtype(value)):
            where = f" in {call}" if call else ""
            raise LmmError(f"'{deparse_node(node)}' must be numeric to be used{where}")
        if isinstance(value, pd.Series):
            return value.to_numpy(dtype=float)
        if isinstance(value, Matrix):
            return value.values
        if isinstance(value, str):
            raise LmmError(f"the string {value!r} cannot be used in arithmetic")
        return value

    def _call(self, node):
        f, label = node.func, deparse_node(node)
        if f in _MATH:
            x = self._arith_operand(node.args[0], label) if node.args else None
            if len(node.args) != 1 and not (f == "log" and len(node.args) == 2):
                raise LmmError(f"{f}() takes one argument in a formula: {label}")
            with np.errstate(all="ignore"):
                out = _MATH[f](np.asarray(x, dtype=float))
                if f == "log" and len(node.args) == 2:
                    out = out / np.log(float(self._arith_operand(node.args[1], label)))
            return out
        if f == "I":
            if len(node.args) != 1:
                raise LmmError(f"I() takes one argument: {label}")
            return self.eval(node.args[0])
        if f == "offset":
            return self._arith_operand(node.args[0], label)
        if f == "scale":
            return self._scale(node, label)
        if f == "poly":
            return self._poly(node, label)
        if f in ("factor", "as.factor", "ordered"):
            if len(node.args) != 1 or (node.kwargs and f != "ordered"):
                raise LmmError(f"{f}() takes one argument in a formula: {label}")
            x = self.eval(node.args[0])
            series = x if isinstance(x, pd.Series) else pd.Series(np.asarray(x))
            if isinstance(x, Factor):
                series = pd.Series(x.values)
            return self._factor(label, series, ordered=f == "ordered")
        if f == "C":
            return self._contrast_call(node, label)
        if f == "cbind":
            # a binomial response cbind(successes, failures): a matrix, one column per argument
            if len(node.args) < 2 or node.kwargs:
                raise LmmError(f"cbind() needs two columns, e.g. cbind(successes, failures): {label}")
            cols = [np.broadcast_to(np.asarray(self._arith_operand(a, label), dtype=float),
                                    (self.n,)) for a in node.args]
            return Matrix(np.column_stack(cols), [deparse_node(a) for a in node.args])
        raise LmmError(f"function '{f}' is not supported in formulas ({label})")

    def _kwarg(self, node, name, position, default):
        for k, v in node.kwargs:
            if k == name:
                return self.eval(v)
        if len(node.args) > position:
            return self.eval(node.args[position])
        return default

    def _scale(self, node, label):
        """scale(x): (x - mean) / sd, the training mean and sd reused on new data."""
        x = self._arith_operand(node.args[0], label)
        center = self._kwarg(node, "center", 1, True)
        scale = self._kwarg(node, "scale", 2, True)
        if self.training:
            mu = np.nanmean(x) if center is True else 0.0
            ok = x[~np.isnan(x)] - mu
            sd = np.sqrt(ok @ ok / (len(ok) - 1)) if scale is True else 1.0
            self.state[label] = (mu, sd)
        mu, sd = self.state[label]
        return Matrix(((x - mu) / sd)[:, None], None)

    def _poly(self, node, label):
        x = np.asarray(self._arith_operand(node.args[0], label), dtype=float)
        degree = int(self._kwarg(node, "degree", 1, 1))
        raw = bool(self._kwarg(node, "raw", 2, False))
        if degree < 1:
            raise LmmError(f"'degree' must be at least 1 in {label}")
        names = [str(k) for k in range(1, degree + 1)]
        if raw:
            return Matrix(x[:, None] ** np.arange(1, degree + 1)[None, :], names)
        if self.training:
            if np.isnan(x).any():
                raise LmmError(f"missing values are not allowed in 'poly' ({label}); "
                               "remove those rows first")
            if degree >= len(np.unique(x)):
                raise LmmError(f"'degree' must be less than number of unique points in {label}")
            values, coefs = poly_fit(x, degree)
            self.state[label] = coefs
            return Matrix(values, names)
        return Matrix(poly_predict(x, self.state[label]), names)

    def _contrast_call(self, node, label):
        """C(f, contr.sum): the factor f with the contrasts named."""
        if len(node.args) != 2 or node.kwargs:
            raise LmmError(f"C() needs a factor and a contrast, e.g. C(f, contr.sum): {label}")
        how = node.args[1]
        name = how.id if isinstance(how, Name) else how.value if isinstance(how, Str) else None
        if name in ("treatment", "sum", "helmert", "poly"):
            name = "contr." + name
        if name not in CONTRASTS:
            raise LmmError(f"unknown contrasts in {label}; use one of {', '.join(CONTRASTS)}")
        x = self.eval(node.args[0])
        series = pd.Series(x.values) if isinstance(x, Factor) else (
            x if isinstance(x, pd.Series) else pd.Series(np.asarray(x)))
        fac = self._factor(label, series, contrasts=name)
        fac.from_call = True
        return fac
