"""Property-based tests of lmer over generated designs (hypothesis).

Designs: balanced and unbalanced groups, groups of size one, many small
groups, crossed and nested grouping factors, random slopes (correlated and
independent), fixed factors with empty cells.  Properties:

* a fit succeeds (finite results) or raises LmmError -- nothing else;
* invariance to the row order and to relabelling the levels of the grouping
  factors (criterion, fixed effects, variance components);
* equivariance under y -> a*y + b: fixed effects (b + a*beta0, a*beta), variance
  components times a^2, REML criterion + 2(n-p)log|a|, ML deviance + 2n log|a|;
* centring a covariate changes only the intercept-related terms.

The invariance checks use optimizer="lbfgsb", whose tight optimum (projected
Newton polish) makes the comparisons crisp.  ``random_design`` is also used
by test_random_crosscheck.py.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, note, reject, settings
from hypothesis import strategies as st

from lmmlite import LmmError, lmer

KINDS = ["intercept", "slope", "uncorrelated", "nocorr_slope_only", "crossed",
         "crossed_slope", "nested", "factor", "factor_empty_cells"]

# no shrinking: a failure is reported as generated (deterministic, derandomize=True),
# which keeps the run time bounded when something breaks
SETTINGS = dict(deadline=None, derandomize=True, print_blob=True,
                phases=(Phase.explicit, Phase.reuse, Phase.generate),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _labels(prefix, codes, rng, shuffle=True):
    """String labels for integer codes, in an order unrelated to the codes."""
    k = int(codes.max()) + 1
    names = np.array([f"{prefix}{i:03d}" for i in range(k)], dtype=object)
    if shuffle:
        names = names[rng.permutation(k)]
    return names[codes]


def random_design(rng, kind, n_groups, sizes, sd_group=1.0, sd_slope=0.5, n_second=4):
    """A data set and an lme4 formula of the given kind.

    ``sizes`` are the numbers of rows per level of the main grouping factor
    ``g`` (zeros allowed: that level does not occur); ``sd_group`` = 0 gives
    data without between-group variation (singular fits are likely).
    """
    sizes = np.asarray(sizes, dtype=int)
    codes = np.repeat(np.arange(n_groups), sizes)
    # drop unused codes so labels are dense
    _, codes = np.unique(codes, return_inverse=True)
    n = codes.size
    ng = int(codes.max()) + 1
    x = rng.normal(2.0, 1.5, n)
    u0 = rng.normal(0, sd_group, ng)
    u1 = rng.normal(0, sd_slope, ng)
    y = 1.0 + 0.7 * x + u0[codes] + u1[codes] * x + rng.normal(0, 1.0, n)
    df = pd.DataFrame({"g": _labels("g", codes, rng), "x": x})
    if kind == "intercept":
        formula = "y ~ x + (1 | g)"
    elif kind == "slope":
        formula = "y ~ x + (1 + x | g)"
    elif kind == "uncorrelated":
        formula = "y ~ x + (x || g)"
    elif kind == "nocorr_slope_only":
        formula = "y ~ x + (1 | g) + (0 + x | g)"
    elif kind in ("crossed", "crossed_slope"):
        h = rng.integers(0, n_second, n)
        h[: min(n, n_second)] = np.arange(min(n, n_second))  # every level occurs
        y = y + rng.normal(0, 1.0, n_second)[h]
        df["h"] = _labels("h", h, rng)
        formula = ("y ~ x + (1 | g) + (1 | h)" if kind == "crossed"
                   else "y ~ x + (1 + x | g) + (1 | h)")
    elif kind == "nested":
        # labels of the inner factor repeat across outer groups (needs g/h)
        h = rng.integers(0, 3, n)
        y = y + rng.normal(0, 0.8, (ng, 3))[codes, h]
        df["h"] = np.array(["c1", "c2", "c3"], dtype=object)[h]
        formula = "y ~ x + (1 | g/h)"
    elif kind == "factor":
        f = rng.integers(0, 3, n)
        y = y + np.array([0.0, 1.0, -0.5])[f]
        df["f"] = np.array(["lo", "mid", "hi"], dtype=object)[f]
        formula = "y ~ x + f + (1 | g)"
    elif kind == "factor_empty_cells":
        f = rng.integers(0, 3, n)
        b = rng.integers(0, 2, n)
        b[f == 2] = 0                                    # cell (hi, trt) is empty
        y = y + np.array([0.0, 1.0, -0.5])[f] + 0.8 * b
        df["f"] = np.array(["lo", "mid", "hi"], dtype=object)[f]
        df["b"] = np.array(["ctl", "trt"], dtype=object)[b]
        formula = "y ~ x + f * b + (1 | g)"
    else:
        raise ValueError(kind)
    df["y"] = y
    return formula, df


@st.composite
def designs(draw, kinds=KINDS, max_groups=14):
    kind = draw(st.sampled_from(kinds))
    n_groups = draw(st.integers(2, max_groups))
    shape = draw(st.sampled_from(["balanced", "unbalanced", "singletons", "many_small"]))
    if shape == "balanced":
        sizes = [draw(st.integers(2, 8))] * n_groups
    elif shape == "unbalanced":
        sizes = draw(st.lists(st.integers(1, 12), min_size=n_groups, max_size=n_groups))
    elif shape == "singletons":  # several groups of size one
        sizes = draw(st.lists(st.sampled_from([1, 1, 2, 5]), min_size=n_groups,
                              max_size=n_groups))
    else:                        # many small groups
        n_groups = draw(st.integers(15, 40))
        sizes = [draw(st.integers(1, 3)) for _ in range(n_groups)]
    sd_group = draw(st.sampled_from([0.0, 0.3, 1.0, 3.0]))
    seed = draw(st.integers(0, 2 ** 31 - 1))
    n_second = draw(st.integers(2, 6))
    formula, df = random_design(np.random.default_rng(seed), kind, n_groups, sizes,
                                sd_group=sd_group, n_second=n_second)
    note(f"random_design(np.random.default_rng({seed}), {kind!r}, {n_groups}, {list(sizes)}, "
         f"sd_group={sd_group}, n_second={n_second})\n{formula}\n{df.to_csv(index=False)}")
    return formula, df


def fit_or_none(formula, df, **kw):
    """The fit, or None when the data are refused.

    Refused: lmmlite raises LmmError, or the model is one lme4 refuses because
    some term has at least as many random effects as there are observations
    (lme4's check.nobs.vs.nRE; see test_bad_input.py for lmmlite's check).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = lmer(formula, df, **kw)
        except LmmError:
            return None
        except Exception as exc:
            # a known bug with its own strict xfail below
            # (test_bobyqa_roundoff_limited_is_not_a_raw_exception): skip the example
            # here so the invariance properties keep guarding everything else
            if type(exc).__name__ == "RoundoffLimited":
                reject()
            raise
    if any(b.nlevels * b.p >= fit.nobs for b in fit.blocks):
        return None
    return fit


