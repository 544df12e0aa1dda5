"""lmer(): the pipeline formula -> frame -> design -> deviance -> optimize -> results."""

import inspect
import sys
import time
import warnings

import numpy as np

from .deviance import Deviance
from .design import check_scale, drop_rank_deficient, model_matrix, random_blocks
from .errors import LmmError, SingularFitWarning
from .formula import parse_formula
from .frame import model_frame
from .optimize import blas_single_thread, optimize_theta
from .results import LmerFit


LARGE = 20_000  # observations from which lmer() reports its progress by default


def lmer(formula, data, REML=True, optimizer="auto", verbose=None):
    """Fit a linear mixed model with lme4's formula syntax.

    Parameters
    ----------
    formula : str
        e.g. ``"Reaction ~ Days + (1 + Days | Subject)"``. Random terms:
        ``(1|g)``, ``(x|g)``, ``(0 + x|g)``, ``(x||g)``, ``(1|a/b)``, ``(1|a:b)``.
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

    Returns
    -------
    LmerFit
    """
    with blas_single_thread():
        return _lmer(formula, data, REML, optimizer, verbose, _data_name(data))


def _lmer(formula, data, REML, optimizer, verbose, data_name):
    t0 = time.perf_counter()
    spec = parse_formula(formula)
    if not spec.random:
        raise LmmError(f"no random effects terms specified in formula '{spec.formula}'; "
                       "use lm() for a model without random effects")
    frame = model_frame(spec, data)
    X, xnames = model_matrix(spec.intercept, spec.terms, frame)
    X, xnames, dropped = drop_rank_deficient(X, xnames)
    check_scale(X)
    y = frame.columns[spec.response]
    if np.ptp(y) == 0:
        raise LmmError(f"the response '{spec.response}' is constant ({y[0]:g} in every row); "
                       "there is no variation to model")
    blocks = random_blocks(spec, frame)
    if X.shape[1] >= frame.nobs:
        raise LmmError(f"{X.shape[1]} fixed effects for {frame.nobs} observations: "
                       "the model has too many fixed effects for the data")
    if verbose is None:
        verbose = frame.nobs >= LARGE
    if verbose:
        print(f"lmer: {frame.nobs} observations, {X.shape[1]} fixed effects, random effects "
              + ", ".join(f"{b.group} ({b.nlevels} levels x {b.p})" for b in blocks)
              + "; optimizing ...", file=sys.stderr, flush=True)
    dev = Deviance(blocks, X, y, REML=REML)
    opt = optimize_theta(dev, dev.start, dev.lower, method=optimizer, below=dev.below)
    if opt.singular:
        warnings.warn(opt.messages[0], SingularFitWarning, stacklevel=2)
    fit = LmerFit(spec=spec, frame=frame, dev=dev, xnames=xnames, dropped=dropped,
                  opt=opt, data_name=data_name, data=data)
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
