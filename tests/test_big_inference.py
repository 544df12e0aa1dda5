"""Satterthwaite and Kenward-Roger without n x n matrices (issue 14).

(a) The q x q algebra equals the textbook n x n formulas: Kenward-Roger's Φ, P_r,
    Q_rs, K_rs from lmmlite.kenward_roger against tests/kr_dense.py, and the exact
    Satterthwaite derivatives (satterthwaite_exact.py) against lmerTest's way,
    Richardson-extrapolated differences of the deviance, on small models.
(b) lmerTest / pbkrtest on InstEval-sized models (tests/golden/big_inference_ref.json,
    from tests/r_big_inference_ref.py), every fit evaluated at R's θ: the simulated
    InstEval-shaped data without R; lme4's InstEval itself, exported through rpy2,
    where R is installed.  pbkrtest forms n x n matrices, so Kenward-Roger is
    compared on subsets of 2,500-3,000 rows.
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bigdata  # noqa: E402
import simdata  # noqa: E402
from kr_dense import dense_kr_pieces  # noqa: E402
from lmmlite import lmer  # noqa: E402
from lmmlite.inference import SatterthwaiteModel, fixef_ddf, use_exact  # noqa: E402
from lmmlite.kenward_roger import KenwardRoger, kr_adjust, kr_pieces  # noqa: E402

GOLDEN = json.loads((Path(__file__).resolve().parent / "golden" / "big_inference_ref.json").read_text())
REF = {m["key"]: m for m in GOLDEN["models"]}

SMALL = [  # (id, data, formula, REML)
    ("slope", "sleep", "Reaction ~ Days + (1 + Days | Subject)", True),
    ("slope_ML", "sleep", "Reaction ~ Days + (1 + Days | Subject)", False),
    ("nested", "nested", "y ~ x + (1 | region/clinic)", True),
    ("crossed_slopes", "crossed", "y ~ x + (x | clinic) + (1 | doctor)", True),
    ("crossed_slopes_ML", "crossed", "y ~ x + (x | clinic) + (1 | doctor)", False),
    ("factors", "factors", "y ~ a * b + x + (1 | g)", True),
    ("factor_slope_ML", "factors", "y ~ a + x + (1 + x | g)", False),
    ("singular", "singular", "y ~ x + (1 | g)", True),
]


def _data(name):
    return {"sleep": simdata.sleepstudy, "nested": simdata.nested, "crossed": simdata.crossed,
            "factors": simdata.factors, "singular": simdata.singular}[name]()


def _small_fit(dname, formula, REML, theta=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lmer(formula, _data(dname), REML=REML, **kw)
    return fit if theta is None else fit.at_theta(theta)


def _rel(a, b):
    """Largest difference relative to the largest entry of b (matrices), or entrywise (vectors)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = np.max(np.abs(b))
    return float(np.max(np.abs(a - b)) / (scale if scale > 0 else 1.0))


