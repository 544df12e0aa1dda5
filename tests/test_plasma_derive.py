"""The cheap parts of the plasma derivation (data/reconstruct/plasma_derive.py).

The full derivation (minutes) is not run here; these check its pieces: the
closed-form criterion against lmmlite's deviance, the minimax LP, step 1's start
and a few of its iterations, the exact sums of the row constructions, and that
the committed data/plasma.csv passes plasma.py's verification.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

from lmmlite import load, lmer

RECON = Path(__file__).resolve().parent.parent / "data" / "reconstruct"
sys.path.insert(0, str(RECON))

import _minimax  # noqa: E402
import plasma  # noqa: E402
import plasma_place  # noqa: E402
import plasma_split  # noqa: E402
import plasma_step1  # noqa: E402
from _lmm import Grouped  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return load("plasma")


@pytest.mark.parametrize("formula, zcols, thetas", [
    ("conc ~ age + (1 | group)", [0], [[0.5], [5.1], [20.0]]),
    ("conc ~ age + (1 + age | group)", [0, 1], [[1.0, 0.0, 1.0], [7.3, -0.048, 0.053], [2.0, 0.3, 0.01]]),
])
def test_closed_form_criterion_is_lmmlites_deviance(data, formula, zcols, thetas):
    s = plasma.group_stats(data)
    closed = Grouped(s["n"], s["xm"], s["ym"], s["wxx"], s["wxy"], s["Wyy"], zcols)
    model = lmer(formula, data).model
    for th in thetas:
        assert closed.deviance(np.array(th)).real == pytest.approx(model.deviance(th), rel=1e-10)


def test_minimax_lp_on_a_chebyshev_line():
    # best line through (0,0), (1,1), (2,0) in the max norm: y = 1/2, worst error 1/2
    x, y = np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 0.0])
    z, worst, _ = _minimax.minimax(lambda c: y - c[0] - c[1] * x, np.array([3.0, 1.0]), [1.0, 1.0],
                                   radius=1.0)
    assert worst == pytest.approx(0.5, abs=1e-9)
    assert z == pytest.approx([0.5, 0.0], abs=1e-9)


def test_step1_start_and_iterations():
    """The closed-form start is near the printed numbers and a few LP steps bring every
    one of the 57 inside its rounding interval."""
    z0 = plasma_step1.start()
    problem = plasma_step1.Step1()
    assert np.max(np.abs(problem.margins(z0))) < 200
    scale = np.r_[np.full(8, 1.0), 100.0, 100.0, 100.0]
    z, worst, _ = _minimax.minimax(problem.margins, z0, scale, radius=1e-3, maxit=3)
    assert worst < 1


def test_rows_from_stats_have_the_sums():
    xm, ym = np.array([50.0, 20.0]), np.array([200.0, 150.0])
    wxx, wxy, wyy = np.array([150.0, 120.0]), np.array([-450.0, -230.0]), np.array([1900.0, 1100.0])
    s = plasma.group_stats(plasma_step1.rows_from_stats(xm, ym, wxx, wxy, wyy))
    for got, want in [(s["xm"], xm), (s["ym"], ym), (s["wxx"], wxx), (s["wxy"], wxy)]:
        assert got == pytest.approx(want, rel=1e-12)
    assert s["Wyy"] == pytest.approx(wyy.sum(), rel=1e-12)


def test_placement_keeps_every_group_sum(data):
    s = plasma.group_stats(data)
    fits = {name: (np.zeros(4), np.zeros(4), 1.0) for name in plasma.QUANTILES}
    problem = plasma_place.Placement(s, fits)
    p = np.random.default_rng(3).standard_normal(84)
    got = plasma.group_stats(problem.frame(p))
    for key in ("xm", "ym", "wxx", "wxy"):
        assert got[key] == pytest.approx(s[key], rel=1e-11)
    assert got["Wyy"] == pytest.approx(s["Wyy"], rel=1e-11)


def test_theta_from_the_printed_variance_components():
    th = plasma_split.theta_printed()
    lam = np.array([[th[0], 0.0], [th[1], th[2]]])
    S = 77.1173 * lam @ lam.T
    assert S[0, 0] == pytest.approx(4113.8342) and S[1, 1] == pytest.approx(0.3925)
    assert S[0, 1] / np.sqrt(S[0, 0] * S[1, 1]) == pytest.approx(-0.67)


def test_committed_plasma_csv_verifies(capsys):
    assert plasma.verify(plasma.pd.read_csv(plasma.CSV), plasma.STEP1) == 0
