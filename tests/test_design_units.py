"""The design stage and predict(): behaviour that can be stated without R.

Each test states a property of R's and lme4's semantics (makepredictcall,
allow.new.levels, na.pass, offsets, prior weights) as an identity between two
lmmlite computations, so none needs R or stored numbers.
"""

import numpy as np
import pandas as pd
import pytest

import lmmlite as L
from lmmlite import load

SLOPES = "Reaction ~ Days + (Days || Subject)"


@pytest.fixture(scope="module")
def sleep():
    return load("sleepstudy")


@pytest.fixture(scope="module")
def slopes(sleep):
    return L.lmer(SLOPES, sleep)


def _set(nd, col, values):
    """Column ``col`` of nd set to ``values``, a categorical column keeping (and extending) its levels."""
    if isinstance(nd[col].dtype, pd.CategoricalDtype):
        cats = list(nd[col].cat.categories)
        cats += [v for v in values if pd.notna(v) and v not in cats]
        nd[col] = pd.Categorical(values, categories=cats)
    else:
        nd[col] = values
    return nd


def _rows(df, idx, **changes):
    """Rows ``idx`` of df (new index 100, 101, ...) with columns changed."""
    nd = df.iloc[idx].copy()
    nd.index = range(100, 100 + len(nd))
    for col, values in changes.items():
        _set(nd, col, list(values))
    return nd


def _new_subject(sleep):
    return sleep["Subject"].cat.categories.dtype.type(999)


# ------------------------------------------------------------------ new levels


def test_unknown_level_raises_naming_it(sleep, slopes):
    nd = _rows(sleep, [0, 15], Subject=[sleep["Subject"].iloc[0], _new_subject(sleep)])
    with pytest.raises(L.LmmError, match="999"):
        slopes.predict(newdata=nd)


def test_na_group_raises_without_allow_new_levels(sleep, slopes):
    nd = _rows(sleep, [0, 15], Subject=[sleep["Subject"].iloc[0], np.nan])
    with pytest.raises(L.LmmError):
        slopes.predict(newdata=nd)


@pytest.mark.parametrize("group", ["new", "na"])
def test_allow_new_levels_gives_fixed_part_for_new_group(sleep, slopes, group):
    value = _new_subject(sleep) if group == "new" else np.nan
    nd = _rows(sleep, [3, 14], Subject=[sleep["Subject"].iloc[3], value])
    got = slopes.predict(newdata=nd, allow_new_levels=True)
    b = L.fixef(slopes)
    assert got.loc[101] == pytest.approx(b["(Intercept)"] + b["Days"] * nd.loc[101, "Days"], rel=1e-12)
    # the known subject keeps its random effects
    assert got.loc[100] == pytest.approx(slopes.predict(newdata=nd.loc[[100]]).iloc[0], rel=1e-12)
    assert got.loc[100] != pytest.approx(slopes.predict(newdata=nd.loc[[100]], re_form="~0").iloc[0])


def test_re_form_na_never_checks_levels(sleep, slopes):
    nd = _rows(sleep, [3], Subject=[_new_subject(sleep)])
    b = L.fixef(slopes)
    got = slopes.predict(newdata=nd, re_form="NA")
    assert got.iloc[0] == pytest.approx(b["(Intercept)"] + b["Days"] * nd["Days"].iloc[0], rel=1e-12)


def test_new_inner_level_in_known_outer_keeps_outer_effect():
    """(1 | region/clinic): a new clinic of a known region gets the region's effect only."""
    d = load("clinics_nested")
    fit = L.lmer("y ~ x + (1 | region/clinic)", d)
    known = d.iloc[[0]].copy()
    new = _set(known.copy(), "clinic", [99])
    got = fit.predict(newdata=new, allow_new_levels=True).iloc[0]
    region_only = fit.predict(newdata=known, re_form="~(1 | region)").iloc[0]
    fixed = fit.predict(newdata=known, re_form="~0").iloc[0]
    assert got == pytest.approx(region_only, rel=1e-12)
    assert got != pytest.approx(fixed, rel=1e-6)


