"""Stress: badly scaled covariates, near-collinear fixed effects, variance
components near zero and very large, large responses offsets, 100k rows.

What is required: no crash, no raw exception, no NaN in the results; where
the optimum is doubtful, an lme4-style warning (ConvergenceWarning,
SingularFitWarning); where theory gives the answer (rescaling a covariate),
the answer.  Timings are printed, never asserted (GUIDE.md: timings belong in
benchmarks/).
"""

import time
import warnings

import numpy as np
import pandas as pd
import pytest

import simdata
from lmmlite import ConvergenceWarning, LmmError, SingularFitWarning, lmer
from r_reference import r_status

OPTIMIZERS = ["auto", "lbfgsb"]


def fit_recording(formula, data, **kw):
    """(fit, list of warnings) -- every warning recorded, none shown."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fit = lmer(formula, data, **kw)
    return fit, rec


def crit(fit):
    return fit.reml_criterion if fit.REML else fit.deviance


def has(rec, category):
    return any(issubclass(w.category, category) for w in rec)


def assert_finite(fit):
    """Every reported number of a fit is finite (no NaN, no inf)."""
    assert np.isfinite(crit(fit)) and np.isfinite(fit.loglik)
    assert np.all(np.isfinite(fit.theta))
    assert np.isfinite(fit.sigma) and fit.sigma > 0
    assert np.all(np.isfinite(fit.fixef))
    assert np.all(np.isfinite(fit.vcov.to_numpy()))
    vc = fit.varcorr()
    var = vc.loc[vc["var2"].isna(), "vcov"]
    assert np.all(np.isfinite(var)) and np.all(var >= 0)
    assert np.all(np.isfinite(fit.fitted())) and np.all(np.isfinite(fit.residuals()))
    re = fit.ranef(condvar=True)
    for g, frame in re.items():
        assert np.all(np.isfinite(frame.to_numpy()))
        assert np.all(np.isfinite(re.condsd[g].to_numpy()))
    assert isinstance(str(fit.summary()), str)


def lme4_crit(formula, df, REML):
    """lme4's criterion at its own optimum, or None without R."""
    ok, _ = r_status()
    if not ok:
        return None
    from r_reference import lme4_fit
    return lme4_fit(formula, df, REML=REML)["crit"]


@pytest.fixture(scope="module")
def sleep():
    d = simdata.sleepstudy()
    d["Days"] = d["Days"].astype(float)
    return d


# ---------------------------------------------------------------- covariate scales

@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("REML", [True, False])
@pytest.mark.parametrize("scale", [1e-6, 1e6])
def test_covariate_scale_random_intercept(sleep, scale, REML, optimizer):
    """x -> s*x: slope / s, the rest unchanged; REML criterion + 2 log s
    (log|R_X|² gains log s²), ML deviance unchanged."""
    f = "Reaction ~ Days + (1 | Subject)"
    base, _ = fit_recording(f, sleep, REML=REML, optimizer=optimizer)
    fit, rec = fit_recording(f, sleep.assign(Days=sleep["Days"] * scale), REML=REML,
                             optimizer=optimizer)
    assert_finite(fit)
    assert not has(rec, ConvergenceWarning)
    expect = crit(base) + (2 * np.log(scale) if REML else 0.0)
    assert crit(fit) == pytest.approx(expect, abs=1e-6)
    assert fit.fixef["Days"] * scale == pytest.approx(base.fixef["Days"], rel=1e-8)
    assert fit.fixef["(Intercept)"] == pytest.approx(base.fixef["(Intercept)"], rel=1e-8)
    assert np.sqrt(fit.vcov.loc["Days", "Days"]) * scale == \
        pytest.approx(np.sqrt(base.vcov.loc["Days", "Days"]), rel=1e-6)
    # bobyqa stops where lme4 stops: variances agree to its tolerance
    np.testing.assert_allclose(fit.varcorr()["vcov"], base.varcorr()["vcov"], rtol=1e-5)


