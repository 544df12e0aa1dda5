"""Inference: Satterthwaite / Kenward-Roger df, anova tables, confidence intervals.

(a) the slides' published numbers (sleepstudy, public data): printed exactly;
(b) a cross-check against lmerTest / pbkrtest / lme4 through rpy2 on varied
    models (skipped without R unless LMMLITE_REQUIRE_R=1).  The largest
    relative differences are written to _build/inference_crosscheck.json.
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import simdata  # noqa: E402
from lmmlite import anova, confint, lm, lmer, load  # noqa: E402
from lmmlite.errors import LmmError  # noqa: E402
from lmmlite.inference import contest, fixef_ddf, grad_hess  # noqa: E402
from r_reference import require_r  # noqa: E402
from test_published_numbers import _lines  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
RECORD = {}


def _fit(formula, data, name="data", **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lmer(formula, data, **kw)
    fit.data_name = name
    return fit


def _at_theta(fit, theta):
    """The same model evaluated at another θ (e.g. lme4's optimum), so that the
    cross-check compares the inference code, not the two optimizers' stopping points."""
    return fit.at_theta(theta)


# --- (a) published numbers ------------------------------------------------------

def test_slide_anova_m1_m2_refit_false(sleepall):
    m1 = _fit("Reaction ~ Days + (1 | Subject)", sleepall, "sleepall")
    m2 = _fit("Reaction ~ Days + (1 + Days | Subject)", sleepall, "sleepall")
    out = anova(m1, m2, refit=False)
    assert _lines(out) == _lines((GOLDEN / "sleep_anova_m1_m2.txt").read_text())
    assert list(out.table.columns) == ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq",
                                       "Df", "Pr(>Chisq)"]
    assert out.table.loc["m2", "Chisq"] == pytest.approx(25.926, abs=5e-4)


def test_slide_anova_orders_by_npar(sleepall):
    m1 = _fit("Reaction ~ Days + (1 | Subject)", sleepall, "sleepall")
    m2 = _fit("Reaction ~ Days + (1 + Days | Subject)", sleepall, "sleepall")
    a, b = anova(m2, m1, refit=False), anova(m1, m2, refit=False)
    assert str(a) == str(b)


def test_anova_refit_true_message(sleepall, capsys):
    m1 = _fit("Reaction ~ Days + (1 | Subject)", sleepall, "sleepall")
    m2 = _fit("Reaction ~ Days + (1 + Days | Subject)", sleepall, "sleepall")
    out = anova(m1, m2)
    assert "refitting model(s) with ML (instead of REML)" in capsys.readouterr().err
    ml = m2.refit(REML=False)
    assert out.table.loc["m2", "logLik"] == pytest.approx(ml.loglik, rel=1e-10)


# --- unit tests (no R) -----------------------------------------------------------

def test_grad_hess_richardson_is_accurate():
    f = lambda x: np.array([np.exp(x[0]) * np.sin(x[1]) + x[0] ** 3 * x[1]])  # noqa: E731
    x = np.array([0.3, 1.1])
    _, g, H = grad_hess(f, x, np.array([0.05, 0.05]))
    e, s, c = np.exp(0.3), np.sin(1.1), np.cos(1.1)
    np.testing.assert_allclose(g[:, 0], [e * s + 3 * 0.09 * 1.1, e * c + 0.027], rtol=1e-9)
    np.testing.assert_allclose(H[:, :, 0], [[e * s + 6 * 0.3 * 1.1, e * c + 0.27],
                                            [e * c + 0.27, -e * s]], rtol=1e-8)


def test_contest_matches_fixef_ddf():
    fit = _fit("Reaction ~ Days + (1 + Days | Subject)", load("sleepstudy"))
    df, se = fixef_ddf(fit, "Satterthwaite")
    t = contest(fit, [0, 1])
    assert t["df"][0] == pytest.approx(df[1], rel=1e-12)
    assert t["Std. Error"][0] == pytest.approx(se[1], rel=1e-12)
    F = contest(fit, np.eye(2))
    assert F["NumDF"][0] == 2 and F["DenDF"][0] > 0


def test_kenward_roger_needs_reml():
    fit = _fit("Reaction ~ Days + (1 | Subject)", load("sleepstudy"), REML=False)
    with pytest.raises(LmmError, match="REML"):
        fixef_ddf(fit, "Kenward-Roger")


def test_anova_errors(sleepall):
    full = load("sleepstudy")
    m1 = _fit("Reaction ~ Days + (1 | Subject)", sleepall, "sleepall")
    m2 = _fit("Reaction ~ Days + (1 | Subject)", full, "full")
    with pytest.raises(LmmError, match="same size of dataset"):
        anova(m1, m2)
    half = full.iloc[:144]
    m3 = _fit("Reaction ~ Days + (1 | Subject)", half, "half")
    with pytest.raises(LmmError, match="same data"):
        anova(m1, m3)
    l1 = lm("Reaction ~ Days", sleepall)
    with pytest.raises(LmmError, match="single lm"):
        anova(l1)
    with pytest.raises(LmmError, match="REML"):
        anova(l1, m1, refit=False)
    with pytest.raises(LmmError):
        anova(m1, "not a model")


