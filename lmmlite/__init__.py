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
from .anova import anova
from .confint import confint
from .design import model_matrix

__version__ = "0.1.0"


def fixef(fit):
    """Fixed-effects estimates (R's ``fixef``), a pandas Series."""
    return fit.fixef


def ranef(fit, condvar=True):
    """Conditional modes of the random effects per grouping factor (R's ``ranef``)."""
    return fit.ranef(condvar=condvar)


def coef(fit):
    """Per-level coefficients for an lmer fit, or the coefficients of an lm fit."""
    return fit.coef() if callable(getattr(fit, "coef", None)) else fit.coefficients


def VarCorr(fit):
    """Variance components as a table (R's ``as.data.frame(VarCorr(fit))``)."""
    return fit.varcorr()


__all__ = ["lm", "lmer", "anova", "confint", "model_matrix", "fixef", "ranef", "coef", "VarCorr", "load", "datasets",
           "LmmError", "FormulaError", "ConvergenceWarning", "SingularFitWarning"]