@pytest.mark.parametrize("scale, REML, optimizer", [
    (s, r, o) for s in (1e-6, 1e6) for r in (True, False) for o in OPTIMIZERS])
def test_covariate_scale_random_slope(sleep, scale, REML, optimizer):
    """(Days | Subject) with Days on a scale of 1e-6 or 1e6: the slope's θ is
    1e6 or 1e-6 times the intercept's, hard for any optimizer (lme4 misses the
    optimum by 18-41 units here).  lmmlite must not crash, give finite
    numbers, and never be silently worse than lme4: either its criterion is
    at most lme4's, or it warns that the optimum is doubtful."""
    f = "Reaction ~ Days + (Days | Subject)"
    d = sleep.assign(Days=sleep["Days"] * scale)
    fit, rec = fit_recording(f, d, REML=REML, optimizer=optimizer)
    assert_finite(fit)
    # numpy's own RuntimeWarnings are raw tracebacks in disguise
    assert not has(rec, RuntimeWarning), [str(w.message) for w in rec]
    base, _ = fit_recording(f, sleep, REML=REML, optimizer=optimizer)
    theory = crit(base) + (2 * np.log(scale) if REML else 0.0)
    assert crit(fit) >= theory - 1e-6          # cannot beat the true optimum
    ref = lme4_crit(f, d, REML)
    if ref is not None and crit(fit) > ref + 1e-6:
        assert has(rec, ConvergenceWarning), \
            f"criterion {crit(fit):.6f} above lme4's {ref:.6f} without a ConvergenceWarning"


@pytest.mark.parametrize("scale", [1e-6, 1e6])
def test_rescale_warning_like_lme4(sleep, scale):
    _, rec = fit_recording("Reaction ~ Days + (Days | Subject)",
                           sleep.assign(Days=sleep["Days"] * scale))
    assert any("scale" in str(w.message) for w in rec), [str(w.message) for w in rec]


# ---------------------------------------------------------------- near-collinear X

@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("eps, dropped", [(1e-12, True), (1e-9, True), (1e-5, False),
                                          (1e-3, False)])
def test_near_collinear_fixed_effects(eps, dropped, optimizer):
    """x2 = x + eps * noise: aliased (dropped with lme4's warning) below the
    rank tolerance, else kept with huge but finite standard errors; the sum of
    the two slopes (the estimable combination) stays near the truth."""
    rng = np.random.default_rng(5)
    n, G = 200, 20
    g = rng.integers(0, G, n)
    x = rng.normal(size=n)
    y = 1 + x + rng.normal(0, 1, G)[g] + rng.normal(size=n)
    d = pd.DataFrame({"y": y, "x": x, "x2": x + eps * rng.normal(size=n),
                      "g": [f"g{k:02d}" for k in g]})
    fit, rec = fit_recording("y ~ x + x2 + (1 | g)", d, optimizer=optimizer)
    assert_finite(fit)
    msgs = [str(w.message) for w in rec]
    if dropped:
        assert any("rank deficient so dropping 1 column / coefficient" in m and "x2" in m
                   for m in msgs), msgs
        assert list(fit.fixef.index) == ["(Intercept)", "x"]
        assert fit.fixef["x"] == pytest.approx(1.0, abs=0.2)
    else:
        assert list(fit.fixef.index) == ["(Intercept)", "x", "x2"]
        se = np.sqrt(np.diag(fit.vcov))
        assert se[1] > 10 * se[0]           # the collinearity shows in the SEs
        assert fit.fixef["x"] + fit.fixef["x2"] == pytest.approx(1.0, abs=0.2)
        # the combination is estimated as well as without the collinear column
        alone = lmer("y ~ x + (1 | g)", d, optimizer=optimizer)
        L = np.array([0.0, 1.0, 1.0])
        se_sum = np.sqrt(L @ fit.vcov.to_numpy() @ L)
        assert se_sum == pytest.approx(np.sqrt(alone.vcov.loc["x", "x"]), rel=0.05)


