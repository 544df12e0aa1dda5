"""Stage 1: parse an lme4 formula into a plain specification.

Three small steps, each one function:

1. :func:`tokenize` -- the text into tokens (names, numbers, strings, operators);
2. :class:`_Parser` -- tokens into an expression tree of :class:`Name`, :class:`Num`,
   :class:`Str`, :class:`Call`, :class:`BinOp`, :class:`Unary` and :class:`Paren`
   nodes, with R's operator precedence (R Language Definition, sec. 10.4.2), loosest first::

       ~        | ||        + -        * /        %in% %%        :        unary - +        ^

3. :func:`parse_formula` -- the tree read as a model formula (Wilkinson & Rogers 1973,
   as R's ``terms.formula``) into a :class:`ModelSpec`.

A *variable* of the formula is any expression that is not a formula operator:
``x``, ``log(x + 1)``, ``poly(x, 2)``, ``factor(f)``, ``C(f, contr.sum)``,
``I(x^2)``. Its label is R's ``deparse`` of the expression (spaces around
``+ - *``, none around ``/ ^ :``), which is also the column name R gives it.
Formula rules: ``a*b = a + b + a:b``; ``a/b = a + a:b`` (``a`` taken as one term
of all its variables); ``b %in% a = a:b``; ``(a+b)^2 = a + b + a:b``; ``-1``,
``+0`` drop the intercept; ``offset(x)`` is an offset, not a term. Terms are
ordered by degree, in order of appearance within a degree, and the variables of
a term in their order of first appearance, as R does. Random terms
``(e | g)`` keep ``e`` as a sub-formula; ``(e | a/b)`` expands to
``(e | b:a) + (e | a)`` and ``(e || g)`` to independent terms, one per column of
``e``, as lme4's ``findbars`` and ``expandDoubleVerts`` do.
"""

from dataclasses import dataclass, field
import re

from .errors import FormulaError


# the functions a formula may call (evaluated in transforms.py)
FUNCTIONS = ("abs", "ceiling", "cos", "exp", "expm1", "floor", "log", "log10", "log1p",
             "log2", "sin", "sqrt", "tan", "I", "scale", "poly", "factor", "as.factor",
             "ordered", "C", "offset", "cbind")


# -- the expression tree ---------------------------------------------------------------
@dataclass(frozen=True)
class Name:
    id: str
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Num:
    value: float
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Str:
    value: str
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple           # positional argument nodes
    kwargs: tuple         # (name, node) pairs, in the order written
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class BinOp:
    op: str
    left: object
    right: object
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Unary:
    op: str
    operand: object
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Paren:
    inner: object
    pos: int = field(default=0, compare=False)


# -- step 1: tokens -----------------------------------------------------------------------
_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?L?)"
    r"|(?P<name>(?:[A-Za-z]|\.(?![0-9]))[A-Za-z0-9_.]*)"
    r"|(?P<bq>`[^`]+`)|(?P<str>\"[^\"]*\"|'[^']*')"
    r"|(?P<op>%[^%\s]*%|\|\||==|!=|<=|>=|\*\*|[~+\-*/:^|(),=<>]))"
)


def tokenize(text):
    """A list of (kind, value, position); kind is num, name, str, op or None (the end)."""
    tokens, pos = [], 0
    while text[pos:].strip():
        m = _TOKEN.match(text, pos)
        if not m:
            start = pos + len(text[pos:]) - len(text[pos:].lstrip())
            raise FormulaError(f"unexpected character {text[start]!r} in formula", text, start)
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "bq":
            kind, value = "name", value[1:-1]
        elif kind == "str":
            value = value[1:-1]
        elif kind == "op" and value == "**":  # R reads ** as ^
            value = "^"
        tokens.append((kind, value, m.start(kind)))
        pos = m.end()
    tokens.append((None, None, len(text)))
    return tokens


# -- step 2: the expression tree ------------------------------------------------------------
# binary operators: precedence (higher binds tighter) and right-associativity
_BINARY = {"~": (1, False), "|": (2, False), "||": (2, False),
           "==": (3, False), "!=": (3, False), "<": (3, False), ">": (3, False),
           "<=": (3, False), ">=": (3, False),
           "+": (4, False), "-": (4, False), "*": (5, False), "/": (5, False),
           ":": (7, False), "^": (9, True)}
