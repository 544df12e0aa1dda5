"""Errors and warnings raised by lmmlite.

Every problem with a user's input is reported as an :class:`LmmError` (a
``ValueError``) whose message names the problem and, where possible, what to
do about it -- never as a bare numpy traceback.
"""


class LmmError(ValueError):
    """Bad input to lm() or lmer(): the message says what and where."""


class FormulaError(LmmError):
    """A formula that cannot be parsed; the message shows the position."""

    def __init__(self, message, formula=None, position=None):
        self.formula = formula
        self.position = position
        if formula is not None and position is not None:
            message = f"{message}\n  {formula}\n  {' ' * position}^"
        super().__init__(message)


class ConvergenceWarning(UserWarning):
    """The optimizer's result is doubtful (gradient or Hessian check failed)."""


class SingularFitWarning(UserWarning):
    """The fit is on the boundary of the parameter space (lme4's isSingular)."""