# ---------------------------------------------------------------- variance near zero

def singular_data():
    """All group means of y - 2x equal (x and the errors centred within groups):
    no between-group variation at all, so θ̂ = 0 for REML and ML."""
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(8), 6)

    def centred(v):
        return v - pd.Series(v).groupby(g).transform("mean").to_numpy()
    x = centred(rng.normal(size=g.size))
    y = 1 + 2 * x + centred(rng.normal(size=g.size)) + rng.normal(0, 0.02, g.size)
    return pd.DataFrame({"g": [f"s{k}" for k in g], "x": x, "y": y})


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("REML", [True, False])
def test_singular_random_intercept(optimizer, REML):
    fit, rec = fit_recording("y ~ x + (1 | g)", singular_data(), REML=REML,
                             optimizer=optimizer)
    assert_finite(fit)
    assert fit.singular
    assert has(rec, SingularFitWarning)
    assert any("boundary (singular) fit" in str(w.message) for w in rec)
    assert not has(rec, ConvergenceWarning)   # lme4 skips checkConv on the boundary
    assert fit.theta[0] == pytest.approx(0.0, abs=1e-4)
    vc = fit.varcorr()
    assert vc["vcov"].iloc[0] < 1e-6 * vc["vcov"].iloc[-1]
    assert np.allclose(fit.ranef(condvar=False)["g"].to_numpy(), 0.0, atol=1e-3)
    ref = lme4_crit("y ~ x + (1 | g)", singular_data(), REML)
    if ref is not None:
        assert crit(fit) <= ref + 1e-6


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_singular_random_slope(optimizer):
    """A slope variance of exactly zero in the data: a boundary fit, flagged."""
    rng = np.random.default_rng(8)
    G, per = 15, 10
    g = np.repeat(np.arange(G), per)
    x = rng.normal(size=G * per)
    y = 2 + 0.5 * x + rng.normal(0, 2, G)[g] + rng.normal(0, 1, G * per)
    d = pd.DataFrame({"y": y, "x": x, "g": [f"s{k:02d}" for k in g]})
    # remove every trace of slope variation: residuals orthogonal to x within groups
    r = d.groupby("g").apply(lambda s: np.polyfit(s.x, s.y, 1)[0], include_groups=False)
    d["y"] = d["y"] - (d["g"].map(r) - r.mean()) * d["x"]
    fit, rec = fit_recording("y ~ x + (x | g)", d, optimizer=optimizer)
    assert_finite(fit)
    assert fit.singular and has(rec, SingularFitWarning)
    ref = lme4_crit("y ~ x + (x | g)", d, True)
    if ref is not None:
        assert crit(fit) <= ref + 1e-6 or has(rec, ConvergenceWarning)


# ---------------------------------------------------------------- very large variances

def exact_criterion(theta, X, y, codes, REML=True):
    """Profiled deviance of y ~ X + (1 | g) at θ, evaluated without cancellation.

    V_j = I + θ² 11' has V_j⁻¹ = (I - P_j) + P_j / (1 + θ² n_j), P_j = 11'/n_j, so
    [X y]' V⁻¹ [X y] is a sum of within-group (centred) cross-products plus
    down-weighted group-mean terms, all non-negative; log|V| = Σ log1p(θ² n_j).
    """
    n, p = X.shape
    W = np.column_stack([X, y])
    M = np.zeros((p + 1, p + 1))
    logdet = 0.0
    for j in np.unique(codes):
        Wj = W[codes == j]
        nj = len(Wj)
        mean = Wj.mean(axis=0)
        C = Wj - mean
        M += C.T @ C + np.outer(mean, mean) * nj / (1 + theta ** 2 * nj)
        logdet += np.log1p(theta ** 2 * nj)
    L = np.linalg.cholesky(M)
    r2 = L[-1, -1] ** 2
    if REML:
        return logdet + 2 * np.log(np.diag(L)[:p]).sum() \
            + (n - p) * (1 + np.log(2 * np.pi * r2 / (n - p)))
    return logdet + n * (1 + np.log(2 * np.pi * r2 / n))