_SPECIAL = 6      # %in%, %% and other %op%
_UNARY = 8        # unary minus and plus bind looser than ':' and '^' (R: -a:b is -(a:b))


class _Parser:
    """Pratt parser of R expressions (the subset formulas use)."""

    def __init__(self, text):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self):
        return self.tokens[self.i]

    def take(self, value=None):
        tok = self.peek()
        if value is not None and tok[1] != value:
            what = "end of formula" if tok[0] is None else repr(tok[1])
            raise FormulaError(f"expected {value!r} but found {what}", self.text, tok[2])
        self.i += 1
        return tok

    def error(self, message, pos=None):
        raise FormulaError(message, self.text, self.peek()[2] if pos is None else pos)

    def _binding(self, tok):
        kind, value, _ = tok
        if kind != "op":
            return None
        if value.startswith("%"):
            return _SPECIAL, False
        return _BINARY.get(value)

    def expr(self, min_prec=0):
        left = self.prefix()
        while True:
            tok = self.peek()
            bind = self._binding(tok)
            if bind is None or bind[0] < min_prec:
                return left
            prec, right_assoc = bind
            self.take()
            if self.peek()[0] is None:
                self.error("nothing to the right of '~'" if tok[1] == "~"
                           else "the formula ends too early")
            if tok[1] in ("|", "||") and self.peek()[1] == ")":
                self.error(f"expected a grouping variable right of '{tok[1]}'")
            right = self.expr(prec if right_assoc else prec + 1)
            left = BinOp(tok[1], left, right, tok[2])

    def prefix(self):
        kind, value, pos = self.peek()
        if kind is None:
            self.error("the formula ends too early")
        if kind == "op" and value == "-":
            self.take()
            return Unary(value, self.expr(_UNARY), pos)
        if kind == "op" and value == "~":  # a one-sided formula, e.g. re_form="~0"
            self.take()
            return Unary("~", self.expr(2), pos)
        if kind == "op" and value == "(":
            self.take()
            if self.peek()[1] == ")":
                self.error("empty parentheses")
            inner = self.expr()
            self.take(")")
            return Paren(inner, pos)
        if kind == "num":
            self.take()
            return Num(float(value.rstrip("L")), pos)
        if kind == "str":
            self.take()
            return Str(value, pos)
        if kind == "name":
            self.take()
            if self.peek()[1] == "(":
                return self.call(value, pos)
            return Name(value, pos)
        self.error(f"unexpected {value!r}")

    def call(self, func, pos):
        depth = 0
        for _, value, at in self.tokens[self.i:]:
            depth += {"(": 1, ")": -1}.get(value, 0)
            if depth == 0:
                break
        else:
            raise FormulaError("unclosed parenthesis", self.text, self.peek()[2])
        self.take("(")
        args, kwargs = [], []
        while self.peek()[1] != ")":
            kind, value, _ = self.peek()
            if kind == "name" and self.tokens[self.i + 1][1] == "=":
                self.take()
                self.take("=")
                kwargs.append((value, self.expr(3)))
            else:
                if kwargs:
                    self.error("positional argument after a named one")
                args.append(self.expr(3))
            if self.peek()[1] == ",":
                self.take()
            elif self.peek()[1] != ")":
                self.take(")")
        self.take(")")
        return Call(func, tuple(args), tuple(kwargs), pos)


def parse_expression(text):
    """The expression tree of ``text`` (a formula or an R expression)."""
    parser = _Parser(text)
    node = parser.expr()
    kind, value, pos = parser.peek()
    if kind is not None:
        parser.error(f"unexpected {value!r}")
    return node


# -- R's deparse ------------------------------------------------------------------------------
_SPACED = {"~", "+", "-", "*", "|", "||", "==", "!=", "<", ">", "<=", ">="}


