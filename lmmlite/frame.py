"""Stage 2: the model frame -- every variable of a formula evaluated, checked, and
incomplete rows dropped.

As R's ``model.frame(..., na.action = na.omit)``: the variables are evaluated on
all rows (so ``scale`` and ``factor`` see every row with a value), then rows with
a missing value in any used variable, the prior weights or the offset are
dropped and counted. With ``drop_unused_levels`` (lme4's choice; ``lm`` keeps
them, as R's lm) factor levels that no longer occur are dropped. The
:class:`Frame` keeps the evaluator's state of every stateful transform, so
new data can be evaluated the same way (:func:`new_frame`).
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import LmmError
from .transforms import Evaluator, Factor, Levels, Matrix, make_factor


@dataclass
class Frame:
    """Evaluated variables (float arrays, :class:`Matrix`, :class:`Factor`) and bookkeeping."""

    columns: dict
    nobs: int
    n_dropped: int
    row_index: pd.Index
    state: dict = field(default_factory=dict)     # stateful transforms, for new data
    weights: np.ndarray = None                     # prior weights (None: all 1)
    offset: np.ndarray = None                      # offset() terms plus offset= (None: 0)

    def is_factor(self, name):
        return isinstance(self.columns[name], Factor)


def _missing(value):
    if isinstance(value, Factor):
        return np.asarray(value.values.codes) < 0
    if isinstance(value, Matrix):
        return np.isnan(value.values).any(axis=1)
    return np.isnan(value)


def _take(value, rows):
    if isinstance(value, Factor):
        return Factor(value.values[rows], value.contrasts, value.ordered,
                      from_call=value.from_call)
    if isinstance(value, Matrix):
        return Matrix(value.values[rows], value.colnames)
    return value[rows]


def _argument(value, data, what):
    """A weights= or offset= argument: a column name of data or an array of len(data)."""
    if value is None:
        return None
    if isinstance(value, str):
        if value not in data.columns:
            raise LmmError(f"{what} column '{value}' is not a column of the data")
        value = data[value]
    arr = np.asarray(value, dtype=float) if not isinstance(value, pd.Series) \
        else pd.to_numeric(value, errors="coerce").to_numpy(dtype=float)
    if arr.shape != (len(data),):
        raise LmmError(f"{what} must have one value per row of the data "
                       f"({len(data)}), not shape {arr.shape}")
    return arr


def evaluate(spec, data, state=None, group_factors=True):
    """Every variable of ``spec`` on ``data`` (no rows dropped), and the evaluator."""
    ev = Evaluator(data, state)
    group_vars = {v for rt in spec.random for v in rt.group} if group_factors else set()
    raw = {}
    for label in spec.variables():
        node = spec.nodes[label]
        if label in group_vars:
            value = ev.eval(node)
            raw[label] = value if isinstance(value, Factor) else ev._factor(label, value)
        else:
            raw[label] = ev.variable(node)
    return raw, ev


def model_frame(spec, data, weights=None, offset=None, drop_unused_levels=True,
                glm_response=False):
    """Build the :class:`Frame` for a parsed formula ``spec`` and a DataFrame.

    With ``glm_response`` the response may also be a factor or a matrix
    (glmer's binomial responses); the family checks it.
    """
    if not isinstance(data, pd.DataFrame):
        raise LmmError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    if len(data) == 0:
        raise LmmError("the data has no rows")
    raw, ev = evaluate(spec, data)
    if spec.response is not None and isinstance(raw[spec.response], Factor) and not glm_response:
        y = data[spec.response] if spec.response in data else raw[spec.response].values
        raise LmmError(f"the response '{spec.response}' must be numeric "
                       f"(it has type {getattr(y, 'dtype', 'factor')}); convert it, "
                       "e.g. with pd.to_numeric")
    w = _argument(weights, data, "weights")
    off = _argument(offset, data, "offset")
    complete = np.ones(len(data), dtype=bool)
    for value in raw.values():
        complete &= ~_missing(value)
    for extra in (w, off):
        if extra is not None:
            complete &= ~np.isnan(extra)
    if not complete.any():
        raise LmmError("no complete rows: every row has a missing value in a used column")
    columns = {}
    for label, value in raw.items():
        value = _take(value, complete)
        if isinstance(value, Factor):
            if drop_unused_levels:
                value = Factor(value.values.remove_unused_categories(), value.contrasts,
                               value.ordered, from_call=value.from_call)
            ev.state[label] = Levels(list(value.values.categories), value.ordered)
        else:
            x = value.values if isinstance(value, Matrix) else value
            if not np.all(np.isfinite(x)):
                bad = int((~np.isfinite(x)).any(axis=-1).sum()) if x.ndim > 1 \
                    else int((~np.isfinite(x)).sum())
                raise LmmError(f"'{label}' has {bad} infinite value(s); "
                               "remove or replace them before fitting")
        columns[label] = value
    if w is not None:
        w = w[complete]
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise LmmError("negative weights not allowed")
        if np.any(w == 0):
            raise LmmError("weights must be positive: zero weights are not supported "
                           "(drop those rows instead)")
    total = _offset(spec, columns, off[complete] if off is not None else None)
    return Frame(columns=columns, nobs=int(complete.sum()), n_dropped=int((~complete).sum()),
                 row_index=data.index[complete], state=ev.state, weights=w, offset=total)


def _offset(spec, columns, given):
    """The sum of the offset() terms and the offset= argument (None when there is none)."""
    parts = [columns[label] for label in spec.offsets]
    if given is not None:
        parts.append(given)
    return np.sum(parts, axis=0) if parts else None


def new_frame(spec, train, newdata, variables):
    """The named variables on new data with the training transforms and levels.

    Rows are not dropped: a missing value gives NaN (numeric) or code -1 (factor).
    Factor values that are not training levels are listed in ``Factor.new_levels``.
    """
    if not isinstance(newdata, pd.DataFrame):
        raise LmmError(f"newdata must be a pandas DataFrame, not {type(newdata).__name__}")
    ev = Evaluator(newdata, train.state)
    cols = {}
    for label in dict.fromkeys(variables):
        node = spec.nodes[label]
        try:
            value = ev.eval(node)
        except LmmError as err:
            raise LmmError(f"newdata: {err}") from None
        if isinstance(train.state.get(label), Levels) and not isinstance(value, Factor):
            value = ev._factor(label, value if isinstance(value, pd.Series)
                               else pd.Series(np.asarray(value)))
        elif not isinstance(value, Factor):
            value = ev.variable(node)
        cols[label] = value
    return Frame(columns=cols, nobs=len(newdata), n_dropped=0, row_index=newdata.index,
                 state=train.state)


__all__ = ["Frame", "model_frame", "new_frame", "evaluate", "make_factor"]