def large_variance_data(sd_group):
    rng = np.random.default_rng(2)
    n, G = 200, 20
    g = rng.integers(0, G, n)
    x = rng.normal(size=n)
    u = rng.normal(0, sd_group, G)
    y = 1 + x + u[g] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{k:02d}" for k in g]}), u


def exact_optimum(fit, sd_group):
    from scipy.optimize import minimize_scalar
    X, y, codes = fit.devfun.X, fit.devfun.y, fit.blocks[0].codes
    res = minimize_scalar(lambda lt: exact_criterion(np.exp(lt), X, y, codes),
                          bounds=(np.log(sd_group / 100), np.log(sd_group * 100)),
                          method="bounded", options={"xatol": 1e-12})
    return float(np.exp(res.x)), float(res.fun)


def test_exact_criterion_matches_lmmlite_at_moderate_theta():
    """The reference evaluation itself agrees with lmmlite where both are accurate."""
    d, _ = large_variance_data(1.0)
    fit = lmer("y ~ x + (1 | g)", d)
    X, y, codes = fit.devfun.X, fit.devfun.y, fit.blocks[0].codes
    for theta in (0.0, 0.3, 1.0, 3.0, fit.theta[0]):
        assert fit.devfun(np.array([theta])) == pytest.approx(
            exact_criterion(theta, X, y, codes), abs=1e-9)


@pytest.mark.parametrize("sd_group", [1e2, 1e4, 1e5, 1e6])
@pytest.mark.parametrize("optimizer", ["auto", "lbfgsb"])
def test_very_large_variance_component(sd_group, optimizer):
    """Between-group sd up to 1e6 times the residual sd (θ ~ 1e6): finite results,
    and lmmlite's θ is the optimum (judged by the exact criterion) or it warns.

    From θ²n_j ~ 1e4 on, the Schur complement of the intercept is formed without
    cancellation (solvers.DenseSolver), so the criterion stays accurate to ~1e-9
    and the optimizers reach the optimum (1e-9 above it) on every machine; at
    sd 1e6 θ̂ ≈ 1.002e6 passes lmmlite's "relative sd above 1e6" warning."""
    d, u = large_variance_data(sd_group)
    fit, rec = fit_recording("y ~ x + (1 | g)", d, optimizer=optimizer)
    assert_finite(fit)
    assert not fit.singular
    theta_star, best = exact_optimum(fit, sd_group)
    X, y, codes = fit.devfun.X, fit.devfun.y, fit.blocks[0].codes
    excess = exact_criterion(fit.theta[0], X, y, codes) - best
    doubtful = has(rec, ConvergenceWarning)
    assert excess <= 1e-6 or doubtful, \
        f"θ = {fit.theta[0]:.6g} vs θ* = {theta_star:.6g}: criterion {excess:.3g} above " \
        "the optimum without a ConvergenceWarning"
    if not doubtful:
        sd_hat = np.sqrt(fit.varcorr()["vcov"].iloc[0])
        assert 0.5 * np.std(u) < sd_hat < 2 * np.std(u)
        assert fit.fixef["x"] == pytest.approx(1.0, abs=0.3)
        assert fit.sigma == pytest.approx(1.0, abs=0.3)


@pytest.mark.parametrize("sd_group", [1e2, 1e3, 1e4, 1e6])
def test_deviance_precision_at_large_theta(sd_group):
    """The criterion at the optimum agrees with a cancellation-free closed form (1e-9
    observed at θ ~ 1e6, where R'R minus the level sums used to lose ~1e-3)."""
    d, _ = large_variance_data(sd_group)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lmer("y ~ x + (1 | g)", d, optimizer="lbfgsb")
    theta_star, best = exact_optimum(fit, sd_group)
    assert fit.devfun(np.array([theta_star])) == pytest.approx(best, abs=1e-6)