def format_number(x):
    """A number as R's deparse writes it: up to 15 significant digits, fixed or
    scientific notation, whichever is narrower (fixed when equal)."""
    if x == int(x) and abs(x) < 1e15:
        fixed = str(int(x))
    else:
        fixed = f"{x:.15g}"
        if "e" in fixed:
            fixed = f"{x:.15f}".rstrip("0").rstrip(".")
    mant, exp = f"{x:.14e}".split("e")
    mant = mant.rstrip("0").rstrip(".")
    sci = f"{mant}e{int(exp):+03d}"
    return fixed if len(fixed) <= len(sci) else sci


def deparse_node(node):
    """R's deparse of an expression tree, e.g. ``log(x + 1)``, ``I(x^2)``, ``poly(x, 2)``."""
    if isinstance(node, Name):
        return node.id if re.fullmatch(r"(?:[A-Za-z]|\.(?![0-9]))[A-Za-z0-9_.]*", node.id) \
            else f"`{node.id}`"
    if isinstance(node, Num):
        return format_number(node.value)
    if isinstance(node, Str):
        return f'"{node.value}"'
    if isinstance(node, Paren):
        return f"({deparse_node(node.inner)})"
    if isinstance(node, Unary):
        return f"{node.op}{deparse_node(node.operand)}"
    if isinstance(node, Call):
        parts = [deparse_node(a) for a in node.args]
        parts += [f"{k} = {deparse_node(v)}" for k, v in node.kwargs]
        return f"{node.func}({', '.join(parts)})"
    if isinstance(node, BinOp):
        sep = f" {node.op} " if node.op in _SPACED or node.op.startswith("%") else node.op
        return f"{deparse_node(node.left)}{sep}{deparse_node(node.right)}"
    raise TypeError(node)


def deparse(formula):
    """The formula as R's ``deparse`` prints it: spaces around ~ + - * | ||, none around : / ^."""
    return deparse_node(parse_expression(formula))