def test_anova_lm_and_lmer(sleepall):
    l1 = lm("Reaction ~ Days", sleepall)
    m1 = _fit("Reaction ~ Days + (1 | Subject)", sleepall, "sleepall")
    out = anova(m1, l1)
    assert list(out.table.index) == ["l1", "m1"]
    assert out.table.loc["m1", "Df"] == 1


def test_confint_wald_and_boot():
    fit = _fit("Reaction ~ Days + (1 | Subject)", load("sleepstudy"))
    w = confint(fit, method="Wald")
    assert list(w.index) == [".sig01", ".sigma", "(Intercept)", "Days"]
    assert list(w.columns) == ["2.5 %", "97.5 %"]
    assert w.iloc[:2].isna().all().all()
    se = np.sqrt(fit.vcov.loc["Days", "Days"])
    assert w.loc["Days", "97.5 %"] == pytest.approx(fit.fixef["Days"] + 1.959963984540054 * se)
    b1 = confint(fit, method="boot", nsim=20, seed=7, quiet=True)
    b2 = confint(fit, method="boot", nsim=20, seed=7, quiet=True)
    pd.testing.assert_frame_equal(b1, b2)
    assert (b1["2.5 %"] < b1["97.5 %"]).all()
    assert list(confint(fit, method="Wald", level=0.9).columns) == ["5 %", "95 %"]


# --- (b) cross-check against lmerTest / pbkrtest / lme4 ---------------------------

def _data():
    sleep = simdata.sleepstudy()
    return {
        "sleep": sleep,
        "nested": simdata.nested(),
        "crossed": simdata.crossed(),
        "factors": simdata.factors(),
        "singular": simdata.singular(),
        "missing": simdata.with_missing(),
    }


MODELS = [  # (id, data, formula, REML)
    ("slope", "sleep", "Reaction ~ Days + (1 + Days | Subject)", True),
    ("intercept_ML", "sleep", "Reaction ~ Days + (1 | Subject)", False),
    ("uncorrelated", "sleep", "Reaction ~ Days + (Days || Subject)", True),
    ("nested", "nested", "y ~ x + (1 | region/clinic)", True),
    ("crossed", "crossed", "y ~ x + (1 | clinic) + (1 | doctor)", True),
    ("crossed_slopes", "crossed", "y ~ x + (x | clinic) + (1 | doctor)", True),
    ("factors", "factors", "y ~ a * b + x + (1 | g)", True),
    ("factor_slope_ML", "factors", "y ~ a + x + (1 + x | g)", False),
    ("singular", "singular", "y ~ x + (1 | g)", True),
    ("missing", "missing", "Reaction ~ Days + (1 | Subject)", True),
]


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module", autouse=True)
def _write_record():
    yield
    if RECORD:
        out = ROOT / "_build" / "inference_crosscheck.json"
        out.parent.mkdir(exist_ok=True)
        summary = {k: float(max(v)) for k, v in RECORD.items()}
        out.write_text(json.dumps({"max_rel_diff": summary}, indent=2) + "\n")
        print("\ninference cross-check, largest relative differences:")
        for k, v in sorted(summary.items()):
            print(f"  {k:28s} {v:.2e}")


def _rel(a, b, floor=0.0):
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    assert np.array_equal(np.isfinite(a), np.isfinite(b)), (a, b)
    d = np.abs(a[ok] - b[ok]) / np.maximum(np.abs(b[ok]), floor)
    return float(d.max()) if d.size else 0.0


def _record(key, value):
    RECORD.setdefault(key, []).append(value)
    return value


@pytest.mark.parametrize("mid,dname,formula,REML", MODELS, ids=[m[0] for m in MODELS])
def test_ddf_vs_lmertest(mid, dname, formula, REML, data):
    require_r()
    import r_inference_ref as R
    d = data[dname]
    ref = R.coef_ddf(formula, d, REML)
    # at lme4's θ: the optima of the two optimizers differ by up to ~1e-5
    fit = _at_theta(_fit(formula, d, REML=REML), ref["theta"])
    df, se = fixef_ddf(fit, "Satterthwaite")
    p = fit.summary(ddf="Satterthwaite").coefficients["Pr(>|t|)"].to_numpy()
    assert _record("satterthwaite_df", _rel(df, ref["satt_df"])) < 1e-4, (df, ref["satt_df"])
    assert _record("satterthwaite_p", _rel(p, ref["satt_p"])) < 1e-3, (p, ref["satt_p"])
    if REML:
        df, se = fixef_ddf(fit, "Kenward-Roger")
        p = fit.summary(ddf="Kenward-Roger").coefficients["Pr(>|t|)"].to_numpy()
        assert _record("kenward_roger_df", _rel(df, ref["kr_df"])) < 1e-4, (df, ref["kr_df"])
        assert _record("kenward_roger_se", _rel(se, ref["kr_se"])) < 1e-5
        assert _record("kenward_roger_p", _rel(p, ref["kr_p"])) < 1e-3, (p, ref["kr_p"])