def crit(fit):
    return fit.reml_criterion if fit.REML else fit.deviance


def doubtful(fit):
    """lmmlite itself flagged the optimum (lme4-style convergence warning), or the
    design is degenerate: θ > 100 means the residual variance is heading to zero
    (tiny designs where the criterion is unbounded), so no optimum to compare."""
    if any("converge" in m for m in fit.messages) or np.max(np.abs(fit.theta)) > 100:
        return True
    # fewer than 3 residual degrees of freedom beyond the parameters: the
    # criterion is too flat for estimates to be compared to 1e-5
    return fit.nobs - len(fit.fixef) - len(fit.theta) < 3


def vc_by_name(fit):
    """Variance components keyed by (grp, var1, var2)."""
    vc = fit.varcorr()

    def name(v):
        return None if v is None or (isinstance(v, float) and np.isnan(v)) else v
    return {(r.grp, name(r.var1), name(r.var2)): r.vcov for r in vc.itertuples()}


# Tolerances.  The criterion is compared to 1e-6 relative.  Fixed effects and
# variance components to VC_RTOL: at a flat optimum a criterion difference of
# 1e-11 (the resolution of the profiled deviance) moves a variance component
# by up to ~1e-5 relative, so that is the crispest meaningful comparison.
CRIT_RTOL = 1e-6
EST_RTOL = {"lbfgsb": 3e-5, "bobyqa": 1e-2}


