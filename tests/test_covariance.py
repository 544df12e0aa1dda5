"""The covariance-parameter module: θ ↔ T ↔ Σ ↔ sd/cor and lme4's names (no R needed).

Expected values are written out by hand from the definition Σ = σ² T T'
(Bates et al. 2015, sec. 2.2), not taken from lmmlite's output.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from lmmlite.covariance import (CovarianceParameters, T_from_theta, group_names, sd_cor,
                                theta_lower, theta_start, tril_index, vech)


def test_theta_order_is_column_major_lower_triangle():
    assert tril_index(3) == ((0, 0), (1, 0), (2, 0), (1, 1), (2, 1), (2, 2))
    T = T_from_theta([1, 2, 3, 4, 5, 6], 3)
    np.testing.assert_array_equal(T, [[1, 0, 0], [2, 4, 0], [3, 5, 6]])
    np.testing.assert_array_equal(vech(T), [1, 2, 3, 4, 5, 6])


def test_bounds_and_start():
    np.testing.assert_array_equal(theta_lower(2), [0, -np.inf, 0])
    np.testing.assert_array_equal(theta_start(2), [1, 0, 1])
    cov = CovarianceParameters([2, 1])
    np.testing.assert_array_equal(cov.lower, [0, -np.inf, 0, 0])
    np.testing.assert_array_equal(cov.start, [1, 0, 1, 1])
    assert cov.below() == {0: [1], 2: [], 3: []}


def test_two_by_two_by_hand():
    """θ = (a, b, c): Σ/σ² = [[a², ab], [ab, b² + c²]]."""
    a, b, c, sigma = 1.5, -0.4, 0.7, 2.0
    cov = CovarianceParameters([2], ["Subject"], [["(Intercept)", "Days"]])
    S = cov.covariances([a, b, c], sigma)[0]
    np.testing.assert_allclose(S, sigma ** 2 * np.array([[a * a, a * b], [a * b, b * b + c * c]]))
    sd1, sd2 = sigma * a, sigma * np.hypot(b, c)
    cor = b / np.hypot(b, c)
    np.testing.assert_allclose(cov.sdcor([a, b, c], sigma), [sd1, cor, sd2, sigma])
    np.testing.assert_allclose(cov.gamma([a, b, c], sigma),
                               [sd1 ** 2, cor * sd1 * sd2, sd2 ** 2, sigma ** 2])
    vc = cov.varcorr([a, b, c], sigma)
    assert list(vc["grp"]) == ["Subject"] * 3 + ["Residual"]
    assert list(vc["var1"])[:3] == ["(Intercept)", "Days", "(Intercept)"]
    assert list(vc["var2"].isna())[:3] == [True, True, False] and vc["var2"].iloc[2] == "Days"
    np.testing.assert_allclose(vc["sdcor"], [sd1, sd2, cor, sigma])
    rows = cov.summary_rows([a, b, c], sigma)
    assert [r["name"] for r in rows] == ["(Intercept)", "Days", ""]
    assert rows[1]["corr"] == pytest.approx([cor])


def test_zero_sd_gives_nan_correlation_in_tables_and_zero_in_sdcor():
    cov = CovarianceParameters([2])
    theta = [0.0, 0.0, 1.0]                # the intercept's sd is 0
    assert np.isnan(cov.varcorr(theta, 1.0)["sdcor"].iloc[2])
    assert cov.sdcor(theta, 1.0)[1] == 0.0
    sd, cor = sd_cor(np.zeros((2, 2)))
    assert np.isnan(cor[1, 0]) and cor[0, 0] == 1.0


def test_lme4_names():
    assert group_names(["Subject", "Subject", "g"]) == ["Subject", "Subject.1", "g"]
    cov = CovarianceParameters([2, 1], ["Subject", "Subject"])
    assert cov.sdcor_names() == [".sig01", ".sig02", ".sig03", ".sig04", ".sigma"]
    assert cov.names() == ["Subject", "Subject.1"]
    lo, hi = cov.sdcor_bounds()
    np.testing.assert_array_equal(lo, [0, -1, 0, 0, 0])
    np.testing.assert_array_equal(hi, [np.inf, 1, np.inf, np.inf, np.inf])


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=3), st.integers(0, 2 ** 31),
       st.floats(0.1, 10))
def test_sdcor_round_trip(sizes, seed, sigma):
    """sd/cor -> θ inverts θ -> sd/cor for θ with a positive diagonal of every T_k."""
    cov = CovarianceParameters(sizes)
    rng = np.random.default_rng(seed)
    lower = cov.lower
    theta = np.where(np.isfinite(lower), rng.uniform(0.2, 2, cov.size), rng.normal(0, 1, cov.size))
    back = cov.theta_from_sdcor(cov.sdcor(theta, sigma))
    np.testing.assert_allclose(back, theta, rtol=1e-9, atol=1e-12)
    for T, S in zip(cov.factors(theta), cov.covariances(theta, sigma)):
        np.testing.assert_allclose(S, sigma ** 2 * T @ T.T)


def test_singular_term_round_trip():
    """A zero sd (boundary fit) maps back to a T with a zero column."""
    cov = CovarianceParameters([2])
    v = np.array([0.0, 0.0, 3.0, 1.5])        # sd1 = 0, cor = 0, sd2 = 3, σ = 1.5
    np.testing.assert_allclose(cov.theta_from_sdcor(v), [0.0, 0.0, 2.0])
