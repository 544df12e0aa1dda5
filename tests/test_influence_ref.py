"""hatvalues, influence and cooks_distance against lme4 1.1-31 (tests/golden/influence_ref.json).

The stored values were made by ``tests/r_influence_ref.py``: lme4's own
``hatvalues.merMod``, ``cooks.distance.merMod`` and ``influence.merMod`` (case and
group deletion, every deleted fit at the exact optimum) for a random-slope,
a crossed, a nested and a weighted model.  The data are the CSV files under
tests/golden/data/, so these tests need no R; ``test_live_against_lme4`` repeats
one model in R.  The closed-form tests at the end need neither.
"""

from functools import lru_cache
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import lmmlite as L
from design_data import load_golden
from lmmlite.deviance import Deviance
from lmmlite.influence import _lmer_hat

REF = json.loads((Path(__file__).resolve().parent / "golden" / "influence_ref.json").read_text())
MODELS = {m["id"]: m for m in REF["models"]}
TOL = 1e-6


def close(actual, expected, what, rtol=TOL):
    """Relative 1e-6; entries near 0 against the scale of the whole quantity."""
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray([np.nan if v is None else v for v in np.ravel(expected)],
                          dtype=float).reshape(actual.shape)
    scale = np.nanmax(np.abs(expected)) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


@lru_cache(maxsize=None)
def fit(key):
    m = MODELS[key]
    return L.lmer(m["formula"], load_golden(m["data"]), weights=m["weights"] or None)


@lru_cache(maxsize=None)
def deletion(key, part):
    groups = MODELS[key]["groups"] if part == "group" else None
    return L.influence(fit(key), groups=groups, progress=False)


@pytest.mark.parametrize("key", MODELS)
def test_fit_is_lme4s(key):
    m, f = MODELS[key], fit(key)
    close(f.theta, m["theta"], "theta")
    close(f.fixef, m["fixef"], "fixef")
    close(f.sigma, m["sigma"], "sigma")


@pytest.mark.parametrize("key", MODELS)
def test_hatvalues_and_cooks_distance_of_the_fit(key):
    m, f = MODELS[key], fit(key)
    close(L.hatvalues(f), m["hat"], "hatvalues")
    close(f.residuals(type="pearson"), m["pearson"], "pearson residuals")
    close(L.cooks_distance(f), m["cooks_fit"], "cooks.distance(fit)")


def check_influence(infl, ref, f, groups, labels=str):
    assert infl.groups == groups
    assert [labels(d) for d in infl.deleted] == ref["deleted"]
    close(infl.fixed_effects_deleted, ref["fixed"], "fixed effects with deletion")
    assert list(infl.var_cov_comps_deleted.columns) == ref["vc_names"]
    close(infl.var_cov_comps_deleted, ref["vc"], "variance components with deletion")
    assert list(ref["vcov"]) == ref["deleted"]         # R's named list: deleted -> matrix
    for d, v, r in zip(infl.deleted, infl.vcov_deleted, ref["vcov"].values()):
        close(v, r, f"vcov without {d}")
    assert list(infl.converged) == ref["converged"]
    close(L.cooks_distance(infl), ref["cooks"], "cooks.distance(influence)")
    if ref["dfbetas"] is not None:      # lme4 1.1-31's dfbetas fails for one fixed effect
        close(infl.dfbetas(), ref["dfbetas"], "dfbetas")
    np.testing.assert_array_equal(infl.fixed_effects, f.fixef)


@pytest.mark.parametrize("key", MODELS)
def test_group_deletion(key):
    m = MODELS[key]
    infl = deletion(key, "group")
    assert list(infl.var_cov_comps.index) == m["var_cov_names"]
    close(infl.var_cov_comps, m["var_cov_comps"], "var.cov.comps of the fit")
    check_influence(infl, m["group"], fit(key), m["groups"])


@pytest.mark.parametrize("key", MODELS)
def test_case_deletion(key):
    m = MODELS[key]
    infl = deletion(key, "case")
    # lme4 names cases by R's row names 1..n; the golden data have pandas' 0..n-1
    check_influence(infl, m["case"], fit(key), "case", labels=lambda d: str(int(d) + 1))


@pytest.mark.requires_r
def test_live_against_lme4():
    """The nested model's leverages and batch deletion, computed now in R."""
    import r_design_ref
    import r_influence_ref
    from r_design_ref import _py, to_r
    m = MODELS["pastes_nested"]
    ro = r_design_ref.r_session()
    ro.r(r_influence_ref._R_INFLUENCE)
    live = _py(ro.r[".iref_live"](m["formula"], to_r(load_golden(m["data"])), "", m["groups"]))
    f = fit("pastes_nested")
    close(L.hatvalues(f), live["hat"], "hatvalues")
    close(L.cooks_distance(f), live["cooks_fit"], "cooks.distance(fit)")
    check_influence(deletion("pastes_nested", "group"), live["group"], f, m["groups"])


