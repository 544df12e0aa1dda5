"""The model frame (frame.py): na.omit with counts, transforms evaluated before rows are
dropped (as R's model.frame), factor levels kept by lm and dropped by lmer; no R needed."""

import numpy as np
import pandas as pd
import pytest

import lmmlite as L
from lmmlite.formula import parse_formula
from lmmlite.frame import model_frame


def test_transforms_see_every_row_with_a_value():
    """scale(x) is evaluated before na.omit drops the row whose y is missing: R gives
    coef(lm(y ~ scale(x), d)) = 7.6, 6.717514 for these data (sd over all five x)."""
    d = pd.DataFrame({"x": [1, 2, 3, 4, 10.0], "y": [2, 4, 5, 8, np.nan]})
    fit = L.lm("y ~ scale(x)", d)
    np.testing.assert_allclose(fit.coefficients.to_numpy(), [7.6, 6.717514], atol=5e-7)
    assert fit.n_dropped == 1 and fit.nobs == 4


def test_missing_values_are_counted_in_every_used_column():
    d = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 6], "x": [1.0, np.nan, 3, 4, 5, 6],
                      "w": [1.0, 1, np.nan, 1, 1, 1], "o": [0.0, 0, 0, np.nan, 0, 0]})
    frame = model_frame(parse_formula("y ~ x"), d, weights="w", offset="o")
    assert (frame.nobs, frame.n_dropped) == (3, 3)
    assert list(frame.row_index) == [0, 4, 5]


def test_unused_levels_dropped_for_lmer_kept_for_lm():
    d = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 6, 7, 8],
                      "f": pd.Categorical(list("aabbaabb"), categories=list("abz")),
                      "g": list("uvuvuvuv")})
    spec = parse_formula("y ~ f + (1 | g)")
    assert list(model_frame(spec, d).columns["f"].values.categories) == ["a", "b"]
    kept = model_frame(spec, d, drop_unused_levels=False).columns["f"].values.categories
    assert list(kept) == ["a", "b", "z"]
    assert np.isnan(L.lm("y ~ f", d).coefficients["fz"])     # R's lm: NA coefficient


def test_bad_weights_are_named():
    d = pd.DataFrame({"y": [1.0, 2, 3, 4], "x": [1.0, 2, 3, 5], "w": [1.0, -1, 1, 1]})
    with pytest.raises(L.LmmError, match="negative weights"):
        L.lm("y ~ x", d, weights="w")
    with pytest.raises(L.LmmError, match="one value per row"):
        L.lm("y ~ x", d, weights=[1.0, 2.0])
    with pytest.raises(L.LmmError, match="'v' is not a column"):
        L.lm("y ~ x", d, offset="v")