# ---------------------------------------------------------------- response offsets

@pytest.mark.parametrize("optimizer, offset", [
    ("auto", 1e4), ("lbfgsb", 1e4), ("auto", 1e5), ("lbfgsb", 1e5), ("auto", 1e6),
])
def test_large_response_offset(sleep, optimizer, offset):
    """y -> y + c changes nothing but the intercept (exactly, in theory).

    Found as a bug (r² = L[y,y]² cancelled when mean(y) was large against sd(y));
    fixed by centring y and X and summing r² from the residuals.
    """
    f = "Reaction ~ Days + (Days | Subject)"
    base, _ = fit_recording(f, sleep, optimizer=optimizer)
    fit, rec = fit_recording(f, sleep.assign(Reaction=sleep["Reaction"] + offset),
                             optimizer=optimizer)
    assert_finite(fit)
    assert not has(rec, ConvergenceWarning), [str(w.message) for w in rec]
    assert crit(fit) == pytest.approx(crit(base), abs=1e-6)
    assert fit.fixef["Days"] == pytest.approx(base.fixef["Days"], rel=1e-6)
    assert fit.fixef["(Intercept)"] == pytest.approx(base.fixef["(Intercept)"] + offset,
                                                     rel=1e-9)


@pytest.mark.parametrize("offset", [
    1e3, 1e4, 1e6,
])
def test_deviance_precision_under_response_offset(sleep, offset):
    f = "Reaction ~ Days + (Days | Subject)"
    base = lmer(f, sleep)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        moved = lmer(f, sleep.assign(Reaction=sleep["Reaction"] + offset))
    assert moved.devfun(base.theta) == pytest.approx(crit(base), abs=1e-6)


# ---------------------------------------------------------------- degenerate responses

def test_constant_response_no_crash(sleep):
    """y constant: a refusal (LmmError) or finite numbers with a warning."""
    try:
        fit, rec = fit_recording("c ~ Days + (1 | Subject)", sleep.assign(c=3.0))
    except LmmError as err:
        assert "'c'" in str(err) or "constant" in str(err)
        return
    assert np.isfinite(crit(fit)) and np.all(np.isfinite(fit.fixef))
    assert fit.fixef["(Intercept)"] == pytest.approx(3.0, abs=1e-6)
    assert has(rec, ConvergenceWarning) or has(rec, SingularFitWarning)


# ---------------------------------------------------------------- 100k rows

def test_100k_rows_scalar_random_effect(capsys):
    rng = np.random.default_rng(3)
    n, G = 100_000, 2000
    g = rng.integers(0, G, n)
    x = rng.normal(size=n)
    y = 2 + 0.5 * x + rng.normal(0, 1.5, G)[g] + rng.normal(0, 1, n)
    d = pd.DataFrame({"y": y, "x": x, "g": g})
    times = {}
    for optimizer in OPTIMIZERS:
        t0 = time.perf_counter()
        fit, rec = fit_recording("y ~ x + (1 | g)", d, optimizer=optimizer)
        times[optimizer] = time.perf_counter() - t0
        assert not has(rec, ConvergenceWarning) and not fit.singular
        assert fit.nobs == n and fit.ngrps == {"g": G}
        assert_finite(fit)
        assert fit.fixef["x"] == pytest.approx(0.5, abs=0.01)
        assert fit.sigma == pytest.approx(1.0, abs=0.01)
        assert fit.theta[0] == pytest.approx(1.5, rel=0.1)
        assert len(fit.ranef()["g"]) == G
    with capsys.disabled():
        print("\n100k rows, y ~ x + (1 | g), 2000 groups: "
              + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()))
