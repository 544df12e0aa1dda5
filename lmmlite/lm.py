"""lm(): ordinary least squares with R's ``summary.lm`` output.

Shares the formula, frame and design stages with lmer().  Aliased columns are
kept as NA coefficients, as R's lm does.
"""

import numpy as np
import pandas as pd
from scipy import stats

from .confint import confint as _confint
from .design import drop_rank_deficient, model_matrix
from .errors import LmmError
from .fit import FitBase
from .formula import parse_formula
from .frame import model_frame
from .summary import LmSummary, format_lm_short


class LmFit(FitBase):
    """A fitted linear model (R's ``lm``); the shared names are in fit.py.

    ``coefficients`` (R's ``coef``) has every column of the model matrix,
    NA for the aliased ones; ``fixef`` only the estimable ones.
    """

    def __init__(self, formula, data, data_name="data"):
        spec = parse_formula(formula)
        if spec.random:
            raise LmmError(f"lm() cannot fit random-effects terms such as "
                           f"{spec.random[0].text}; use lmer()")
        self.spec, self.formula, self.data_name = spec, spec.formula, data_name
        frame = model_frame(spec, data)
        self.frame = frame
        Xfull, names = model_matrix(spec.intercept, spec.terms, frame)
        X, kept, self.aliased = drop_rank_deficient(Xfull, names, quiet=True)
        y = frame.columns[spec.response]
        self.nobs, self.rank = len(y), X.shape[1]
        self.df_residual = self.nobs - self.rank
        if self.df_residual < 0:
            raise LmmError("more coefficients than observations")
        Q, R = np.linalg.qr(X)
        beta = np.linalg.solve(R, Q.T @ y) if self.rank else np.zeros(0)
        self._fitted = X @ beta
        self._resid = y - self._fitted
        self._y = y
        self.rss = float(self._resid @ self._resid)
        self.sigma = np.sqrt(self.rss / self.df_residual) if self.df_residual else np.nan
        Rinv = np.linalg.inv(R) if self.rank else np.zeros((0, 0))
        cov = self.sigma ** 2 * Rinv @ Rinv.T
        self.coefficients = pd.Series(np.nan, index=names)
        self.coefficients[kept] = beta
        self.vcov = pd.DataFrame(cov, index=kept, columns=kept)
        self.intercept = spec.intercept
        # log-likelihood of the normal model with σ² = RSS/n (R's logLik.lm)
        n = self.nobs
        self.loglik = -n / 2 * (np.log(2 * np.pi * self.rss / n) + 1)
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
        y = self._y
        mss = np.sum((self._fitted - y.mean()) ** 2) if self.intercept else np.sum(self._fitted ** 2)
        r2 = mss / (mss + self.rss)
        df_int = 1 if self.intercept else 0
        adj = 1 - (1 - r2) * (self.nobs - df_int) / self.df_residual
        numdf = self.rank - df_int
        f = (mss / numdf) / (self.rss / self.df_residual) if numdf > 0 else np.nan
        return r2, adj, f, numdf

    def summary(self):
        """R's ``summary.lm``."""
        return LmSummary(self)

    def confint(self, parm=None, level=0.95):
        """R's ``confint.lm``: t intervals of the coefficients."""
        return _confint(self, parm=parm, level=level)

    def __repr__(self):
        return format_lm_short(self)


def lm(formula, data):
    """Fit a linear model by least squares, as R's ``lm(formula, data)``."""
    from .lmer import _data_name
    return LmFit(formula, data, data_name=_data_name(data))