def discrepancies(a, b, scale=1.0, shift=0.0, intercept_shift=0.0, only=None):
    """How fit ``b`` differs from fit ``a`` transformed (y -> scale*y + ...).

    Expected: crit(b) = crit(a) + shift; fixef(b) = scale*fixef(a) (+ the
    intercept shift); variance components times scale^2.  Returns a list
    of messages (empty when b is a's transform).
    """
    out = []
    ca, cb = crit(a), crit(b)
    if abs(cb - (ca + shift)) > CRIT_RTOL * max(1.0, abs(ca)):
        out.append(f"criterion {cb!r} vs {ca!r} + {shift!r} (diff {cb - ca - shift:.3g})")
    names = list(a.fixef.index) if only is None else only
    if list(a.fixef.index) != list(b.fixef.index):
        out.append(f"fixef names {list(a.fixef.index)} vs {list(b.fixef.index)}")
        return out
    want = scale * a.fixef[names].copy()
    if "(Intercept)" in want:
        want["(Intercept)"] += intercept_shift
    got = b.fixef[names]
    fscale = max(1.0, float(np.abs(want).max()))
    rtol = EST_RTOL[a.opt.method]
    bad = np.abs(got - want) > rtol * np.maximum(np.abs(want), 1e-2 * fscale)
    if bad.any():
        out.append(f"fixef {got[bad].to_dict()} vs {want[bad].to_dict()}")
    va, vb = vc_by_name(a), vc_by_name(b)
    if va.keys() != vb.keys():
        out.append(f"VarCorr rows {list(va)} vs {list(vb)}")
        return out
    s2 = scale * scale
    vscale = max(abs(v) for v in va.values()) * s2
    for k in va:
        want_k = s2 * va[k]
        if abs(vb[k] - want_k) > rtol * max(abs(want_k), 1e-3 * vscale):
            out.append(f"variance component {k}: {vb[k]!r} vs {want_k!r}")
    return out


def check_pair(a, b, what, **kw):
    """b must equal a's transform -- unless lmmlite flagged one optimum as doubtful."""
    assert (a is None) == (b is None), f"{what}: one fit refused, the other not"
    if a is None:
        return
    problems = discrepancies(a, b, **kw)
    if problems and not (doubtful(a) or doubtful(b)):
        raise AssertionError(
            f"{what}: silently different fits ({a.formula}, n = {a.nobs}; "
            f"theta {a.theta} vs {b.theta}; singular {a.singular} vs {b.singular}):\n  "
            + "\n  ".join(problems))


# ------------------------------------------------------------------ fit or LmmError

@settings(max_examples=150, **SETTINGS)
@given(designs(), st.booleans(), st.sampled_from(["auto", "lbfgsb"]))
def test_fit_succeeds_or_raises_lmmerror(design, reml, optimizer):
    formula, df = design
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = lmer(formula, df, REML=reml, optimizer=optimizer)
        except LmmError:
            return
    assert np.isfinite(crit(fit))
    assert np.all(np.isfinite(fit.theta))
    assert np.all(np.isfinite(fit.fixef))
    assert np.isfinite(fit.sigma) and fit.sigma > 0
    assert np.all(np.isfinite(fit.vcov.to_numpy()))
    vc = fit.varcorr()
    assert np.all(np.isfinite(vc["vcov"])) and np.all(vc.loc[vc.var2.isna(), "vcov"] >= 0)
    assert np.all(np.isfinite(fit.fitted()))
    re = fit.ranef(condvar=True)
    for g, frame in re.items():
        assert np.all(np.isfinite(frame.to_numpy()))
        assert np.all(np.isfinite(re.condsd[g].to_numpy()))
    assert fit.nobs == len(df)
    # lme4's isSingular: some diagonal element of Lambda within 1e-4 of 0
    lower = fit.devfun.lower
    assert fit.singular == bool(np.any(np.isfinite(lower) & (fit.theta < lower + 1e-4)))
    assert fit.singular == any("singular" in m for m in fit.messages)


# ------------------------------------------------------------------ invariances

@pytest.mark.parametrize("optimizer", ["lbfgsb", "bobyqa"])
@settings(max_examples=70, **SETTINGS)
@given(designs(), st.integers(0, 2 ** 31 - 1), st.booleans())
def test_invariant_to_row_order(optimizer, design, seed, reml):
    formula, df = design
    a = fit_or_none(formula, df, REML=reml, optimizer=optimizer)
    perm = np.random.default_rng(seed).permutation(len(df))
    b = fit_or_none(formula, df.iloc[perm].reset_index(drop=True), REML=reml,
                    optimizer=optimizer)
    check_pair(a, b, "row order")


