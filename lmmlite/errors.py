"""Errors and warnings raised by lmmlite.

Every problem with a user's input is reported as an :class:`LmmError` (a
``ValueError``) whose message names the problem and, where possible, what to
do about it -- never as a bare numpy traceback.  Doubtful results are
warnings (:class:`ConvergenceWarning`, :class:`SingularFitWarning`); notes
that lme4 gives with R's ``message()`` go through :func:`message`.
"""

import logging
import sys


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


class MissingDependencyError(LmmError, ImportError):
    """An optional package (e.g. nlopt for optimizer='bobyqa') is needed but not installed."""


class ConvergenceWarning(UserWarning):
    """The optimizer's result is doubtful (gradient or Hessian check failed)."""


class SingularFitWarning(UserWarning):
    """The fit is on the boundary of the parameter space (lme4's isSingular)."""


# --------------------------------------------------------------------------
# messages: lme4's message() -- notes on stderr that are not warnings
class _StderrHandler(logging.Handler):
    """Writes to the sys.stderr of the moment (so notebooks and capture tools see it)."""

    def emit(self, record):
        try:  # as print(..., file=sys.stderr): no flush, so a notebook shows it where it did
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # logging must never raise
            self.handleError(record)


logger = logging.getLogger("lmmlite")
logger.setLevel(logging.INFO)
logger.addHandler(_StderrHandler())
logger.propagate = False


def message(text):
    """Print a note on stderr as R's ``message()`` does.

    The notes (e.g. anova's "refitting model(s) with ML (instead of REML)")
    go through the ``"lmmlite"`` logger at level INFO; silence them with
    ``logging.getLogger("lmmlite").setLevel(logging.WARNING)``.
    """
    logger.info(text)


def progress_bar(i, total, width=50):
    """A text progress bar on stderr, redrawn in place (as lme4's bootMer)."""
    done = int(width * i / total)
    sys.stderr.write("\r|" + "=" * done + " " * (width - done) + f"| {100 * i // total:3d}%")
    if i == total:
        sys.stderr.write("\n")
    sys.stderr.flush()