def test_crossed_terms_contribute_independently():
    """(1 | clinic) + (1 | doctor): a new doctor with a known clinic keeps the clinic effect."""
    d = load("clinics_crossed")
    fit = L.lmer("y ~ x + (1 | clinic) + (1 | doctor)", d)
    known = d.iloc[[0]].copy()
    new = _set(known.copy(), "doctor", [999])
    got = fit.predict(newdata=new, allow_new_levels=True).iloc[0]
    assert got == pytest.approx(fit.predict(newdata=known, re_form="~(1 | clinic)").iloc[0], rel=1e-12)


# ------------------------------------------------------------------ NA, training data, re_form


def test_nan_predictor_gives_nan_only_there(sleep, slopes):
    nd = _rows(sleep, [0, 1, 2], Days=[0.0, np.nan, 2.0])
    got = slopes.predict(newdata=nd)
    assert list(got.index) == [100, 101, 102]
    assert np.isnan(got.loc[101])
    assert np.isfinite(got.loc[[100, 102]]).all()


@pytest.mark.parametrize("formula", [
    SLOPES,
    "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)",
    "Reaction ~ log(Days + 1) + (log(Days + 1) | Subject)",
    "Reaction ~ poly(Days, 2) + (1 | Subject)",
    "Reaction ~ Days + I(Days^2) + (1 | Subject)",
])
def test_predict_on_training_data_equals_fitted(sleep, formula):
    fit = L.lmer(formula, sleep)
    got = fit.predict(newdata=sleep)
    fitted = fit.fitted() if callable(fit.fitted) else fit.fitted
    np.testing.assert_allclose(got.to_numpy(dtype=float), np.asarray(fitted, dtype=float),
                               rtol=1e-10)
    np.testing.assert_allclose(fit.predict().to_numpy(dtype=float), np.asarray(fitted, dtype=float),
                               rtol=1e-10)