# -- step 3: the model formula ----------------------------------------------------------------
@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(expr | group)`` after expansion.

    ``intercept`` and ``terms`` describe ``expr`` like the fixed part does (each
    term a tuple of variable labels); ``group`` is a tuple of variable names whose
    interaction is the grouping factor (one name for ``(1|g)``, two for ``(1|a:b)``).
    ``text`` is the bar term as written, e.g. ``(Days || Subject)``.
    """

    intercept: bool
    terms: tuple
    group: tuple
    text: str

    @property
    def group_name(self):
        return ":".join(self.group)


@dataclass
class ModelSpec:
    """The parsed formula: response, fixed part, offsets and random terms.

    ``nodes`` maps every variable label (``"log(x + 1)"``) to its expression tree,
    so the frame stage can evaluate it.
    """

    formula: str
    response: str
    intercept: bool
    terms: list
    random: list = field(default_factory=list)
    offsets: list = field(default_factory=list)   # labels of offset(...) expressions
    nodes: dict = field(default_factory=dict)

    def variables(self):
        """All variable labels the model uses, response first."""
        names = [self.response] if self.response else []
        for term in self.terms:
            names += term
        names += self.offsets
        for rt in self.random:
            for term in rt.terms:
                names += term
            names += rt.group
        return list(dict.fromkeys(names))


class _Terms:
    """A set of terms with an intercept state: the value of a sub-formula.

    ``intercept`` is True (``1`` written or implied), False (``0`` or ``-1``) or None
    (not said, so the enclosing formula decides).
    """

    def __init__(self, terms=(), intercept=None):
        unique = {}
        for t in terms:  # a term is a set of variables: a:b and b:a are one term
            unique.setdefault(frozenset(t), tuple(dict.fromkeys(t)))
        self.terms = list(unique.values())
        self.intercept = intercept

    def __add__(self, other):
        said = other.intercept if other.intercept is not None else self.intercept
        return _Terms(self.terms + other.terms, said)

    def __sub__(self, other):
        drop = {frozenset(t) for t in other.terms}
        said = self.intercept
        if other.intercept is not None:   # '- 1' drops the intercept, '- 0' puts it back
            said = not other.intercept
        return _Terms([t for t in self.terms if frozenset(t) not in drop], said)

    def interact(self, other):
        out = [a + b for b in other.terms for a in self.terms]
        # R: a term times the intercept is the term itself
        if self.intercept:
            out = other.terms + out
        if other.intercept:
            out = self.terms + out
        return _Terms(out, None)

    def whole(self):
        """All variables as one term (the left side of a/b)."""
        return _Terms([tuple(dict.fromkeys(v for t in self.terms for v in t))])


_FORMULA_OPS = {"+", "-", "*", "/", ":", "^", "%in%"}


class _FormulaReader:
    """Reads an expression tree as a model formula (R's terms.formula)."""

    def __init__(self, text):
        self.text = text
        self.nodes = {}       # label -> tree
        self.order = []       # labels by first appearance
        self.random = []      # RandomTerm, in formula order
        self.offsets = []

    def error(self, message, node):
        raise FormulaError(message, self.text, node.pos)

    def variable(self, node):
        self.check_calls(node)
        label = deparse_node(node)
        self.nodes.setdefault(label, node)
        if label not in self.order:
            self.order.append(label)
        return label

    def check_calls(self, node):
        """Every function called must be one lmmlite evaluates."""
        if isinstance(node, Call):
            if node.func not in FUNCTIONS:
                self.error(f"function '{node.func}' is not supported in formulas; supported: "
                           + ", ".join(FUNCTIONS), node)
            for arg in node.args + tuple(v for _, v in node.kwargs):
                if not (node.func == "C" and isinstance(arg, Name)):
                    self.check_calls(arg)
        for child in ("left", "right", "operand", "inner"):
            if hasattr(node, child):
                self.check_calls(getattr(node, child))

    def read(self, node, top=True):
        """The terms of a (sub-)formula; bar terms are collected when ``top``."""
        if isinstance(node, Paren):
            if _is_bar(node.inner):
                if not top:
                    self.error("a random-effects term (... | g) cannot be part of an "
                               "interaction or a nested expression", node)
                self.random += self.bar(node)
                return _Terms()
            return self.read(node.inner, top=False)
        if isinstance(node, BinOp) and node.op in _FORMULA_OPS:
            if node.op == "^":
                return self.power(node)
            left = self.read(node.left, top and node.op in "+-")
            right = self.read(node.right, top and node.op == "+")
            if node.op == "+":
                return left + right
            if node.op == "-":
                return left - right
            if node.op == "*":
                return left + right + left.interact(right)
            if node.op == "/":
                return left + left.whole().interact(right)
            if node.op == "%in%":
                return left.interact(right.whole())
            return left.interact(right)
        if isinstance(node, Unary) and node.op in "+-":
            inner = self.read(node.operand, top=False)
            return _Terms() - inner if node.op == "-" else inner
        if isinstance(node, Num):
            if node.value in (0.0, 1.0):
                return _Terms(intercept=node.value == 1.0)
            self.error(f"a number ({format_number(node.value)}) can only be 0 or 1 in a "
                       "formula; for arithmetic use I(), e.g. I(2 * x)", node)
        if isinstance(node, (Name, Call)):
            if isinstance(node, Call) and node.func == "offset":
                if len(node.args) != 1 or node.kwargs:
                    self.error("offset() takes one argument", node)
                self.offsets.append(self.variable(node))
                return _Terms()
            return _Terms([(self.variable(node),)])
        if isinstance(node, BinOp) and node.op in ("|", "||"):
            self.error("a random-effects term must be in parentheses: (expr | group)", node)
        if isinstance(node, BinOp):
            self.error(f"'{node.op}' is not a formula operator; for arithmetic use I(), "
                       f"e.g. I(a {node.op} b)", node)
        self.error(f"cannot use {deparse_node(node)} in a formula", node)

    def power(self, node):
        base = self.read(node.left, top=False)
        exp = node.right
        if not isinstance(exp, Num) or not exp.value.is_integer() or exp.value < 1:
            self.error("'^' needs a positive whole number", exp)
        out = base
        for _ in range(int(exp.value) - 1):
            out = out + out.interact(base)
        out.intercept = None
        return out

    def bar(self, paren):
        node = paren.inner
        lhs = self.read(node.left, top=False)
        lhs.intercept = lhs.intercept is not False
        if not lhs.terms and not lhs.intercept:
            self.error("a random-effects term needs at least one column left of '|'",
                       node.left)
        text = deparse_node(paren)
        out = []
        for group in self.groups(node.right):
            if node.op == "||":  # independent terms, one per column (lme4's expandDoubleVerts)
                if lhs.intercept:
                    out.append(RandomTerm(True, (), group, text))
                out += [RandomTerm(False, (t,), group, text) for t in lhs.terms]
            else:
                out.append(RandomTerm(lhs.intercept, tuple(lhs.terms), group, text))
        return out

    def groups(self, node):
        """Grouping factors right of the bar: 'a', 'a:b', 'a/b' (= b:a + a), '(a)'."""
        if isinstance(node, Paren):
            return self.groups(node.inner)
        if isinstance(node, Name):
            return [(self.variable(node),)]
        if isinstance(node, BinOp) and node.op == ":":
            return [sum((g for g in (self.groups(node.left)[0], self.groups(node.right)[0])), ())]
        if isinstance(node, BinOp) and node.op == "/":
            outer = self.groups(node.left)        # for a/b/c: [b:a, a] on the left
            inner = self.groups(node.right)[0]
            # lme4 names the nested factor 'b:a' and lists it before 'a'
            return [tuple(reversed(inner)) + outer[0]] + outer
        found = f"unexpected '{node.op}' right of '|': " if isinstance(node, BinOp) else ""
        self.error(f"{found}expected a grouping variable right of '|', e.g. (1 | g) or "
                   "(1 | a/b)", node)


def _is_bar(node):
    return isinstance(node, BinOp) and node.op in ("|", "||")


def _ordered(terms, order):
    """R orders terms by degree, keeping the order of appearance within one
    degree, and the variables of a term by their first appearance in the formula."""
    terms = [tuple(sorted(t, key=order.index)) for t in terms]
    return sorted(terms, key=len)


def parse_formula(formula, one_sided=False):
    """Parse an lme4-style formula string into a :class:`ModelSpec`.

    ``one_sided=True`` also accepts ``~ x`` (no response), as ``model_matrix`` does.

    Raises
    ------
    FormulaError
        If the formula cannot be parsed; the message marks the position.
    """
    if not isinstance(formula, str):
        raise FormulaError(f"the formula must be a string such as 'y ~ x + (1 | g)', "
                           f"not {type(formula).__name__}")
    if "~" not in formula:
        raise FormulaError("a formula needs '~' between the response and the predictors",
                           formula, len(formula))
    tree = parse_expression(formula)
    reader = _FormulaReader(formula)
    if isinstance(tree, Unary) and tree.op == "~":
        if not one_sided:
            raise FormulaError("a formula starts with the response variable, e.g. 'y ~ x'",
                               formula, tree.pos)
        response, rhs = None, tree.operand
    elif isinstance(tree, BinOp) and tree.op == "~":
        if isinstance(tree.left, BinOp) and tree.left.op == "~":
            raise FormulaError("unexpected '~': a formula has one '~'", formula, tree.pos)
        if not isinstance(tree.left, (Name, Call, Paren)):
            reader.error("the response must be a variable or a call such as log(y)", tree.left)
        response, rhs = reader.variable(tree.left), tree.right
    else:
        raise FormulaError("a formula needs '~' between the response and the predictors",
                           formula, len(formula))
    fixed = reader.read(rhs)
    fixed.intercept = fixed.intercept is not False
    order = reader.order
    randoms = []
    for rt in reader.random:
        sub = list(dict.fromkeys(v for t in rt.terms for v in t))   # the LHS's own order
        randoms.append(RandomTerm(rt.intercept, tuple(_ordered(rt.terms, sub)), rt.group,
                                  rt.text))
    return ModelSpec(formula=deparse_node(tree), response=response, intercept=fixed.intercept,
                     terms=_ordered(fixed.terms, order), random=randoms,
                     offsets=reader.offsets, nodes=reader.nodes)
