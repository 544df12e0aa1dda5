"""Unit tests of the formula language's evaluation (transforms.py) and coding (design.py),
against closed forms and R's documented rules; no R needed."""

import numpy as np
import pandas as pd
import pytest

import lmmlite as L
from lmmlite.design import contrast_matrix, lme4_order
from lmmlite.formula import deparse, format_number, parse_formula
from lmmlite.transforms import level_label, poly_fit, poly_predict


def test_contrast_matrices_closed_forms():
    C, names = contrast_matrix("contr.poly", ["a", "b", "c"])
    np.testing.assert_allclose(C[:, 0], np.array([-1, 0, 1]) / np.sqrt(2), atol=1e-15)
    np.testing.assert_allclose(C[:, 1], np.array([1, -2, 1]) / np.sqrt(6), atol=1e-15)
    assert names == [".L", ".Q"]
    C, names = contrast_matrix("contr.poly", list("abcdef"))
    np.testing.assert_allclose(C.T @ C, np.eye(5), atol=1e-14)      # orthonormal
    np.testing.assert_allclose(C.sum(axis=0), 0, atol=1e-14)        # contrasts
    assert names == [".L", ".Q", ".C", "^4", "^5"]
    C, names = contrast_matrix("contr.helmert", list("abcd"))
    np.testing.assert_array_equal(C, [[-1, -1, -1], [1, -1, -1], [0, 2, -1], [0, 0, 3]])
    assert names == ["1", "2", "3"]
    C, names = contrast_matrix("contr.sum", list("abc"))
    np.testing.assert_array_equal(C, [[1, 0], [0, 1], [-1, -1]])
    C, names = contrast_matrix("contr.treatment", [1.0, 2.5, 3.0])
    assert names == ["2.5", "3"]


def test_poly_is_orthonormal_and_its_recurrence_reproduces_it():
    x = np.array([0.5, 1.0, 2.0, 3.5, 4.0, 7.0, 9.0])
    Z, coefs = poly_fit(x, 3)
    np.testing.assert_allclose(Z.T @ Z, np.eye(3), atol=1e-13)
    np.testing.assert_allclose(Z.sum(axis=0), 0, atol=1e-13)        # orthogonal to 1
    np.testing.assert_allclose(poly_predict(x, coefs), Z, atol=1e-13)
    # the columns span the same space as the raw powers
    V = np.vander(x, 4, increasing=True)
    resid = Z - V @ np.linalg.lstsq(V, Z, rcond=None)[0]
    np.testing.assert_allclose(resid, 0, atol=1e-12)


def test_deparse_follows_r():
    assert deparse("y~log(x+1)+I(x^2)+exp(x/5)+poly(x,2,raw=TRUE)") == \
        "y ~ log(x + 1) + I(x^2) + exp(x/5) + poly(x, 2, raw = TRUE)"
    assert deparse("y ~ sin(2*pi*t) + x %in% f") == "y ~ sin(2 * pi * t) + x %in% f"
    assert format_number(1e5) == "1e+05" and format_number(100) == "100"
    assert format_number(0.5) == "0.5" and format_number(1e-3) == "0.001"


def test_levels_print_as_r():
    assert [level_label(v) for v in (1.0, 2.5, True, "a")] == ["1", "2.5", "TRUE", "a"]


def test_lme4_term_order():
    assert lme4_order([18, 18]) == [0, 1]          # no term has more levels than the one before
    assert lme4_order([5, 5, 25]) == [2, 1, 0]     # rev(order(nl)): ties reversed
    assert lme4_order([30, 5, 10]) == [0, 2, 1]


def test_formula_reading():
    spec = parse_formula("y ~ x * f - 1 + offset(log(n)) + (0 + factor(d) | g)")
    assert not spec.intercept and spec.offsets == ["offset(log(n))"]
    assert spec.terms == [("x",), ("f",), ("x", "f")]
    assert spec.random[0].terms == (("factor(d)",),) and not spec.random[0].intercept
    assert parse_formula("y ~ b %in% a").terms == [("b", "a")]
    assert parse_formula("y ~ x - 0").intercept


DATA = pd.DataFrame({"y": [1.0, 2.0, 4.0, 3.0, 6.0, 5.0, 7.0, 9.0],
                     "x": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
                     "f": list("abcdabcd"), "g": list("uuvvuuvv")})


def test_coding_rule_without_intercept():
    """R's model.matrix: without an intercept the first factor is fully coded, the
    second by contrasts (tension * wool - 1 gives woolB, not woolA and woolB)."""
    mm = L.model_matrix("~ f * g - 1", DATA)
    assert list(mm.columns)[:5] == ["fa", "fb", "fc", "fd", "gv"]
    mm = L.model_matrix("~ x + f:g - 1", DATA)   # f:g has no margin: every cell
    assert list(mm.columns)[1:] == [f"f{a}:g{b}" for b in "uv" for a in "abcd"]
    assert mm.attrs["assign"] == [1] + [2] * 8


def test_scale_uses_training_centre_on_new_rows():
    fit = L.lm("y ~ scale(x)", DATA)
    one = fit.predict(DATA.iloc[[3]])
    assert one.iloc[0] == pytest.approx(fit.fitted().iloc[3], rel=1e-12)
    mm = L.model_matrix("~ scale(x)", DATA)
    x = DATA["x"]
    np.testing.assert_allclose(mm["scale(x)"], (x - x.mean()) / x.std(ddof=1))


def test_ordered_factor_gets_polynomial_contrasts():
    d = DATA.assign(o=pd.Categorical(list("lmhlmhlm"), categories=list("lmh"), ordered=True))
    assert list(L.model_matrix("~ o", d).columns) == ["(Intercept)", "o.L", "o.Q"]
    assert list(L.model_matrix("~ o", d, contrasts={"o": "contr.treatment"}).columns) == \
        ["(Intercept)", "om", "oh"]


def test_unknown_contrast_and_factor_errors():
    with pytest.raises(L.LmmError, match="unknown contrasts"):
        L.model_matrix("~ C(f, contr.foo)", DATA)
    with pytest.raises(L.LmmError, match="not a factor"):
        L.lm("y ~ x", DATA, contrasts={"x": "contr.sum"})
    with pytest.raises(L.LmmError, match="new level"):
        L.lm("y ~ f", DATA).predict(pd.DataFrame({"f": ["z"]}))
