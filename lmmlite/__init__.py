"""lmmlite: linear mixed models with lme4's formula syntax, in numpy/scipy/pandas."""

from .errors import LmmError, FormulaError, ConvergenceWarning, SingularFitWarning
from .lmer import lmer

__all__ = ["lmer", "LmmError", "FormulaError", "ConvergenceWarning", "SingularFitWarning"]
__version__ = "0.1.0"
