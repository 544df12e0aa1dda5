"""Unit tests of the formula stage: expansion rules as R's terms() and lme4's findbars."""

import pytest

from lmmlite.errors import FormulaError
from lmmlite.formula import deparse, parse_formula


def test_fixed_expansion_and_order():
    spec = parse_formula("y ~ a*b + x")
    assert spec.response == "y" and spec.intercept
    # R orders by degree: a, b, x, then a:b
    assert spec.terms == [("a",), ("b",), ("x",), ("a", "b")]


def test_slash_and_power_and_removal():
    assert parse_formula("y ~ a/b").terms == [("a",), ("a", "b")]
    assert parse_formula("y ~ (a + b + c)^2").terms == [
        ("a",), ("b",), ("c",), ("a", "b"), ("a", "c"), ("b", "c")]
    assert parse_formula("y ~ a*b - a:b").terms == [("a",), ("b",)]
    assert not parse_formula("y ~ x - 1").intercept
    assert not parse_formula("y ~ 0 + x").intercept


def test_random_terms():
    spec = parse_formula("y ~ x + (1 + x | g) + (0 + z | h)")
    a, b = spec.random
    assert (a.intercept, a.terms, a.group) == (True, (("x",),), ("g",))
    assert (b.intercept, b.terms, b.group) == (False, (("z",),), ("h",))
    assert parse_formula("y ~ (x | g)").random[0].intercept  # implicit intercept


def test_nested_and_interaction_groups():
    spec = parse_formula("y ~ x + (1 | region/clinic)")
    assert [r.group_name for r in spec.random] == ["clinic:region", "region"]
    assert parse_formula("y ~ (1 | a:b)").random[0].group_name == "a:b"


def test_double_bar_splits_into_independent_terms():
    spec = parse_formula("y ~ Days + (Days || Subject)")
    assert [(r.intercept, r.terms) for r in spec.random] == [(True, ()), (False, (("Days",),))]


def test_deparse_like_r():
    assert deparse("Reaction~Days+(1+Days|Subject)") == "Reaction ~ Days + (1 + Days | Subject)"
    assert deparse("y~a:b+(1|r/c)") == "y ~ a:b + (1 | r/c)"


@pytest.mark.parametrize("bad,pos", [("y ~ x +", 7), ("y ~ x + (1 | )", 13),
                                     ("y ~ x $ z", 6), ("~ x", 0), ("y ~ 2", 4)])
def test_errors_point_at_the_problem(bad, pos):
    with pytest.raises(FormulaError) as err:
        parse_formula(bad)
    assert err.value.position == pos
    assert "^" in str(err.value)


def test_not_a_string():
    with pytest.raises(FormulaError, match="must be a string"):
        parse_formula(42)


def test_data_line_shows_the_callers_expression():
    """As R's deparse(substitute(data)): the expression written in the call."""
    from lmmlite import lm, lmer, load
    sleepstudy = load("sleepstudy")
    m = lmer("Reaction ~ Days + (1 | Subject)",
             data=sleepstudy)
    assert m.data_name == "sleepstudy"
    m = lmer("Reaction ~ Days + (1 | Subject)", sleepstudy[sleepstudy.Days >= 2])
    assert m.data_name == "sleepstudy[sleepstudy.Days >= 2]"
    assert lm("Reaction ~ Days", data=sleepstudy).data_name == "sleepstudy"
