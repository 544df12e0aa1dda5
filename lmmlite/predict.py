"""Predictions of an lmer fit, as lme4's ``predict.merMod``.

ŷ = X_new β̂ + Σ_k Z_k,new b̂_k (+ the formula's offset() terms), where X_new and
Z_k,new come from the fit's :class:`~lmmlite.design.Design` (the training
transforms, levels and contrasts; nothing is re-parsed). ``re_form`` chooses the
random terms column by column: a term of ``re_form`` such as ``(1 | Subject)``
selects the columns of that grouping factor with the same names. A level not
seen in training (or a missing grouping value) contributes 0 for that term alone
when ``allow_new_levels``; otherwise it is an error naming the levels.
"""

import numpy as np
import pandas as pd
from scipy import stats

from .design import term_matrix
from .errors import LmmError
from .formula import parse_formula
from .transforms import level_label


def _fixed_only(re_form):
    if re_form is None:
        return False
    if isinstance(re_form, float) and np.isnan(re_form):
        return True
    text = str(re_form).replace(" ", "")
    return text in ("~0", "NA", "nan", "~-1", "0")


def _selected_columns(fit, re_form):
    """For each block, a boolean mask of its columns that ``re_form`` keeps."""
    if re_form is None:
        return [np.ones(b.p, dtype=bool) for b in fit.blocks]
    if _fixed_only(re_form):
        return [np.zeros(b.p, dtype=bool) for b in fit.blocks]
    spec = parse_formula(str(re_form), one_sided=True)
    if spec.terms or not spec.random:
        raise LmmError(f"re_form must be None, '~0' or random terms such as "
                       f"'~(1 | g)', not {re_form!r}")
    wanted = {}
    for rt in spec.random:
        labels = [v for t in rt.terms for v in t]
        missing = [v for v in labels if v not in fit.frame.columns]
        if missing:
            raise LmmError(f"re_form term {rt.text} uses {', '.join(missing)}, "
                           "which the model's random terms do not")
        _, names, _, _ = term_matrix(rt.intercept, list(rt.terms), _Columns(fit.frame, labels))
        wanted.setdefault(rt.group_name, set()).update(names)
    groups = {b.group for b in fit.blocks}
    for g in wanted:
        if g not in groups:
            raise LmmError(f"re_form has grouping factor '{g}', which is not in the model "
                           f"(it has {', '.join(sorted(groups))})")
    return [np.array([c in wanted.get(b.group, ()) for c in b.cnames]) for b in fit.blocks]


class _Columns:
    """A training frame restricted to some variables (for column names only)."""

    def __init__(self, frame, labels):
        self.columns = {v: frame.columns[v] for v in labels}
        self.nobs = frame.nobs
        self.is_factor = frame.is_factor


def _new_level_error(block, newdata, codes):
    rt = block.term
    bad = newdata.loc[codes < 0, list(rt.group)]
    values = sorted({":".join("NA" if pd.isna(v) else level_label(v) for v in row)
                     for row in bad.itertuples(index=False)})
    shown = ", ".join(values[:10]) + (", ..." if len(values) > 10 else "")
    raise LmmError(f"new levels detected in newdata: {shown} (grouping factor "
                   f"'{block.group}'); use allow_new_levels=True to predict them with "
                   "random effect 0")


def predict_lmer(fit, newdata=None, re_form=None, allow_new_levels=False):
    """lme4's predict(fit, newdata, re.form, allow.new.levels) as a pandas Series."""
    design = fit.design
    masks = _selected_columns(fit, re_form)
    beta = fit.fixef.to_numpy()
    if newdata is None:
        pred = design.X @ beta + (0.0 if design.offset is None else design.offset)
        for b, bk, m in zip(fit.blocks, fit.b_blocks, masks):
            if m.any():
                pred = pred + np.einsum("ij,ij->i", b.X[:, m], bk[b.codes][:, m])
        return pd.Series(pred, index=fit.frame.row_index)
    if not isinstance(newdata, pd.DataFrame):
        raise LmmError(f"newdata must be a pandas DataFrame, not {type(newdata).__name__}")
    # lme4 keeps the formula's offset() terms and drops the offset= argument
    pred = design.fixed_matrix(newdata) @ beta + design.new_offset(newdata)
    for b, bk, m in zip(fit.blocks, fit.b_blocks, masks):
        if not m.any():
            continue
        X, codes = design.random_rows(newdata, b)
        if (codes < 0).any() and not allow_new_levels:
            _new_level_error(b, newdata, codes)
        effect = np.where((codes >= 0)[:, None], bk[np.maximum(codes, 0)], 0.0)
        pred = pred + np.einsum("ij,ij->i", X[:, m], effect[:, m])
    return pd.Series(pred, index=newdata.index)


def population_se(fit, newdata=None, se_fit=True, interval=None, level=0.95):
    """Population predictions x'β̂ with se_fit = sqrt(diag(X V(β̂) X')) and, with
    ``interval="confidence"``, Wald limits x'β̂ ± z se_fit (z the normal quantile).

    The limits treat V(β̂) = σ̂²(R_X'R_X)⁻¹ as known, as the large-sample Wald
    interval does; for small samples emmeans's intervals with Satterthwaite or
    Kenward-Roger df are wider. Returns a DataFrame (fit, se_fit[, lwr, upr]).
    """
    if interval not in (None, "confidence"):
        raise LmmError(f"interval must be None or 'confidence', not {interval!r} "
                       "(prediction intervals of a mixed model need the random effects' "
                       "and the residual variance: simulate() gives them)")
    design = fit.design
    if newdata is None:
        X, off, index = design.X, design.offset, fit.frame.row_index
        off = 0.0 if off is None else off
    else:
        if not isinstance(newdata, pd.DataFrame):
            raise LmmError(f"newdata must be a pandas DataFrame, not {type(newdata).__name__}")
        X, off, index = design.fixed_matrix(newdata), design.new_offset(newdata), newdata.index
    V = fit.vcov.to_numpy()
    out = pd.DataFrame({"fit": X @ fit.fixef.to_numpy() + off}, index=index)
    se = np.sqrt(np.einsum("ij,jk,ik->i", X, V, X))
    if se_fit:
        out["se_fit"] = se
    if interval == "confidence":
        z = stats.norm.ppf(1 - (1 - level) / 2)
        out["lwr"] = out["fit"] - z * se
        out["upr"] = out["fit"] + z * se
    return out
