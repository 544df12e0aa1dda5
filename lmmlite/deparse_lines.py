"""R's ``deparse()`` of a long formula into lines, and ``cat(..., fill = TRUE)`` of them.

lme4's summaries print ``cat("Formula:", deparse(formula), fill = TRUE)``. R's
deparse (src/main/deparse.c) breaks a line, with ``width.cutoff = 60``, after the
operator of a spaced binary operator (``~ + - * | ||`` ...: ``linebreak()`` after
writing ``" op "``) and after the ``", "`` between call arguments, when the line is
already longer than the cutoff; continuation lines are indented by 4 spaces per
level. ``cat`` with ``fill`` writes the separator before it decides that the next
item does not fit, so a broken line keeps its trailing spaces.
"""

from .formula import BinOp, Call, Name, Num, Paren, Str, Unary, deparse_node, parse_expression
from .formula import _SPACED

CUTOFF = 60


class _Writer:
    def __init__(self, cutoff):
        self.cutoff, self.lines, self.buf, self.indent = cutoff, [], "", 0

    def put(self, text):
        self.buf += text

    def writeline(self):
        self.lines.append(self.buf)
        self.buf = "    " * min(self.indent, 4) + "  " * max(self.indent - 4, 0)

    def linebreak(self, state):
        if len(self.buf) > self.cutoff:
            if not state[0]:
                state[0] = True
                self.indent += 1
            self.writeline()

    def node(self, node):
        if isinstance(node, (Name, Num, Str)):
            self.put(deparse_node(node))
        elif isinstance(node, Paren):
            self.put("(")
            self.node(node.inner)
            self.put(")")
        elif isinstance(node, Unary):
            self.put(node.op)
            self.node(node.operand)
        elif isinstance(node, Call):
            self.put(node.func + "(")
            state = [False]
            items = [(None, a) for a in node.args] + list(node.kwargs)
            for i, (k, v) in enumerate(items):
                if k is not None:
                    self.put(f"{k} = ")
                self.node(v)
                if i < len(items) - 1:
                    self.put(", ")
                    self.linebreak(state)
            if state[0]:
                self.indent -= 1
            self.put(")")
        elif isinstance(node, BinOp):
            self.node(node.left)
            if node.op in _SPACED or node.op.startswith("%"):
                self.put(f" {node.op} ")
                state = [False]
                self.linebreak(state)
                self.node(node.right)
                if state[0]:
                    self.indent -= 1
            else:
                self.put(node.op)
                self.node(node.right)
        else:
            raise TypeError(node)


def deparse_lines(text, cutoff=CUTOFF):
    """R's ``deparse(formula)``: a list of lines."""
    w = _Writer(cutoff)
    w.node(parse_expression(text))
    w.lines.append(w.buf)
    return w.lines


def cat_fill(items, sep=" ", width=80, keep_sep=False):
    """R's ``cat(..., sep = sep, fill = TRUE)`` without the final newline: a line breaks
    before an item that would pass ``width``.  The separator before the break stays at
    the line's end with ``keep_sep`` (lme4's ``.prt.call`` formula lines); otherwise a
    space separator is stripped there."""
    lines, cur = [], ""
    for i, item in enumerate(items):
        piece = item if i == 0 else sep + item
        if cur and len(cur) + len(piece) > width:
            lines.append(cur + sep if keep_sep else cur.rstrip(" ") if sep == " " else cur)
            cur = item
        else:
            cur += piece
    lines.append(cur)
    return "\n".join(lines)


def formula_line(label, formula):
    """``cat(label, deparse(formula), fill = TRUE)`` as lme4's ``.prt.call``."""
    return cat_fill([label] + deparse_lines(formula), keep_sep=True)
