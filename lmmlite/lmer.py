"""lmer(): the pipeline formula -> frame -> design -> deviance -> optimize -> results."""

import inspect
import sys
import time
import warnings

import numpy as np

from .design import build_design, check_scale
from .errors import LmmError, SingularFitWarning
from .formula import parse_formula
from .model import LmerModel
from .optimize import blas_single_thread
from .results import LmerFit


LARGE = 20_000  # observations from which lmer() reports its progress by default


def lmer(formula, data, REML=True, optimizer="auto", verbose=None, weights=None, offset=None,
         contrasts=None):
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
        ``"nloptwrap"`` is lme4's own optimizer with lme4's settings (needs the
        optional ``nlopt`` package) and stops where lme4 stops, so it
        reproduces lme4's printed digits; ``"bobyqa"`` (the default with
        nlopt) and ``"lbfgsb"`` (pure scipy, the default without nlopt)
        continue to the exact optimum, never worse than lme4's -- a last
        printed digit can differ where lme4 stopped early.
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

    Returns
    -------
    LmerFit
    """
    with blas_single_thread():
        fit = _lmer(formula, data, REML, optimizer, verbose, _data_name(data),
                    weights, offset, contrasts)
    fit.call_args = argument_texts(weights=weights, offset=offset)
    return fit


def argument_texts(depth=3, **arguments):
    """How the caller wrote each given argument (a column name as it is), for the
    Weights:/Offset: lines of the summary, as R prints its call."""
    out = {}
    for keyword, value in arguments.items():
        if value is not None:
            out[keyword] = value if isinstance(value, str) else \
                _data_name(value, depth=depth, arg=99, keyword=keyword)
    return out


def _lmer(formula, data, REML, optimizer, verbose, data_name, weights=None, offset=None,
          contrasts=None):
    t0 = time.perf_counter()
    spec = parse_formula(formula)
    if not spec.random:
        raise LmmError(f"no random effects terms specified in formula '{spec.formula}'; "
                       "use lm() for a model without random effects")
    design = build_design(spec, data, weights, offset, contrasts)
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
    model = LmerModel(design, REML=REML)
    opt = model.optimize(optimizer)
    if opt.singular:
        warnings.warn(opt.messages[0], SingularFitWarning, stacklevel=2)
    fit = LmerFit(model, opt, data_name=data_name, data=data)
    fit._weights_arg, fit._offset_arg = weights, offset
    if verbose:
        print(f"lmer: done, {opt.nfev} deviance evaluations in "
              f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return fit


def _data_name(data, depth=2, arg=1, keyword="data"):
    """How the caller wrote the ``data`` argument, as R's ``deparse(substitute(data))``.

    Reads the source of the calling expression (Python >= 3.11 records its
    position); falls back to a variable name bound to the object, then "data".
    """
    frame = inspect.currentframe()
    for _ in range(depth):
        frame = frame.f_back if frame is not None else None
    try:
        if frame is None:
            return "data"
        text = _call_argument(frame, arg, keyword)
        if text:
            return text
        for scope in (frame.f_locals, frame.f_globals):
            for name, value in scope.items():
                if value is data and not name.startswith("_"):
                    return name
    finally:
        del frame
    return "data"


def _call_argument(frame, arg, keyword):
    """Source text of argument ``arg`` (or ``keyword=``) of the call running in ``frame``."""
    import ast
    import linecache
    try:
        positions = list(frame.f_code.co_positions())[frame.f_lasti // 2]
        start, end, col, end_col = positions
        lines = [linecache.getline(frame.f_code.co_filename, k) for k in range(start, end + 1)]
        if None in positions or not all(lines):
            return None
        lines[-1] = lines[-1][:end_col]
        lines[0] = lines[0][col:]
        call = ast.parse("\n".join(ln.rstrip("\n") for ln in lines).strip(), mode="eval").body
    except (ValueError, SyntaxError, IndexError, AttributeError, TypeError):
        return None
    if not isinstance(call, ast.Call):
        return None
    for kw in call.keywords:
        if kw.arg == keyword:
            return ast.unparse(kw.value)
    if len(call.args) > arg:
        return ast.unparse(call.args[arg])
    return None