def test_re_form_zero_is_x_times_fixef(sleep):
    fit = L.lmer("Reaction ~ poly(Days, 2) + (Days | Subject)", sleep)
    X = L.model_matrix("Reaction ~ poly(Days, 2)", sleep)
    b = L.fixef(fit)
    assert list(X.columns) == list(b.index)
    np.testing.assert_allclose(fit.predict(re_form="~0").to_numpy(dtype=float),
                               X.to_numpy(dtype=float) @ b.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(fit.predict(newdata=sleep, re_form="NA").to_numpy(dtype=float),
                               X.to_numpy(dtype=float) @ b.to_numpy(), rtol=1e-10)


def test_partial_re_form_adds_only_that_term(sleep):
    """(1 | Subject) + (0 + Days | Subject): the parts add up to the full prediction."""
    fit = L.lmer("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleep)
    full = fit.predict(newdata=sleep)
    fixed = fit.predict(newdata=sleep, re_form="~0")
    icpt = fit.predict(newdata=sleep, re_form="~(1 | Subject)")
    slope = fit.predict(newdata=sleep, re_form="~(0 + Days | Subject)")
    np.testing.assert_allclose((icpt + slope - fixed).to_numpy(), full.to_numpy(), rtol=1e-10)
    # at Days = 0 the slope term contributes nothing
    day0 = (sleep["Days"] == 0).to_numpy()
    np.testing.assert_allclose(slope[day0].to_numpy(), fixed[day0].to_numpy(), rtol=1e-12)


# ------------------------------------------------------------------ stateful transforms


@pytest.mark.parametrize("formula", [
    "Reaction ~ scale(Days) + (1 | Subject)",
    "Reaction ~ scale(Days) + (scale(Days) | Subject)",
    "Reaction ~ poly(Days, 2) + (0 + poly(Days, 2) | Subject)",
    "Reaction ~ Days + (0 + factor(Dgrp) | Subject)",
])
def test_transforms_use_training_state_on_one_row(sleep, formula):
    """scale()/poly()/factor() on new data use the training centre, coefficients and levels."""
    sleep = sleep.assign(Dgrp=sleep["Days"] // 4)    # factor(Dgrp): 3 levels, one in a single row
    fit = L.lmer(formula, sleep)
    fitted = np.asarray(fit.fitted() if callable(fit.fitted) else fit.fitted, dtype=float)
    for i in (0, 7, len(sleep) - 1):
        one = sleep.iloc[[i]]
        assert fit.predict(newdata=one).iloc[0] == pytest.approx(fitted[i], rel=1e-10)


@pytest.mark.parametrize("formula", ["y ~ scale(x) + I(x^2)", "y ~ poly(x, 2)",
                                     "y ~ poly(x, 3, raw = TRUE)"])
def test_lm_transforms_on_new_row_use_training_state(formula):
    d = pd.DataFrame({"x": np.arange(10.0), "y": np.sqrt(np.arange(10.0)) + np.cos(np.arange(10.0))})
    fit = L.lm(formula, d)
    fitted = np.asarray(fit.fitted() if callable(fit.fitted) else fit.fitted, dtype=float)
    assert fit.predict(newdata=d.iloc[[4]]).iloc[0] == pytest.approx(fitted[4], rel=1e-10)


# ------------------------------------------------------------------ formula errors


@pytest.mark.parametrize("formula", [
    "Reaction ~ ns(Days, 3) + (1 | Subject)",
    "Reaction ~ Days %o% Days + (1 | Subject)",
    "Reaction ~ Days + (ns(Days, 3) | Subject)",
])
def test_unsupported_construct_raises_formula_error(sleep, formula):
    with pytest.raises(L.FormulaError):
        L.lmer(formula, sleep)


def test_unknown_contrast_raises(sleep):
    with pytest.raises(L.LmmError, match="contr.wrong"):
        L.lmer("Reaction ~ C(Subject, contr.wrong) + (1 | Days)", sleep)


@pytest.mark.parametrize("formula", ["~ ns(Days, 3)", "~ Days + mean(Days)"])
def test_model_matrix_unsupported_call(sleep, formula):
    with pytest.raises(L.FormulaError):
        L.model_matrix(formula, sleep)


# ------------------------------------------------------------------ contrasts


def test_ordered_factor_gets_orthonormal_poly_contrasts():
    d = pd.DataFrame({"f": pd.Categorical(list("abcabcabc"), categories=list("abc"), ordered=True)})
    X = L.model_matrix("~ f", d)
    assert list(X.columns) == ["(Intercept)", "f.L", "f.Q"]
    lin = X.loc[[0, 1, 2], "f.L"].to_numpy()
    np.testing.assert_allclose(lin, [-1 / np.sqrt(2), 0, 1 / np.sqrt(2)], atol=1e-15)
    quad = X.loc[[0, 1, 2], "f.Q"].to_numpy()
    np.testing.assert_allclose(quad, np.array([1, -2, 1]) / np.sqrt(6), atol=1e-15)


def test_unordered_factor_gets_treatment_and_sum_on_request():
    d = pd.DataFrame({"f": pd.Categorical(list("abcabc"), categories=list("abc"))})
    assert list(L.model_matrix("~ f", d).columns) == ["(Intercept)", "fb", "fc"]
    s = L.model_matrix("~ f", d, contrasts={"f": "contr.sum"})
    assert list(s.columns) == ["(Intercept)", "f1", "f2"]
    np.testing.assert_array_equal(s.loc[[0, 1, 2], ["f1", "f2"]].to_numpy(), [[1, 0], [0, 1], [-1, -1]])


# ------------------------------------------------------------------ weights and offsets


def test_constant_weights_rescale_sigma_only(sleep):
    """Var(e_i) = σ²/w_i: w = 4 everywhere is σ = 2σ₁ with the same likelihood (−Σ log w counted)."""
    f = "Reaction ~ Days + (Days | Subject)"
    plain = L.lmer(f, sleep)
    weighted = L.lmer(f, sleep, weights=np.full(len(sleep), 4.0))
    np.testing.assert_allclose(L.fixef(weighted), L.fixef(plain), rtol=1e-6)
    assert weighted.sigma == pytest.approx(2 * plain.sigma, rel=1e-6)
    assert weighted.reml_criterion == pytest.approx(plain.reml_criterion, rel=1e-8)


def test_weights_column_name_equals_array(sleep):
    d = sleep.assign(w=1 + sleep["Days"] / 9)
    f = "Reaction ~ Days + (1 | Subject)"
    by_name = L.lmer(f, d, weights="w")
    by_array = L.lmer(f, d, weights=d["w"].to_numpy())
    assert by_name.reml_criterion == pytest.approx(by_array.reml_criterion, rel=1e-12)
    assert by_name.reml_criterion != pytest.approx(L.lmer(f, d).reml_criterion, rel=1e-6)


def test_lmer_offset_is_response_shift_and_predict_drops_the_argument(sleep):
    """offset= fits y - o; lme4's predict(newdata) drops offset= but keeps offset() terms."""
    d = sleep.assign(o=3 * (sleep["Days"] % 3), yo=sleep["Reaction"] - 3 * (sleep["Days"] % 3))
    by_arg = L.lmer("Reaction ~ Days + (1 | Subject)", d, offset="o")
    by_term = L.lmer("Reaction ~ Days + offset(o) + (1 | Subject)", d)
    shifted = L.lmer("yo ~ Days + (1 | Subject)", d)
    for fit in (by_arg, by_term):
        np.testing.assert_allclose(L.fixef(fit), L.fixef(shifted), rtol=1e-6)
        assert fit.reml_criterion == pytest.approx(shifted.reml_criterion, rel=1e-8)
    nd = d.iloc[:6]
    base = shifted.predict(newdata=nd).to_numpy()
    np.testing.assert_allclose(by_arg.predict(newdata=nd).to_numpy(), base, rtol=1e-6)
    np.testing.assert_allclose(by_term.predict(newdata=nd).to_numpy(), base + nd["o"].to_numpy(),
                               rtol=1e-6)


def test_lm_offset_and_weights():
    rng = np.random.default_rng(10)
    d = pd.DataFrame({"x": rng.normal(size=30), "o": rng.normal(size=30)})
    d["y"] = 1 + 2 * d["x"] + d["o"] + rng.normal(size=30)
    d["yo"] = d["y"] - d["o"]
    by_arg = L.lm("y ~ x", d, offset="o")
    by_term = L.lm("y ~ x + offset(o)", d)
    shifted = L.lm("yo ~ x", d)
    for fit in (by_arg, by_term):
        np.testing.assert_allclose(L.coef(fit), L.coef(shifted), rtol=1e-12)
        # predict.lm keeps both kinds of offset on new data
        np.testing.assert_allclose(fit.predict(newdata=d.iloc[:5]).to_numpy(),
                                   shifted.predict(newdata=d.iloc[:5]).to_numpy() + d["o"].iloc[:5],
                                   rtol=1e-12)
    # integer weights on the coefficients = repeated rows
    w = np.where(np.arange(30) < 5, 2.0, 1.0)
    rep = pd.concat([d, d.iloc[:5]], ignore_index=True)
    np.testing.assert_allclose(L.coef(L.lm("y ~ x", d, weights=w)), L.coef(L.lm("y ~ x", rep)),
                               rtol=1e-12)


@pytest.mark.parametrize("solver", ["dense", "blocked", "pairs"])
def test_lmer_solver_keyword_gives_the_same_fit(solver):
    """lmer(solver=) selects the factorization strategy; the optimum does not depend on it."""
    sleep = L.load("sleepstudy")
    auto = L.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    fit = L.lmer("Reaction ~ Days + (Days | Subject)", sleep, solver=solver)
    assert fit.model.solver == solver
    assert fit.reml_criterion == pytest.approx(auto.reml_criterion, rel=1e-12)
    np.testing.assert_allclose(fit.theta, auto.theta, rtol=1e-7)
