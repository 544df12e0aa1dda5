"""Predictions and coefficient intervals of an lm fit (R's predict.lm, confint.lm).

With x₀ a new row of the design, ŷ₀ = x₀'β̂ (+ offset), se(ŷ₀)² = x₀' Cov(β̂) x₀;
the confidence interval is ŷ₀ ± t se(ŷ₀) and the prediction interval
ŷ₀ ± t sqrt(se(ŷ₀)² + σ̂²/w₀) with w₀ = 1, t the (1+level)/2 quantile of t with the
residual degrees of freedom.
"""

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from .errors import LmmError


def _offset_on(fit, newdata):
    """predict.lm keeps both the formula's offset() terms and the offset= argument."""
    off = fit.design.new_offset(newdata)
    arg = fit.call.offset
    if arg is not None:
        if not isinstance(arg, str):
            raise LmmError("the model's offset= was an array; to predict for newdata, give "
                           "offset= as a column name so it can be read from newdata")
        off = off + newdata[arg].to_numpy(dtype=float)
    return off


def predict_lm(fit, newdata=None, interval=None, level=0.95):
    if interval not in (None, "none", "confidence", "prediction"):
        raise LmmError("interval must be None, 'confidence' or 'prediction'")
    beta = fit.fixef.to_numpy()
    if newdata is None:
        X, index = fit.design.X, fit.frame.row_index
        pred = fit.fitted().to_numpy()
        if interval == "prediction":
            warnings.warn("predictions on current data refer to _future_ responses",
                          stacklevel=3)
    else:
        if not isinstance(newdata, pd.DataFrame):
            raise LmmError(f"newdata must be a pandas DataFrame, not {type(newdata).__name__}")
        X, index = fit.design.fixed_matrix(newdata), newdata.index
        pred = X @ beta + _offset_on(fit, newdata)
        if interval == "prediction" and fit.design.weights is not None:
            warnings.warn("Assuming constant prediction variance even though model fit is "
                          "weighted", stacklevel=3)
    if interval in (None, "none"):
        return pd.Series(pred, index=index)
    V = fit.vcov.to_numpy()
    se2 = np.einsum("ij,jk,ik->i", X, V, X)
    if interval == "prediction":
        se2 = se2 + fit.sigma ** 2
    t = stats.t.ppf((1 + level) / 2, fit.df_residual)
    half = t * np.sqrt(se2)
    return pd.DataFrame({"fit": pred, "lwr": pred - half, "upr": pred + half}, index=index)


def _pct(p):
    """R's paste(format(100 * p, trim = TRUE, scientific = FALSE, digits = 3), "%")."""
    return f"{float(f'{100 * p:.3g}'):g} %"


def confint_lm(fit, level=0.95):
    a = (1 - level) / 2
    names = list(fit.coefficients.index)
    se = pd.Series(np.nan, index=names)
    se[list(fit.vcov.index)] = np.sqrt(np.diag(fit.vcov.to_numpy()))
    t = stats.t.ppf(1 - a, fit.df_residual)
    est = fit.coefficients
    return pd.DataFrame({_pct(a): est - t * se, _pct(1 - a): est + t * se}, index=names)