ANOVA_MODELS = [m for m in MODELS if m[0] in
                ("slope", "intercept_ML", "nested", "crossed_slopes", "factors",
                 "factor_slope_ML", "singular", "missing")]


FTABLES = [pytest.param(*m, ddf, type_, id=f"{ddf}-{type_}-{m[0]}")
           for ddf, type_ in [("Satterthwaite", 3), ("Satterthwaite", 1), ("Kenward-Roger", 3)]
           for m in ANOVA_MODELS
           if ddf != "Kenward-Roger" or m[3]]  # Kenward-Roger is for REML fits only


@pytest.mark.parametrize("mid,dname,formula,REML,ddf,type_", FTABLES)
def test_ftable_vs_lmertest(mid, dname, formula, REML, ddf, type_, data):
    require_r()
    import r_inference_ref as R
    d = data[dname]
    ref = R.anova_ftable(formula, d, REML, ddf, type_)
    fit = _at_theta(_fit(formula, d, REML=REML), ref["theta"])
    out = anova(fit, type=type_, ddf=ddf)
    t = out.table
    assert list(t.index) == ref["terms"]
    key = "kr" if ddf == "Kenward-Roger" else f"satt_type{type_}"
    assert _record(f"anova_{key}_DenDF", _rel(t["DenDF"], ref["ddf"])) < 1e-4
    assert _record(f"anova_{key}_F", _rel(t["F value"], ref["F"])) < 1e-5
    assert _record(f"anova_{key}_p", _rel(t["Pr(>F)"], ref["p"])) < 1e-3
    np.testing.assert_array_equal(t["NumDF"].to_numpy(), ref["ndf"])
    if mid != "singular":
        assert _lines(out) == _lines(ref["text"])


LRT_PAIRS = [  # (id, data, smaller, larger)
    ("sleep_random", "sleep", "Reaction ~ Days + (1 | Subject)",
     "Reaction ~ Days + (1 + Days | Subject)"),
    ("sleep_fixed", "sleep", "Reaction ~ 1 + (1 | Subject)", "Reaction ~ Days + (1 | Subject)"),
    ("factors", "factors", "y ~ a + x + (1 | g)", "y ~ a * b + x + (1 | g)"),
    ("crossed", "crossed", "y ~ x + (1 | clinic)", "y ~ x + (1 | clinic) + (1 | doctor)"),
]


@pytest.mark.parametrize("refit", [True, False])
@pytest.mark.parametrize("pid,dname,f1,f2", LRT_PAIRS, ids=[p[0] for p in LRT_PAIRS])
def test_lrt_vs_lme4(pid, dname, f1, f2, refit, data, capsys):
    require_r()
    import r_inference_ref as R
    d = data[dname]
    ref = R.anova_lrt(f1, f2, d, True, refit)
    m1, m2 = _fit(f1, d), _fit(f2, d)
    t = anova(m1, m2, refit=refit).table
    np.testing.assert_array_equal(t["npar"].to_numpy(), ref["npar"])
    for col, rcol in (("AIC", "AIC"), ("BIC", "BIC"), ("logLik", "logLik")):
        assert _record("lrt_loglik_aic_bic", _rel(t[col], ref[rcol])) < 1e-6
    assert _record("lrt_chisq", _rel(t["Chisq"], ref["Chisq"], floor=1e-2)) < 1e-4
    assert _record("lrt_p", _rel(t["Pr(>Chisq)"], ref["p"])) < 1e-3


CI_MODELS = [m for m in MODELS if m[0] in
             ("slope", "intercept_ML", "nested", "factors", "singular", "missing",
              "uncorrelated", "crossed")]


@pytest.mark.parametrize("method", ["profile", "Wald"])
@pytest.mark.parametrize("mid,dname,formula,REML", CI_MODELS, ids=[m[0] for m in CI_MODELS])
def test_confint_vs_lme4(mid, dname, formula, REML, method, data):
    require_r()
    import r_inference_ref as R
    d = data[dname]
    ref = R.confint_ref(formula, d, REML, method)
    fit = _fit(formula, d, REML=REML)
    ci = confint(fit, method=method, quiet=True)
    assert list(ci.index) == ref["names"]
    # relative to the size of the bound, with an absolute floor for bounds near 0
    # (correlations, variance components at their lower bound)
    scale = np.maximum(np.abs(ref["upper"] - ref["lower"]), 1e-3)
    for col, rkey in (("2.5 %", "lower"), ("97.5 %", "upper")):
        got, want = ci[col].to_numpy(), ref[rkey]
        assert np.array_equal(np.isnan(got), np.isnan(want)), (got, want)
        ok = ~np.isnan(want)
        rel = np.abs(got[ok] - want[ok]) / np.maximum(np.abs(want[ok]), scale[ok])
        worst = float(rel.max()) if rel.size else 0.0
        _record(f"confint_{method}", worst)
        assert worst < 1e-3, (mid, col, got, want)
