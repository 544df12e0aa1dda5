"""glmer's profile and Wald intervals against lme4, and simulate()'s distribution.

Golden values: ``tests/golden/glmer_infer_ref.json`` (``tests/r_glmer_infer_ref.py``),
lme4's ``profile`` and ``confint`` of the tight fits of ``tests/r_glmer_ref.py``.
The reference profile is lme4's with its PIRLS at tolPwrss 1e-12 (lme4's stock
profile runs PIRLS at 1e-7 whatever the fit's control, which moves ζ by up to
~3e-4 and the intervals by up to ~2e-4 relative; see the script's docstring):

* ζ at the points where lme4 evaluated it: 1e-5 (no interpolation involved;
  observed below 3e-6);
* the interval ends: 1e-4 relative. lmmlite's are roots of ζ = ±z; lme4's come
  from a spline through points ~0.5 apart in ζ, whose error reaches 7.5e-5
  (contra_slope, .sig01: lme4 0.1463882, the root 0.1463773, where lme4's
  own ζ at its neighbouring points agrees with lmmlite's to 2e-7). Within
  1e-3 of lme4's stock profile;
* Wald intervals: as lme4's standard errors (tests/test_glmer_ref.py).

simulate(): R's random numbers are not numpy's, so the simulated responses are
checked against the distribution they should have, from a seeded large nsim
(so the verdict is the same on every machine): means and variances per row
within Monte Carlo error (a χ² statistic of the row means, and the mean ratio
of sample to model variances), marginally over new random effects (the
analytic Poisson-lognormal moments, Gauss-Hermite integrals for the logit)
and conditionally on the modes (re_form="~."); and the result's shape and
types against lme4's (stored).
"""

from functools import lru_cache
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import lmmlite as L
from lmmlite.confint import profile_of
from lmmlite.errors import LmmError
from lmmlite.plot import profile_zeta
from test_glmer_ref import data, fitted
from test_glmer_ref import MODELS as FITS

HERE = Path(__file__).resolve().parent
REF = json.loads((HERE / "golden" / "glmer_infer_ref.json").read_text())
PROFILED = list(REF["models"])


def floats(values):
    return np.array([np.nan if v in (None, "NA") else v for v in values], dtype=float)


@lru_cache(maxsize=None)
def profile_ci(key, level=0.95):
    return fitted(key).confint(level=level, quiet=True)


