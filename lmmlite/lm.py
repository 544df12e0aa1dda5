"""lm(): ordinary least squares with R's ``summary.lm`` output.

Shares the formula, frame and design stages with lmer().  Aliased columns are
kept as NA coefficients, as R's lm does.
"""

import numpy as np
import pandas as pd
from scipy import stats

from .call import Call, make_call
from .design import build_design
from .errors import LmmError
from .fit import FitBase
from .formula import parse_formula
from .lm_predict import confint_lm, predict_lm
from .summary import LmSummary, format_lm_short


class LmFit(FitBase):
    """A fitted linear model (R's ``lm``), by (weighted) least squares; the shared
    names are in fit.py.

    ``coefficients`` (R's ``coef``) has every column of the model matrix,
    NA for the aliased ones; ``fixef`` only the estimable ones.
    """

    def __init__(self, formula, data, data_name=None, weights=None, offset=None,
                 contrasts=None, call=None):
        spec = parse_formula(formula)
        if spec.random:
            raise LmmError(f"lm() cannot fit random-effects terms such as "
                           f"{spec.random[0].text}; use lmer()")
        # weights=/offset= as given (predict.lm reads offset= from newdata) and their texts
        self.call = call or Call(weights=weights, offset=offset)
        self.spec, self.formula = spec, spec.formula
        self.data_name = data_name or self.call.data_name
        # R's lm keeps unused factor levels (their coefficients are NA)
        design = build_design(spec, data, weights, offset, contrasts,
                              drop_unused_levels=False, quiet_rank=True)
        self.design = design
        self.frame = design.frame
        self.aliased = design.dropped
        names, kept = design.full_names, design.xnames
        X, y = design.X, design.y
        off = 0.0 if design.offset is None else design.offset
        w = np.ones(len(y)) if design.weights is None else design.weights
        sw = np.sqrt(w)
        self.nobs, self.rank = len(y), X.shape[1]
        self.df_residual = self.nobs - self.rank
        if self.df_residual < 0:
            raise LmmError("more coefficients than observations")
        Q, R = np.linalg.qr(X * sw[:, None])
        beta = np.linalg.solve(R, Q.T @ ((y - off) * sw)) if self.rank else np.zeros(0)
        self._fitted = X @ beta + off
        self._resid = y - self._fitted
        self._y, self._w = y, w
        self.rss = float(w @ self._resid ** 2)
        self.sigma = np.sqrt(self.rss / self.df_residual) if self.df_residual else np.nan
        Rinv = np.linalg.inv(R) if self.rank else np.zeros((0, 0))
        cov = self.sigma ** 2 * Rinv @ Rinv.T
        self.coefficients = pd.Series(np.nan, index=names)
        self.coefficients[kept] = beta
        self.vcov = pd.DataFrame(cov, index=kept, columns=kept)
        self.intercept = spec.intercept
        # R's logLik.lm: 0.5 * (Σ log w - n (log(2π) + 1 - log n + log Σ w r²))
        n = self.nobs
        self.loglik = 0.5 * (np.sum(np.log(w)) - n * (np.log(2 * np.pi) + 1 - np.log(n)
                                                      + np.log(self.rss)))
        self.npar = self.rank + 1
        self.aic = -2 * self.loglik + 2 * self.npar
        self.bic = -2 * self.loglik + np.log(n) * self.npar

    @property
    def fixef(self):
        """The estimable coefficients (those of ``vcov``)."""
        return self.coefficients[list(self.vcov.index)]

    def coef(self):
        """R's ``coef(lm)``: every coefficient, NA where aliased."""
        return self.coefficients

    @property
    def deviance(self):
        """R's ``deviance(lm)``: the residual sum of squares."""
        return self.rss

    def fitted(self):
        """Fitted values, indexed as the rows used."""
        return pd.Series(self._fitted, index=self.frame.row_index)

    def residuals(self):
        """Response minus fitted values, indexed as the rows used."""
        return pd.Series(self._resid, index=self.frame.row_index)

    def predict(self, newdata=None, interval=None, level=0.95):
        """Predictions as R's ``predict.lm``: a Series, or with ``interval`` =
        ``"confidence"`` or ``"prediction"`` a DataFrame with columns fit, lwr, upr.

        The prediction interval adds σ̂² (weight 1 for new rows, as R assumes).
        """
        return predict_lm(self, newdata, interval, level)

    def confint(self, level=0.95):
        """Confidence intervals of the coefficients, as R's ``confint.lm``:
        β̂ ± t_{df, (1+level)/2} SE; NA for aliased coefficients."""
        return confint_lm(self, level)

    def coef_table(self):
        """Estimate, Std. Error, t value, Pr(>|t|) for the estimable coefficients."""
        kept = list(self.vcov.index)
        est = self.coefficients[kept]
        se = np.sqrt(np.diag(self.vcov))
        t = est / se
        p = 2 * stats.t.sf(np.abs(t), self.df_residual)
        return pd.DataFrame({"Estimate": est, "Std. Error": se, "t value": t, "Pr(>|t|)": p})

    def r_squared(self):
        """Multiple and adjusted R², as summary.lm (centred when there is an intercept)."""
        # summary.lm (R 4.2, the reference here): weighted sums of squares of the fitted
        # values, offset included (later R versions subtract the offset first)
        w = self._w
        f = self._fitted
        if self.intercept:
            mss = float(w @ (f - (w @ f) / w.sum()) ** 2)
        else:
            mss = float(w @ f ** 2)
        r2 = mss / (mss + self.rss)
        df_int = 1 if self.intercept else 0
        adj = 1 - (1 - r2) * (self.nobs - df_int) / self.df_residual
        numdf = self.rank - df_int
        f = (mss / numdf) / (self.rss / self.df_residual) if numdf > 0 else np.nan
        return r2, adj, f, numdf

    def summary(self):
        """R's ``summary.lm``."""
        return LmSummary(self)

    def __repr__(self):
        return format_lm_short(self)


def lm(formula, data, weights=None, offset=None, contrasts=None):
    """Fit a linear model by least squares, as R's ``lm(formula, data)``.

    ``weights`` (prior weights: weighted least squares), ``offset`` (a column
    name or one value per row) and ``contrasts`` (e.g. ``{"f": "contr.sum"}``)
    as R's arguments of the same names.
    """
    return LmFit(formula, data, weights=weights, offset=offset, contrasts=contrasts,
                 call=make_call(data, weights, offset))