# ---------------------------------------------------------------------- closed forms

def dense_hat(dev, theta):
    """diag of [ZΛ X] A^{-1} [ZΛ X]' with A = [ZΛ X]'[ZΛ X] + diag(I_q, 0), dense."""
    Ts = dev.split(theta)
    ZL = sp.hstack([b.Z() @ sp.kron(sp.identity(b.nlevels), T) for b, T in zip(dev.blocks, Ts)])
    M = np.hstack([ZL.toarray(), dev.X])
    q = ZL.shape[1]
    A = M.T @ M + np.diag(np.r_[np.ones(q), np.zeros(dev.p)])
    return np.einsum("ij,ji->i", M, np.linalg.solve(A, M.T))


@pytest.mark.parametrize("solver", ["dense", "blocked", "pairs"])
@pytest.mark.parametrize("key", ["sleep_slope", "penicillin_crossed", "pastes_nested"])
def test_hat_of_every_solver_equals_the_dense_formula(key, solver):
    f = fit(key)
    dev = Deviance(f.devfun.blocks, f.devfun.X, f.devfun.y, REML=True, solver=solver)
    for theta in (f.theta, 0.3 * f.theta + 0.1):
        np.testing.assert_allclose(_lmer_hat(dev, dev.factor(theta)), dense_hat(dev, theta),
                                   rtol=1e-9, atol=1e-12)


def test_hat_at_theta_zero_is_the_linear_models():
    """θ = 0 removes the random effects: the leverages of lm on the same X."""
    df = load_golden("sleep")
    f = L.lmer("Reaction ~ Days + (Days | Subject)", df).at_theta([0.0, 0.0, 0.0])
    ols = L.lm("Reaction ~ Days", df)
    np.testing.assert_allclose(L.hatvalues(f), L.hatvalues(ols), rtol=1e-10)
    X = np.column_stack([np.ones(len(df)), df["Days"]])
    np.testing.assert_allclose(L.hatvalues(ols), np.diag(X @ np.linalg.solve(X.T @ X, X.T)),
                               rtol=1e-10)


def test_weighted_lm_leverage_and_cooks_distance():
    """R's hatvalues.lm and cooks.distance.lm for a weighted fit, by the textbook formulas."""
    df = load_golden("sleep")
    f = L.lm("Reaction ~ Days", df, weights="w")
    X = np.column_stack([np.ones(len(df)), df["Days"]])
    w = df["w"].to_numpy()
    H = np.sqrt(w)[:, None] * X @ np.linalg.solve(X.T @ (w[:, None] * X), X.T) * np.sqrt(w)
    h = np.diag(H)
    np.testing.assert_allclose(L.hatvalues(f), h, rtol=1e-10)
    r = np.sqrt(w) * (df["Reaction"] - X @ f.fixef.to_numpy())
    s2 = (r @ r) / (len(df) - 2)
    np.testing.assert_allclose(L.cooks_distance(f), r ** 2 * h / (2 * s2 * (1 - h) ** 2),
                               rtol=1e-10)


def test_influence_bad_input():
    f = fit("pastes_nested")
    with pytest.raises(L.LmmError, match="not a column"):
        L.influence(f, groups="nope")
    with pytest.raises(L.LmmError, match="lmer fit"):
        L.influence(L.lm("strength ~ 1", load_golden("Pastes")))
    with pytest.raises(L.LmmError, match="lm or lmer fit"):
        L.hatvalues(pd.DataFrame())


def test_progress_bar_on_stderr(capsys):
    L.influence(fit("pastes_nested"), groups="batch", progress=True)
    err = capsys.readouterr().err
    assert err.count("|") >= 2 and "100%" in err


def test_weights_and_offset_given_as_arrays_are_deleted_with_their_rows():
    """weights=/offset= as arrays give the same deletions as the same values as columns."""
    df = load_golden("sleep")
    formula = "Reaction ~ Days + (1 | Subject)"
    by_name = L.lmer(formula, df, weights="w", offset="off")
    by_value = L.lmer(formula, df, weights=df["w"].to_numpy(), offset=df["off"].to_numpy())
    a = L.influence(by_name, groups="Subject", progress=False)
    b = L.influence(by_value, groups="Subject", progress=False)
    np.testing.assert_allclose(b.fixed_effects_deleted, a.fixed_effects_deleted, rtol=1e-9)
    np.testing.assert_allclose(b.var_cov_comps_deleted, a.var_cov_comps_deleted, rtol=1e-7)


def test_influence_prints_a_short_summary():
    text = repr(deletion("pastes_nested", "group"))
    assert text.startswith("<Influence: 10 refits, each without one level of batch;")