@pytest.mark.parametrize("optimizer", ["lbfgsb", "bobyqa"])
@settings(max_examples=70, **SETTINGS)
@given(designs(), st.integers(0, 2 ** 31 - 1))
def test_invariant_to_relabelling_levels(optimizer, design, seed):
    formula, df = design
    rng = np.random.default_rng(seed)
    relabelled = df.copy()
    maps = {}
    for col in ("g", "h"):
        if col in df:
            levels = sorted(df[col].unique())
            new = [f"L{i:04d}" for i in rng.permutation(len(levels))]
            maps[col] = dict(zip(levels, new))
            relabelled[col] = df[col].map(maps[col])
    a = fit_or_none(formula, df, optimizer=optimizer)
    b = fit_or_none(formula, relabelled, optimizer=optimizer)
    check_pair(a, b, "relabelled levels")
    if a is None or discrepancies(a, b):
        return
    # the conditional modes follow their levels
    ra, rb = a.ranef(condvar=False)["g"], b.ranef(condvar=False)["g"]
    rb = rb.loc[[maps["g"][lev] for lev in ra.index]]
    tol = 10 * EST_RTOL[optimizer]
    np.testing.assert_allclose(ra.to_numpy(), rb.to_numpy(), rtol=tol,
                               atol=tol * max(1.0, np.abs(ra.to_numpy()).max()))


# ------------------------------------------------------------------ affine change of y

@pytest.mark.parametrize("optimizer", ["lbfgsb", "bobyqa"])
@settings(max_examples=70, **SETTINGS)
@given(designs(), st.sampled_from([-3.0, 0.01, 2.5, 1000.0, -0.2]),
       st.sampled_from([0.0, 5.0, -40.0, 0.5]), st.booleans())
def test_affine_response(optimizer, design, a, c, reml):
    """y -> a*y + b (b = a*c, so the offset stays moderate against the spread of y;
    large offsets are a separate precision problem, see test_stress.py)."""
    formula, df = design
    b = a * c
    base = fit_or_none(formula, df, REML=reml, optimizer=optimizer)
    moved = fit_or_none(formula, df.assign(y=a * df["y"] + b), REML=reml, optimizer=optimizer)
    if base is None:
        assert moved is None
        return
    n, p = base.nobs, len(base.fixef)
    shift = 2 * (n - p) * np.log(abs(a)) if reml else 2 * n * np.log(abs(a))
    check_pair(base, moved, f"y -> {a}*y + {b}", scale=a, shift=shift, intercept_shift=b)


# ------------------------------------------------------------------ centring a covariate

INTERCEPT_KINDS = ["intercept", "crossed", "nested", "factor", "factor_empty_cells"]


@pytest.mark.parametrize("optimizer", ["lbfgsb", "bobyqa"])
@settings(max_examples=70, **SETTINGS)
@given(designs(kinds=INTERCEPT_KINDS), st.sampled_from([None, -4.0, 10.0, 250.0]),
       st.booleans())
def test_centring_covariate_random_intercepts(optimizer, design, c, reml):
    """Random intercepts only: x -> x - c changes the intercept and nothing else
    (slopes, variance components, criterion unchanged)."""
    formula, df = design
    c = float(df["x"].mean()) if c is None else c
    base = fit_or_none(formula, df, REML=reml, optimizer=optimizer)
    cen = fit_or_none(formula, df.assign(x=df["x"] - c), REML=reml, optimizer=optimizer)
    if base is None:
        assert cen is None
        return
    slopes = [k for k in base.fixef.index if k != "(Intercept)"]
    check_pair(base, cen, f"x -> x - {c}", only=slopes)
    if doubtful(base) or doubtful(cen):
        return
    # the intercept moves by slope * c (x enters as a main effect only)
    scale = max(1.0, float(np.abs(base.fixef).max()))
    np.testing.assert_allclose(cen.fixef["(Intercept)"],
                               base.fixef["(Intercept)"] + base.fixef["x"] * c,
                               rtol=EST_RTOL[optimizer],
                               atol=EST_RTOL[optimizer] * scale * max(1.0, abs(c)))
    # the slope's standard error does not depend on the centring
    np.testing.assert_allclose(np.sqrt(cen.vcov.loc["x", "x"]),
                               np.sqrt(base.vcov.loc["x", "x"]), rtol=10 * EST_RTOL[optimizer])


