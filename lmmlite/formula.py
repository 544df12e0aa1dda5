"""Stage 1: parse an lme4 formula into a plain specification.

``y ~ x * f + (1 + x | g) + (1 | a/b) + (x || h)`` becomes a :class:`ModelSpec`:
the response, the fixed part (an intercept flag and a list of *terms*, each
term a tuple of variable names, as R's ``terms()`` gives them) and a list of
:class:`RandomTerm` (the fixed-style expression left of the bar and the
grouping factor right of it).

The grammar is R's formula grammar (Wilkinson & Rogers 1973, as in R's
``terms.formula``), with precedence from loosest to tightest binding::

    |   ||          (only inside parentheses: a random-effects term)
    +   -
    *   /
    :
    ^

Expansion rules: ``a*b = a + b + a:b``; ``a/b = a + a:b`` (``a`` taken as one
term of all its variables); ``(a+b)^2 = a + b + a:b``; ``-1`` / ``+0`` drop the
intercept. Terms are then ordered by their degree (main effects before
two-way interactions, ...), keeping the order of appearance within a degree,
as R does. In a random term ``(e | a/b)`` expands to ``(e | b:a) + (e | a)``
and ``(e || g)`` to independent terms, one per column of ``e``, as lme4 does.
"""

from dataclasses import dataclass, field
import re

from .errors import FormulaError

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?)|(?P<name>[A-Za-z_.][A-Za-z0-9_.]*)"
    r"|(?P<bq>`[^`]+`)|(?P<op>\|\||[~+\-*/:^|()]))"
)


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(expr | group)`` after expansion.

    ``intercept`` and ``terms`` describe ``expr`` like the fixed part does;
    ``group`` is a tuple of variable names whose interaction is the grouping
    factor (one name for ``(1|g)``, two for ``(1|a:b)``).
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
    """The parsed formula: response, fixed part and random terms."""

    formula: str
    response: str
    intercept: bool
    terms: list
    random: list = field(default_factory=list)

    def variables(self):
        """All variable names the model uses, response first."""
        names = [self.response]
        for term in self.terms:
            names += term
        for rt in self.random:
            for term in rt.terms:
                names += term
            names += rt.group
        return list(dict.fromkeys(names))


class _Formula:
    """A set of terms with an intercept flag: the value of a sub-formula."""

    def __init__(self, terms=(), intercept=False):
        unique = {}
        for t in terms:  # a term is a set of variables: a:b and b:a are one term
            unique.setdefault(frozenset(t), t)
        self.terms = list(unique.values())
        self.intercept = intercept

    def __add__(self, other):
        return _Formula(self.terms + other.terms, self.intercept or other.intercept)

    def interact(self, other):
        out = [_merge(a, b) for b in other.terms for a in self.terms]
        # R: a term times the intercept is the term itself
        if self.intercept:
            out = other.terms + out
        if other.intercept:
            out = self.terms + out
        return _Formula(out, self.intercept and other.intercept)


def _merge(a, b):
    return tuple(dict.fromkeys(a + b))


