"""How a model was asked for: what R keeps as a fit's ``call``.

R prints ``Data: sleepstudy`` and ``Weights: w`` from ``deparse(substitute(...))``
of the arguments. Python has no such thing; :func:`caller_text` reads the
source of the calling expression (Python >= 3.11 records its position) and
falls back to a variable name bound to the value. :class:`Call` holds the
arguments a fit needs again later: prior weights and offset for refits to new
data and for ``predict.lm``, and their printed texts.
"""

import ast
from dataclasses import dataclass, field
import inspect
import linecache


@dataclass
class Call:
    """The arguments of a fit that are not in its Design."""

    data_name: str = "data"
    weights: object = None      # as given: a column name, an array or None
    offset: object = None
    texts: dict = field(default_factory=dict)   # "weights"/"offset" -> printed text


def _frame_at(depth):
    frame = inspect.currentframe()
    for _ in range(depth + 1):
        frame = frame.f_back if frame is not None else None
    return frame


def bound_name(frame, value):
    """A variable name of the frame's locals or globals bound to ``value`` (or None)."""
    if frame is None:
        return None
    for scope in (frame.f_locals, frame.f_globals):
        for name, bound in scope.items():
            if bound is value and not name.startswith("_"):
                return name
    return None


def _argument_source(frame, arg, keyword):
    """Source text of argument ``arg`` (or ``keyword=``) of the call running in ``frame``."""
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


def caller_text(value, depth=2, arg=1, keyword="data", default="data"):
    """How the caller ``depth`` frames up wrote an argument, as R's
    ``deparse(substitute(x))``: its source text, else a name bound to it."""
    frame = _frame_at(depth)
    try:
        if frame is None:
            return default
        return _argument_source(frame, arg, keyword) or bound_name(frame, value) or default
    finally:
        del frame


def make_call(data, weights=None, offset=None, depth=2):
    """The :class:`Call` of ``lm(formula, data, weights=, offset=)`` or ``lmer(...)``,
    read from the caller ``depth`` frames up."""
    texts = {}
    for keyword, value in (("weights", weights), ("offset", offset)):
        if value is not None:   # a column name prints as it is, as R's bare name
            texts[keyword] = value if isinstance(value, str) else \
                caller_text(value, depth + 1, arg=99, keyword=keyword, default=keyword)
    return Call(data_name=caller_text(data, depth + 1), weights=weights, offset=offset,
                texts=texts)