# ---------------------------------------------------------------------- profile
@pytest.mark.parametrize("key", PROFILED)
def test_profile_confint_as_lme4(key):
    ci, ref = profile_ci(key), REF["models"][key]
    assert list(ci.index) == ref["profile"]["rows"]
    assert list(ci.columns) == ["2.5 %", "97.5 %"]
    for col, side in ((0, "lower"), (1, "upper")):
        np.testing.assert_allclose(ci.iloc[:, col].to_numpy(), floats(ref["profile"][side]),
                                   rtol=1e-4, atol=1e-6, err_msg=side)
        # lme4's stock profile (PIRLS at tolPwrss 1e-7) is within 1e-3, except where it
        # found its profile non-monotonic (contra_slope's correlation: lower end -0.908
        # where the tight profile's ζ at -1 is -1.9573, short of -1.96: the bound)
        ok = [f"non-monotonic profile for {r}" not in ref["notes_stock"] for r in ci.index]
        np.testing.assert_allclose(ci.iloc[:, col].to_numpy()[ok],
                                   floats(ref["profile_stock"][side])[ok], rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("key", ["cbpp_logit", "counts_offset"])
def test_profile_level_and_parm(key):
    ref = REF["models"][key]["profile90"]
    fit = fitted(key)
    ci = fit.confint(level=0.9, parm="beta_", quiet=True)
    assert list(ci.columns) == ["5 %", "95 %"]
    beta = [r for r in ref["rows"] if not r.startswith(".sig")]
    assert list(ci.index) == beta == list(fit.fixef.index)
    keep = [ref["rows"].index(r) for r in beta]
    np.testing.assert_allclose(ci.to_numpy(), np.column_stack(
        [floats(ref["lower"])[keep], floats(ref["upper"])[keep]]), rtol=1e-5, atol=1e-7)
    one = fit.confint(parm=[".sig01"], level=0.9, quiet=True)
    assert list(one.index) == [".sig01"]
    np.testing.assert_allclose(one.to_numpy()[0], [ref["lower"][0], ref["upper"][0]], rtol=1e-5)
    assert list(fit.confint(parm="theta_", method="Wald").index) == [".sig01"]


@pytest.mark.parametrize("key", PROFILED)
def test_zeta_at_lme4s_points(key):
    """ζ where lme4 evaluated it, next to the ends of the 95% interval (|ζ| nearest 1.96),
    except where lme4 found its own profile non-monotonic (its optimizer failed there)."""
    ref = REF["models"][key]
    pr = profile_of(fitted(key))
    try:
        for i, name in enumerate(pr.names):
            if f"non-monotonic profile for {name}" in ref["notes"]:
                continue
            pts = ref["points"][name]
            x, z = np.array(pts["value"], dtype=float), np.array(pts["zeta"], dtype=float)
            for sgn in (-1, 1):
                side = np.flatnonzero(np.sign(z) == sgn)
                j = side[np.argmin(np.abs(np.abs(z[side]) - 1.96))]
                assert pr.zeta(i, x[j]) == pytest.approx(z[j], abs=1e-5), (name, x[j])
    finally:
        pr.finish()


@pytest.mark.parametrize("key", PROFILED)
def test_wald_confint_as_lme4(key):
    ci, ref = fitted(key).confint(method="Wald"), REF["models"][key]["wald"]
    assert list(ci.index) == ref["rows"]
    nvp = sum(r.startswith(".sig") for r in ref["rows"])
    assert ci.iloc[:nvp].isna().all().all()
    np.testing.assert_allclose(ci.to_numpy()[nvp:], np.column_stack(
        [floats(ref["lower"]), floats(ref["upper"])])[nvp:], rtol=1e-4)


def test_profile_reaches_the_estimate_and_is_monotone():
    """ζ = 0 at the estimate, increasing through it, and the interval contains the estimate."""
    fit = fitted("cbpp_logit")
    ci = profile_ci("cbpp_logit")
    est = np.concatenate([fit.theta, fit.fixef.to_numpy()])
    assert np.all((ci.iloc[:, 0] < est) & (est < ci.iloc[:, 1]))
    prof = profile_zeta(fit, parm="period2", npts=3)
    x, z = prof["period2"]
    assert np.all(np.diff(z) > 0) and z[np.argmin(np.abs(x - fit.fixef["period2"]))] == 0


def test_confint_errors():
    with pytest.raises(LmmError, match="boot"):
        fitted("cbpp_logit").confint(method="boot")
    with pytest.raises(LmmError, match="nAGQ"):
        fitted("cbpp_agq0").confint(quiet=True)
    with pytest.raises(LmmError, match="unknown parameter"):
        fitted("cbpp_logit").confint(parm=".sigma")


@pytest.mark.requires_r
def test_live_lme4_profile_cbpp():
    """lme4's tight profile of cbpp now, through rpy2: equal to the stored one."""
    import rpy2.robjects as ro
    import r_glmer_infer_ref as script
    from r_glmer_ref import DATA_DIR, R_DATA, R_FIT, MODELS
    ro.r(R_DATA)
    ro.r(f'.gref_dir <- "{DATA_DIR}"')
    ro.r(R_FIT)
    ro.r(script.R_PROFILE)
    d, formula, family, nagq, weights, offset = MODELS["cbpp_logit"]
    call = (f'.ginf_one("cbpp_logit", "{d}", "{formula}", "{family}", {nagq}L, '
            f'"{weights}", "{offset}", stock = FALSE)')
    live = json.loads(ro.r(f"jsonlite::toJSON({call}, digits = NA, auto_unbox = TRUE)")[0])
    stored = REF["models"]["cbpp_logit"]["profile"]
    for side in ("lower", "upper"):
        np.testing.assert_allclose(live["profile"][side], stored[side], rtol=1e-6)


# ---------------------------------------------------------------------- simulate
NSIM = 4000


def _sim_matrix(sim, fit):
    """The simulated responses as rows x nsim proportions (binomial) or counts."""
    if isinstance(sim.columns, pd.MultiIndex):
        names = sim.columns.get_level_values(0).unique()
        return np.column_stack([sim[nm].iloc[:, 0].to_numpy() / fit.model.wt for nm in names])
    if isinstance(sim.dtypes.iloc[0], pd.CategoricalDtype):
        return np.column_stack([(sim[c].cat.codes.to_numpy() == 1) * 1.0 for c in sim])
    return sim.to_numpy(dtype=float)


def _check_moments(Y, mean, cov, groups=None):
    """The row means of Y (rows x nsim) against ``mean`` with covariance ``cov`` / nsim
    (a χ² test at the 1e-4 level), and the rows' sample variances against diag(cov):
    their mean ratio within 5 standard errors, from each row's sample fourth moment
    (var s² ≈ (m4 - s⁴)/nsim), the rows of one of ``groups`` taken as fully correlated."""
    n, nsim = Y.shape
    d = Y.mean(axis=1) - mean
    stat = nsim * d @ np.linalg.solve(cov, d)
    assert stats.chi2.ppf(1e-4, n) < stat < stats.chi2.ppf(1 - 1e-4, n), stat
    v = np.diag(cov)
    s2 = Y.var(axis=1, ddof=1)
    m4 = ((Y - Y.mean(axis=1, keepdims=True)) ** 4).mean(axis=1)
    se = np.sqrt(np.maximum(m4 - s2 ** 2, 0) / nsim) / v
    groups = np.arange(n) if groups is None else groups
    se_mean = np.sqrt(np.sum(np.bincount(groups, weights=se) ** 2)) / n
    assert abs(np.mean(s2 / v) - 1) < 5 * se_mean, (np.mean(s2 / v), se_mean)


def _conditional_cov(fit):
    mu = fit.fitted().to_numpy()
    if fit.family.name == "poisson":
        return mu, np.diag(mu)
    return mu, np.diag(mu * (1 - mu) / fit.model.wt)


@pytest.mark.parametrize("key", ["cbpp_logit", "cbpp_prop_weights", "counts_offset",
                                 "contra_factor"])
def test_simulate_conditional_on_the_modes(key):
    """re_form="~.": responses given μ̂ (the fitted values, with the conditional modes)."""
    fit = fitted(key)
    Y = _sim_matrix(L.simulate(fit, nsim=NSIM, seed=15, re_form="~."), fit)
    mean, cov = _conditional_cov(fit)
    if key == "contra_factor":          # 1582 rows: every 8th, to keep it quick
        Y, mean, cov = Y[::8], mean[::8], cov[::8, ::8]
    _check_moments(Y, mean, cov)


def _marginal_poisson(fit):
    """Poisson-lognormal moments of a random-intercept model: with η the fixed part and
    s² the intercept variance, E y = exp(η + s²/2), var y = E y + (E y)² (e^{s²} - 1),
    cov(y_i, y_j) = E y_i E y_j (e^{s²} - 1) within a group."""
    s2 = fit.theta[0] ** 2
    eta = fit.predict(re_form="~0").to_numpy()
    m = np.exp(eta + s2 / 2)
    g = fit.blocks[0].codes
    same = g[:, None] == g[None, :]
    cov = np.where(same, np.outer(m, m) * np.expm1(s2), 0.0)
    return m, cov + np.diag(m)


def _marginal_logit(fit, nodes=60):
    """E and cov of the simulated proportions of a random-intercept logit model by
    Gauss-Hermite quadrature over b ~ N(0, s²): E p_i, and within a group
    cov = E[p_i p_j] - E p_i E p_j (+ E[p_i (1 - p_i)] / m_i on the diagonal)."""
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    eta = fit.predict(re_form="~0").to_numpy()
    P = 1 / (1 + np.exp(-(eta[:, None] + fit.theta[0] * z[None, :])))   # rows x nodes
    m = P @ w
    g = fit.blocks[0].codes
    same = g[:, None] == g[None, :]
    cov = np.where(same, (P * w) @ P.T - np.outer(m, m), 0.0)
    cov[np.diag_indices_from(cov)] += (P * (1 - P)) @ w / fit.model.wt
    return m, cov


@pytest.mark.parametrize("key,moments", [("cbpp_logit", _marginal_logit),
                                         ("counts_offset", _marginal_poisson)])
def test_simulate_new_random_effects(key, moments):
    """re_form=None (lme4's default): new random effects each time, marginal moments."""
    fit = fitted(key)
    Y = _sim_matrix(L.simulate(fit, nsim=NSIM, seed=16), fit)
    mean, cov = moments(fit)
    _check_moments(Y, mean, cov, groups=fit.blocks[0].codes)
    # the conditional moments do not describe these draws
    cmean, ccov = _conditional_cov(fit)
    d = Y.mean(axis=1) - cmean
    assert NSIM * d @ np.linalg.solve(ccov, d) > stats.chi2.ppf(1 - 1e-4, len(d))


def test_simulate_re_form_variants():
    fit = fitted("cbpp_logit")
    new = L.simulate(fit, nsim=3, seed=5)
    for same in ("~0", "NA", "~ 0"):
        pd.testing.assert_frame_equal(L.simulate(fit, nsim=3, seed=5, re_form=same), new)
    # one random term, named: the same as "~."
    pd.testing.assert_frame_equal(L.simulate(fit, nsim=3, seed=5, re_form="~(1 | herd)"),
                                  L.simulate(fit, nsim=3, seed=5, re_form="~."))
    assert not L.simulate(fit, nsim=3, seed=5, re_form="~.").equals(new)
    assert not L.simulate(fit, nsim=3, seed=6).equals(new)


@pytest.mark.parametrize("key", list(REF["simulate"]))
def test_simulate_shape_as_lme4(key):
    """The columns' form as lme4's simulate() returns it (stored from R)."""
    ref, fit = REF["simulate"][key], fitted(key)
    sim = L.simulate(fit, nsim=2, seed=1)
    assert len(sim) == ref["nrow"]
    if ref["class"] == "matrix":
        assert list(sim.columns.get_level_values(0).unique()) == ref["names"]
        col = sim[ref["names"][0]]
        assert list(col.shape) == ref["dim"] and list(col.columns) == ref["colnames"]
        assert ref["rowsum_is_weight"]
        np.testing.assert_array_equal(col.sum(axis=1).to_numpy(), fit.model.wt)
        assert all(pd.api.types.is_integer_dtype(t) for t in sim.dtypes)
        return
    assert list(sim.columns) == ref["names"]
    col = sim[ref["names"][0]]
    if ref["class"] == "factor":
        assert isinstance(col.dtype, pd.CategoricalDtype)
        assert list(col.cat.categories) == ref["levels"]
    elif ref["class"] == "integer":
        assert pd.api.types.is_integer_dtype(col.dtype)
    else:
        assert ref["class"] == "numeric" and col.dtype == np.float64
        assert ref["prop_times_weight_integer"]
        m = fit.model.wt
        np.testing.assert_allclose(col * m, np.round(col * m), atol=1e-9)
        assert np.all((col >= 0) & (col <= 1))


def test_simulate_weighted_cbind_uses_all_trials():
    """cbind with prior weights: lme4 draws out of weights x trials (and so does lmmlite)."""
    d = data("cbpp")
    fit = L.glmer(FITS["cbpp_logit"]["formula"], d, weights=np.full(len(d), 2.0))
    sim = L.simulate(fit, nsim=1, seed=3)["sim_1"]
    np.testing.assert_array_equal(sim.sum(axis=1).to_numpy(), 2 * d["size"].to_numpy())
    with pytest.raises(LmmError, match="non-integer"):
        L.simulate(L.glmer(FITS["cbpp_logit"]["formula"], d, weights=np.full(len(d), 0.5)))