class _Parser:
    def __init__(self, text):
        self.text = text
        self.tokens = []  # (kind, value, position)
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if not m:
                start = pos + len(text[pos:]) - len(text[pos:].lstrip())
                raise FormulaError(
                    f"unexpected character {text[start]!r} in formula", text, start
                )
            kind = m.lastgroup
            value = m.group(kind)
            start = m.start(kind)
            if kind == "bq":
                kind, value = "name", value[1:-1]
            elif kind == "name" and value in ("I", "log", "exp", "sqrt", "scale", "abs") \
                    and text[m.end():].lstrip().startswith("("):
                kind, value, end = self._call(value, m.end())
                self.tokens.append((kind, value, start))
                pos = end
                continue
            self.tokens.append((kind, value, start))
            pos = m.end()
        self.i = 0

    def _call(self, fname, pos):
        """Read ``f( ... )`` as one variable whose name is its text."""
        depth, j = 0, self.text.index("(", pos)
        for k in range(j, len(self.text)):
            depth += {"(": 1, ")": -1}.get(self.text[k], 0)
            if depth == 0:
                inner = self.text[j + 1:k].strip()
                return "name", f"{fname}({inner})", k + 1
        raise FormulaError("unclosed parenthesis", self.text, j)

    # -- helpers
    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else (None, None, len(self.text))

    def take(self, value=None):
        tok = self.peek()
        if value is not None and tok[1] != value:
            what = "end of formula" if tok[0] is None else repr(tok[1])
            raise FormulaError(f"expected {value!r} but found {what}", self.text, tok[2])
        self.i += 1
        return tok

    def error(self, message):
        raise FormulaError(message, self.text, self.peek()[2])

    # -- grammar
    def formula(self):
        kind, value, _ = self.peek()
        if kind != "name":
            self.error("a formula starts with the response variable, e.g. 'y ~ x'")
        response = self.take()[1]
        if self.peek()[1] != "~":
            self.error("expected '~' after the response")
        self.take("~")
        if self.peek()[0] is None:
            self.error("nothing to the right of '~'")
        fixed, random = self.sum(top=True)
        if self.peek()[0] is not None:
            self.error(f"unexpected {self.peek()[1]!r}")
        return response, fixed, random

    def sum(self, top=False):
        """sum := product (('+'|'-') product)*; collects bar terms at top."""
        random = []
        value = _Formula(intercept=True) if top else _Formula()
        sign = "+"
        if self.peek()[1] == "-":  # a leading '-', as in 'y ~ -1 + x'
            self.take()
            sign = "-"
        while True:
            part = self.product(random if top else None)
            if part is not None:
                value = _apply(value, part, sign)
            tok = self.peek()
            if tok[1] in ("+", "-"):
                sign = self.take()[1]
                continue
            return (value, random) if top else value

    def product(self, random):
        if self.peek()[1] == "(" and random is not None and self._is_bar():
            random.extend(self.bar())
            return None
        left = self.nest()
        while self.peek()[1] in ("*", "/"):
            op = self.take()[1]
            right = self.nest()
            if op == "*":
                left = left + right + left.interact(right)
            else:  # a/b = a + (all of a):b
                whole = _Formula([tuple(dict.fromkeys(v for t in left.terms for v in t))])
                left = left + whole.interact(right)
        return left

    def nest(self):
        left = self.power()
        while self.peek()[1] == ":":
            self.take()
            left = left.interact(self.power())
        return left

    def power(self):
        base = self.atom()
        if self.peek()[1] == "^":
            self.take()
            kind, value, pos = self.take()
            if kind != "num" or not float(value).is_integer() or int(float(value)) < 1:
                raise FormulaError("'^' needs a positive whole number", self.text, pos)
            out = base
            for _ in range(int(float(value)) - 1):
                out = out + out.interact(base)
            out.intercept = False
            return out
        return base

    def atom(self):
        kind, value, pos = self.peek()
        if kind == "name":
            self.take()
            return _Formula([(value,)])
        if kind == "num":
            self.take()
            if value in ("0", "1"):
                f = _Formula(intercept=value == "1")
                f.zero = value == "0"
                return f
            raise FormulaError(f"a number ({value}) can only be 0 or 1 in a formula", self.text, pos)
        if value == "(":
            self.take()
            inner = self.sum()
            self.take(")")
            return inner
        if kind is None:
            self.error("the formula ends too early")
        self.error(f"unexpected {value!r}")

    def _is_bar(self):
        depth = 0
        for kind, value, _ in self.tokens[self.i:]:
            depth += {"(": 1, ")": -1}.get(value, 0)
            if depth == 0:
                return False
            if depth == 1 and value in ("|", "||"):
                return True
        return False

    def bar(self):
        start = self.take("(")[2]
        lhs = self.sum(top=True)[0]
        lhs_start = start + 1
        op = self.take()[1]
        groups = self.group_expr()
        end = self.take(")")[2]
        text = self.text[start:end + 1]
        if not lhs.terms and not lhs.intercept:
            raise FormulaError("a random-effects term needs at least one column left of '|'",
                               self.text, lhs_start)
        out = []
        for group in groups:
            if op == "||":  # independent terms, one per column (lme4's expandDoubleVerts)
                if lhs.intercept:
                    out.append(RandomTerm(True, (), group, text))
                out += [RandomTerm(False, (t,), group, text) for t in lhs.terms]
            else:
                out.append(RandomTerm(lhs.intercept, tuple(lhs.terms), group, text))
        return out

    def group_expr(self):
        """Grouping factors right of the bar: 'a', 'a:b', 'a/b' (= b:a + a)."""
        parts = [[self._group_name()]]
        while self.peek()[1] in (":", "/"):
            op = self.take()[1]
            name = self._group_name()
            if op == ":":
                parts[-1].append(name)
            else:
                parts.append(parts[-1] + [name])
        # lme4 names the nested factor 'b:a' and lists it before 'a'
        return [tuple(reversed(p)) if len(p) > 1 and i > 0 else tuple(p)
                for i, p in reversed(list(enumerate(parts)))]

    def _group_name(self):
        kind, value, pos = self.take()
        if kind != "name":
            raise FormulaError("expected a grouping variable right of '|'", self.text, pos)
        return value


def _apply(value, part, sign):
    if sign == "+":
        out = value + part
        if getattr(part, "zero", False):
            out.intercept = False
        return out
    drop = {frozenset(t) for t in part.terms}
    out = _Formula([t for t in value.terms if frozenset(t) not in drop], value.intercept)
    if part.intercept:
        out.intercept = False
    return out


def _ordered(terms, order):
    """R orders terms by degree, keeping the order of appearance within one
    degree, and the variables of a term by their first appearance in the formula."""
    terms = [tuple(sorted(t, key=order.index)) for t in terms]
    return sorted(terms, key=len)


def parse_formula(formula):
    """Parse an lme4-style formula string into a :class:`ModelSpec`.

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
    parser = _Parser(formula)
    response, fixed, random = parser.formula()
    order = list(dict.fromkeys(v for kind, v, _ in parser.tokens if kind == "name"))
    randoms = [RandomTerm(rt.intercept, tuple(_ordered(rt.terms, order)), rt.group, rt.text)
               for rt in random]
    return ModelSpec(formula=deparse(formula), response=response,
                     intercept=fixed.intercept, terms=_ordered(fixed.terms, order), random=randoms)


def deparse(formula):
    """The formula as R's ``deparse`` prints it: spaces around ~ + - * | ||, none around : / ^."""
    parser = _Parser(formula)
    out, prev = [], None
    for kind, value, _ in parser.tokens:
        if value in ("~", "+", "*", "|", "||") or (value == "-" and prev not in (None, "(", "~")):
            out.append(f" {value} ")
        elif value == "(" and prev is not None and prev[-1:].isalnum():
            out.append("(")
        else:
            out.append(value)
        prev = value
    return "".join(out)