def _entrywise(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


# --- (a) the q x q algebra against the n x n formulas ---------------------------------

KR_CASES = [pytest.param(m[1], m[2], None, {}, id=m[0]) for m in SMALL if m[3]] + [
    # a variance component at its bound (θ = 0: Λ singular) and prior weights
    pytest.param("crossed", "y ~ x + (1 | clinic) + (1 | doctor)", [0.0, 1.1], {}, id="theta0"),
    # below woodbury.DIRECT_MIN: G - GMG rather than the scalings of I - A⁻¹
    pytest.param("crossed", "y ~ x + (1 | clinic) + (1 | doctor)", [0.004, 1.1], {},
                 id="theta_small"),
    pytest.param("sleep", "Reaction ~ Days + (1 + Days | Subject)", None,
                 {"weights": np.linspace(0.5, 2.0, 180)}, id="weighted"),
]


@pytest.mark.parametrize("dname,formula,theta,kw", KR_CASES)
def test_kenward_roger_woodbury_equals_dense(dname, formula, theta, kw):
    fit = _small_fit(dname, formula, True, theta, **kw)
    Phi, P, Q, K = kr_pieces(fit.devfun, np.asarray(fit.theta), fit.sigma)
    dPhi, dP, dQ, dK = dense_kr_pieces(fit)
    assert _rel(Phi, dPhi) < 1e-10
    assert max(_rel(a, b) for a, b in zip(P, dP)) < 1e-10
    assert max(_rel(Q[k], dQ[k]) for k in dQ) < 1e-10
    assert _rel(K, dK) < 1e-10
    kr = KenwardRoger(fit)
    W, adj = kr_adjust(dPhi, dP, dQ, dK)
    assert _rel(kr.vcov_adj, adj) < 1e-10
    assert _rel(kr.W, W) < 1e-8
    np.testing.assert_allclose(kr.vcov, fit.vcov.to_numpy(), rtol=1e-9)


@pytest.mark.parametrize("mid,dname,formula,REML", SMALL, ids=[m[0] for m in SMALL])
def test_exact_satterthwaite_equals_richardson(mid, dname, formula, REML):
    fit = _small_fit(dname, formula, REML)
    assert not use_exact(fit.devfun)        # small models keep lmerTest's differences
    ex = SatterthwaiteModel(fit, method="exact")
    ri = SatterthwaiteModel(fit, method="richardson")
    assert (ex.method, ri.method) == ("exact", "richardson")
    # Richardson's differences are good to ~1e-9; the df to ~1e-8
    assert _rel(ex.hessian, ri.hessian) < 1e-7
    assert max(_rel(a, b) for a, b in zip(ex.jac, ri.jac)) < 1e-7
    p = len(fit.fixef)
    df_ex = [ex.ddf(e) for e in np.eye(p)]
    df_ri = [ri.ddf(e) for e in np.eye(p)]
    assert _entrywise(df_ex, df_ri) < 1e-6


def test_satterthwaite_method_is_checked():
    fit = _small_fit("sleep", "Reaction ~ Days + (1 | Subject)", True)
    with pytest.raises(Exception, match="method must be"):
        SatterthwaiteModel(fit, method="numDeriv")


# --- (b) against lmerTest / pbkrtest at InstEval's size ---------------------------------

def _check(fit, ref, kr):
    """Satterthwaite (and Kenward-Roger) columns of fit against R's record ``ref``."""
    np.testing.assert_allclose(fit.fixef.to_numpy(), ref["fixef"], rtol=1e-6, atol=1e-9)
    assert list(fit.fixef.index) == ref["fixef_names"]
    df, se = fixef_ddf(fit, "Satterthwaite")
    assert _entrywise(se, ref["se"]) < 1e-6
    assert _entrywise(df, ref["satt_df"]) < 1e-4, (df, ref["satt_df"])
    p = fit.summary(ddf="Satterthwaite").coefficients["Pr(>|t|)"].to_numpy()
    assert _entrywise(p, ref["satt_p"]) < 1e-3
    if kr:
        df, se = fixef_ddf(fit, "Kenward-Roger")
        assert _entrywise(se, ref["kr_se"]) < 1e-5
        assert _entrywise(df, ref["kr_df"]) < 1e-4, (df, ref["kr_df"])
        p = fit.summary(ddf="Kenward-Roger").coefficients["Pr(>|t|)"].to_numpy()
        assert _entrywise(p, ref["kr_p"]) < 1e-3


def _ref_fit(key, data):
    ref = REF[key]
    return bigdata.fit_at(ref["formula"], data, ref["theta"], REML=ref["REML"]), ref


@pytest.fixture(scope="module")
def like():
    return bigdata.like()


@pytest.mark.parametrize("key", ["like_ML", "like_REML"])
def test_simulated_insteval_satterthwaite(key, like):
    fit, ref = _ref_fit(key, like)
    assert use_exact(fit.devfun)
    _check(fit, ref, kr=False)


def test_simulated_subset_kenward_roger():
    fit, ref = _ref_fit("like_3000_REML", bigdata.like_3000())
    _check(fit, ref, kr=True)


@pytest.fixture(scope="module")
def insteval(requires_r):
    from r_design_ref import r_session
    ro = r_session()
    return {"InstEval": bigdata.insteval(ro), "InstEval_2500": bigdata.insteval(ro, 2500)}


@pytest.mark.requires_r
@pytest.mark.parametrize("key", ["insteval_ML", "insteval_REML", "insteval_full_REML"])
def test_insteval_satterthwaite(key, insteval):
    fit, ref = _ref_fit(key, insteval["InstEval"])
    _check(fit, ref, kr=False)


@pytest.mark.requires_r
@pytest.mark.parametrize("key", ["insteval_2500_REML", "insteval_2500_full_REML"])
def test_insteval_subset_kenward_roger(key, insteval):
    fit, ref = _ref_fit(key, insteval["InstEval_2500"])
    _check(fit, ref, kr=True)
