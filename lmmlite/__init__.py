"""lmmlite: linear mixed models with lme4's formula syntax, in numpy/scipy/pandas.

    from lmmlite import lm, lmer, ranef, fixef, coef, load
    df = load("sleepstudy")
    fit = lmer("Reaction ~ Days + (Days | Subject)", data=df)
    print(fit.summary())
"""

from .datasets import datasets, load
from .errors import ConvergenceWarning, FormulaError, LmmError, SingularFitWarning
from .lm import lm
from .lmer import lmer
from .glmer import glmer
from .family import binomial, poisson
from .anova import anova
from .confint import confint
from .design import model_matrix
from .anova import drop1
from .inference import contest
from .lsmeans import difflsmeans, emmeans, ls_means
from .r2 import icc, r2
from .ranova import ranova
from .simulate import pbmodcomp, simulate
from .influence import cooks_distance, hatvalues, influence

__version__ = "0.1.0"


# R-like functions mirroring the fit interface (fit.py): fixef(fit) is fit.fixef, ...
def fixef(fit):
    """Fixed-effects estimates (R's ``fixef``), a pandas Series."""
    return fit.fixef


def ranef(fit, condvar=True):
    """Conditional modes of the random effects per grouping factor (R's ``ranef``)."""
    return fit.ranef(condvar=condvar)


def coef(fit):
    """R's ``coef``: per-level coefficients of an lmer fit, the coefficients of an lm fit."""
    return fit.coef()


def vcov(fit):
    """Covariance matrix of the fixed-effects estimates (R's ``vcov``)."""
    return fit.vcov


def VarCorr(fit):
    """Variance components as a table (R's ``as.data.frame(VarCorr(fit))``)."""
    return fit.varcorr()


def sigma(fit):
    """Residual standard deviation (R's ``sigma``)."""
    return fit.sigma


def nobs(fit):
    """Number of observations used (R's ``nobs``)."""
    return fit.nobs


def logLik(fit):
    """Log-likelihood (R's ``logLik``; the REML criterion / -2 for a REML fit)."""
    return fit.loglik


def AIC(fit):
    """Akaike's information criterion (R's ``AIC``)."""
    return fit.aic


def BIC(fit):
    """Bayesian information criterion (R's ``BIC``)."""
    return fit.bic


def deviance(fit):
    """R's ``deviance``: the ML deviance of an lmer fit, the RSS of an lm fit."""
    return fit.deviance


def df_residual(fit):
    """Residual degrees of freedom (R's ``df.residual``)."""
    return fit.df_residual


def fitted(fit):
    """Fitted values (R's ``fitted``)."""
    return fit.fitted()


def residuals(fit):
    """Residuals (R's ``residuals``)."""
    return fit.residuals()


def isSingular(fit):
    """lme4's ``isSingular``: an lmer fit on the boundary of its parameter space."""
    return bool(fit.singular)


__all__ = ["lm", "lmer", "glmer", "binomial", "poisson", "anova", "confint", "fixef", "ranef", "coef", "vcov", "VarCorr",
           "sigma", "nobs", "logLik", "AIC", "BIC", "deviance", "df_residual", "fitted",
           "residuals", "isSingular", "model_matrix", "load", "datasets",
           "ranova", "drop1", "contest", "ls_means", "difflsmeans", "emmeans", "icc", "r2",
           "simulate", "pbmodcomp",
           "hatvalues", "influence", "cooks_distance",
           "LmmError", "FormulaError", "ConvergenceWarning", "SingularFitWarning"]