@pytest.mark.parametrize("optimizer", ["lbfgsb", "bobyqa"])
@settings(max_examples=50, **SETTINGS)
@given(designs(kinds=["slope", "crossed_slope"]), st.sampled_from([None, 3.0, -7.0]))
def test_centring_covariate_correlated_slopes(optimizer, design, c):
    """(1 + x | g) is closed under x -> x - c: criterion and slope unchanged
    (the intercept variance and the correlation do change)."""
    formula, df = design
    c = float(df["x"].mean()) if c is None else c
    base = fit_or_none(formula, df, optimizer=optimizer)
    cen = fit_or_none(formula, df.assign(x=df["x"] - c), optimizer=optimizer)
    if base is None:
        assert cen is None
        return
    # At the boundary a local optimizer can stop at a local boundary point: for
    # random_design(default_rng(3), 'crossed_slope', 7, [3, 12, 3, 3, 4, 12, 4], sd_group=0,
    # n_second=3) lme4, bobyqa and lbfgsb all give REML 132.148 uncentred, 132.040 centred.
    # So singular fits are left out here (an lme4-shared limitation, not an lmmlite bug).
    if doubtful(base) or doubtful(cen) or base.singular or cen.singular:
        return
    assert abs(crit(cen) - crit(base)) <= CRIT_RTOL * max(1.0, abs(crit(base))), \
        f"criterion {crit(cen)!r} vs {crit(base)!r} (theta {base.theta} vs {cen.theta})"
    vx_a = vc_by_name(base)[("g", "x", None)]
    vx_b = vc_by_name(cen)[("g", "x", None)]
    tol = 10 * EST_RTOL[optimizer]
    assert abs(vx_a - vx_b) <= tol * max(vx_a, 1e-3 * base.sigma ** 2)
    np.testing.assert_allclose(cen.fixef["x"], base.fixef["x"], rtol=tol,
                               atol=tol * max(1.0, abs(base.fixef["x"])))


# ------------------------------------------------------------------ bugs found (now fixed)

def _crit_of(formula, df, reml, optimizer):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return crit(lmer(formula, df, REML=reml, optimizer=optimizer))


STUCK = [
    # kind, seed, n_groups, sizes, sd_group, REML, lbfgsb's criterion, lme4's (= bobyqa's)
    ("slope", 10, 12, [6] * 12, 1.0, True, 236.889946, 234.465359),
    ("slope", 18, 12, [6] * 12, 1.0, False, 229.834376, 229.483285),
    ("factor_empty_cells", 1230, 13, [1, 2, 1, 5, 2, 1, 2, 1, 2, 5, 5, 2, 5], 0.0, False,
     111.378917, 110.500626),
]


@pytest.mark.parametrize("kind, seed, n_groups, sizes, sd, reml, stuck, best", STUCK,
                         ids=[f"{c[0]}-{c[1]}-{'REML' if c[5] else 'ML'}" for c in STUCK])
def test_lbfgsb_not_stuck_near_boundary(kind, seed, n_groups, sizes, sd, reml, stuck, best):
    formula, df = random_design(np.random.default_rng(seed), kind, n_groups, sizes, sd_group=sd)
    ours_bobyqa = _crit_of(formula, df, reml, "bobyqa")
    assert ours_bobyqa == pytest.approx(best, abs=1e-5)   # the generator is unchanged
    ours = _crit_of(formula, df, reml, "lbfgsb")
    assert ours <= ours_bobyqa + 1e-6, \
        f"lbfgsb criterion {ours:.6f} above bobyqa's (= lme4's) {ours_bobyqa:.6f}"


# 8 rows: y ~ x + f * b + (1 | g), ML -- the criterion keeps falling as θ grows
ROUNDOFF = pd.DataFrame({
    "g": ["g000", "g000", "g003", "g003", "g002", "g002", "g001", "g001"],
    "x": [0.839282, 2.669428, 1.630773, 2.588924, 3.793443, 5.108107, 1.145606, 2.420932],
    "f": ["mid", "hi", "lo", "hi", "hi", "lo", "hi", "hi"],
    "b": ["ctl", "ctl", "ctl", "ctl", "ctl", "trt", "ctl", "ctl"],
    "y": [4.156049, 3.394758, 2.638343, 4.839839, 0.440589, 4.412002, 1.257679, 1.181765],
})


def test_bobyqa_roundoff_limited_is_not_a_raw_exception():
    """Found as a bug: NLopt's RoundoffLimited escaped as a raw exception."""
    from lmmlite import ConvergenceWarning
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        try:
            fit = lmer("y ~ x + f * b + (1 | g)", ROUNDOFF, REML=False, optimizer="bobyqa")
        except LmmError:
            return
    assert np.isfinite(fit.deviance) and np.all(np.isfinite(fit.theta))
    assert any(issubclass(w.category, ConvergenceWarning) for w in rec)


# ------------------------------------------------------------------ a few fixed examples

@pytest.mark.parametrize("kind", KINDS)
def test_each_design_kind_fits(kind):
    """Every generator kind gives a fit on a comfortable design (guards the generators)."""
    rng = np.random.default_rng(11)
    formula, df = random_design(rng, kind, 10, [6] * 10, sd_group=1.5)
    fit = fit_or_none(formula, df)
    assert fit is not None, formula
    assert np.isfinite(crit(fit))
