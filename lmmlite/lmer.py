"""lmer(): the pipeline formula -> frame -> design -> deviance -> optimize -> results."""

import sys
import time
import warnings

import numpy as np

from .call import make_call
from .design import build_design, check_scale
from .errors import LmmError, SingularFitWarning
from .formula import parse_formula
from .model import LmerModel
from .threads import blas_single_thread
from .results import LmerFit


LARGE = 20_000  # observations from which lmer() reports its progress by default


def lmer(formula, data, REML=True, optimizer="auto", verbose=None, weights=None, offset=None,
         contrasts=None, solver="auto"):
    """Fit a linear mixed model with lme4's formula syntax.

    Parameters
    ----------
    formula : str
        e.g. ``"Reaction ~ Days + (1 + Days | Subject)"``. Random terms:
        ``(1|g)``, ``(x|g)``, ``(0 + x|g)``, ``(x||g)``, ``(1|a/b)``, ``(1|a:b)``;
        R's formula language in the fixed part and inside random terms
        (``log(x + 1)``, ``poly(x, 2)``, ``scale(x)``, ``factor(x)``,
        ``C(f, contr.sum)``, ``I(x^2)``, ``offset(z)``, ``%in%``, ``^``, ``-``).
    data : pandas.DataFrame
        Rows with a missing value in a used column are dropped (and counted).
    REML : bool
        Fit by restricted maximum likelihood (default, as lme4) or by ML.
    optimizer : {"auto", "bobyqa", "lbfgsb", "nloptwrap"}
        ``"nloptwrap"`` is lme4's own optimizer with lme4's settings (through
        the ``nlopt`` package, a dependency) and stops where lme4 stops, so it
        reproduces lme4's printed digits; ``"bobyqa"`` (the default) and
        ``"lbfgsb"`` (pure scipy; what ``"auto"`` falls back to where nlopt
        cannot be imported) continue to the exact optimum, never worse than
        lme4's -- a last printed digit can differ where lme4 stopped early.
    verbose : bool or None
        Report the model size and the time spent on stderr.  ``None`` (default):
        only for large data (at least 20,000 observations), where a fit takes
        seconds.
    weights : str or array, optional
        Prior weights w (a column of ``data`` or one value per row):
        Var(y_i | b) = σ²/w_i, as lme4's ``weights=``.
    offset : str or array, optional
        A known term added to the linear predictor, as lme4's ``offset=``
        (``offset(x)`` in the formula does the same).
    contrasts : dict, optional
        Contrasts per factor, e.g. ``{"f": "contr.sum"}`` (R's ``contrasts=``).
        By default unordered factors get treatment and ordered factors
        polynomial contrasts, as in R.
    solver : {"auto", "dense", "blocked", "pairs"}
        How the penalized least-squares system is factored (lmmlite/solvers.py);
        all give the same fit, "auto" picks the fastest for the model's size.

    Returns
    -------
    LmerFit
    """
    with blas_single_thread():
        return _lmer(formula, data, REML, optimizer, verbose,
                     make_call(data, weights, offset), contrasts, solver)


def _lmer(formula, data, REML, optimizer, verbose, call, contrasts=None, solver="auto"):
    t0 = time.perf_counter()
    spec = parse_formula(formula)
    if not spec.random:
        raise LmmError(f"no random effects terms specified in formula '{spec.formula}'; "
                       "use lm() for a model without random effects")
    design = build_design(spec, data, call.weights, call.offset, contrasts)
    check_scale(design.X)
    y = design.y
    if np.ptp(y) == 0:
        raise LmmError(f"the response '{spec.response}' is constant ({y[0]:g} in every row); "
                       "there is no variation to model")
    if verbose is None:
        verbose = design.nobs >= LARGE
    if verbose:
        print(f"lmer: {design.nobs} observations, {design.X.shape[1]} fixed effects, random "
              "effects " + ", ".join(f"{b.group} ({b.nlevels} levels x {b.p})"
                                     for b in design.blocks)
              + "; optimizing ...", file=sys.stderr, flush=True)
    model = LmerModel(design, REML=REML, solver=solver)
    opt = model.optimize(optimizer)
    if opt.singular:
        warnings.warn(opt.messages[0], SingularFitWarning, stacklevel=2)
    fit = LmerFit(model, opt, data=data, call=call)
    if verbose:
        print(f"lmer: done, {opt.nfev} deviance evaluations in "
              f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return fit
