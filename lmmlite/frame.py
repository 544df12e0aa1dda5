"""The model frame: the columns a formula uses, checked, with incomplete rows dropped.

As R's ``model.frame(..., na.action = na.omit, drop.unused.levels = TRUE)``:
rows with a missing value in any used column are dropped (and counted),
factor levels that no longer occur are dropped, and every problem with the
data is reported by name.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import LmmError

# functions allowed inside a formula, e.g. log(x) or I(x^2)
_FUNCS = {"log": np.log, "exp": np.exp, "sqrt": np.sqrt, "abs": np.abs}


@dataclass
class Frame:
    """Evaluated variables (numeric arrays or pandas Categoricals) and bookkeeping."""

    columns: dict
    nobs: int
    n_dropped: int
    row_index: pd.Index

    def is_factor(self, name):
        return isinstance(self.columns[name], pd.Categorical)


def _evaluate(name, data):
    """Look up a variable; evaluate simple calls such as log(x) or I(x^2)."""
    if name in data.columns:
        if list(data.columns).count(name) > 1:
            raise LmmError(f"the data has {list(data.columns).count(name)} columns named "
                           f"'{name}'; rename them so that '{name}' is unambiguous")
        return data[name]
    if "(" in name and name.endswith(")"):
        fname, inner = name.split("(", 1)
        inner = inner[:-1]
        if fname == "I":
            expr = inner.replace("^", "**")
            try:
                return pd.Series(data.eval(expr, engine="python"), index=data.index)
            except Exception as exc:  # pandas raises many kinds here
                raise LmmError(f"could not evaluate I({inner}): {exc}") from None
        if fname == "scale":
            x = _numeric(_evaluate(inner.strip(), data), inner.strip(), name)
            return (x - x.mean()) / x.std(ddof=1)
        if fname in _FUNCS:
            x = _numeric(_evaluate(inner.strip(), data), inner.strip(), name)
            with np.errstate(all="ignore"):
                return _FUNCS[fname](x)
    raise LmmError(f"variable '{name}' is not a column of the data "
                   f"(columns are: {', '.join(map(str, data.columns[:20]))}"
                   f"{', ...' if len(data.columns) > 20 else ''})")


def _numeric(series, name, call):
    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        raise LmmError(f"'{name}' must be numeric to be used in {call}")
    return series.astype(float)


def _as_factor(series):
    """A pandas Categorical with R's level order (sorted values, or given categories)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return pd.Categorical(series).remove_unused_categories()
    values = series.dropna()
    try:
        levels = sorted(values.unique())
    except TypeError:  # mixed types: sort by their text
        levels = sorted(values.unique(), key=str)
    return pd.Categorical(series, categories=levels)


def _is_factor_like(series):
    return (isinstance(series.dtype, pd.CategoricalDtype)
            or pd.api.types.is_object_dtype(series)
            or pd.api.types.is_string_dtype(series)
            or pd.api.types.is_bool_dtype(series))


def model_frame(spec, data):
    """Build the :class:`Frame` for a parsed formula ``spec`` and a DataFrame."""
    if not isinstance(data, pd.DataFrame):
        raise LmmError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    if len(data) == 0:
        raise LmmError("the data has no rows")
    group_vars = {v for rt in spec.random for v in rt.group}
    raw = {}
    for name in spec.variables():
        value = _evaluate(name, data)
        if isinstance(value, pd.Series):   # keeps a categorical dtype (a factor in R)
            raw[name] = value.set_axis(data.index)
        else:
            raw[name] = pd.Series(np.asarray(value), index=data.index)
    y = raw[spec.response]
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        raise LmmError(f"the response '{spec.response}' must be numeric "
                       f"(it has type {y.dtype}); convert it, e.g. with pd.to_numeric")
    complete = np.ones(len(data), dtype=bool)
    for name, series in raw.items():
        complete &= ~series.isna().to_numpy()
    n_dropped = int((~complete).sum())
    if not complete.any():
        raise LmmError("no complete rows: every row has a missing value in a used column")
    columns = {}
    for name, series in raw.items():
        series = series[complete]
        if name in group_vars or (name != spec.response and _is_factor_like(series)):
            columns[name] = _as_factor(series)
        else:
            x = series.to_numpy(dtype=float)
            if not np.all(np.isfinite(x)):
                bad = int((~np.isfinite(x)).sum())
                raise LmmError(f"'{name}' has {bad} infinite value(s); "
                               "remove or replace them before fitting")
            columns[name] = x
    return Frame(columns=columns, nobs=int(complete.sum()), n_dropped=n_dropped,
                 row_index=data.index[complete])
