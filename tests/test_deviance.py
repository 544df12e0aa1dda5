"""The three solver strategies of the profiled deviance agree (dense, blocked, pair structure),
and the criterion matches a direct dense computation of Bates et al. (2015), eq. 34/41."""

import numpy as np
import pytest
import scipy.sparse as sp

import simdata
from lmmlite.deviance import Deviance
from lmmlite.design import build_design
from lmmlite.formula import parse_formula

CASES = [
    ("crossed", "y ~ x + (x | clinic) + (1 | doctor)"),
    ("crossed", "y ~ x + (1 | clinic) + (x | doctor)"),
    ("nested", "y ~ x + (1 | region/clinic)"),
    ("factors", "y ~ a * b + (1 + x | g)"),
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
]


def _build(dataset, formula, REML, mode):
    design = build_design(parse_formula(formula), getattr(simdata, dataset)())
    dev = Deviance(design.blocks, design.X, design.y, REML=REML, solver=mode)
    assert mode == "auto" or dev.solver.name == mode
    return dev


def _direct(dev, theta):
    """Dense textbook evaluation: Ω = [ZΛ X y]'[ZΛ X y] + diag(I, 0, 0)."""
    Ts = dev.split(theta)
    Z = sp.hstack([b.Z() for b in dev.blocks]).toarray()
    Lam = sp.block_diag([sp.kron(sp.identity(b.nlevels), T) for b, T in zip(dev.blocks, Ts)]).toarray()
    W = np.column_stack([Z @ Lam, dev.X, dev.y])
    q = Z.shape[1]
    Om = W.T @ W
    Om[np.arange(q), np.arange(q)] += 1
    L = np.linalg.cholesky(Om)
    d = np.diag(L)
    n, p = dev.n, dev.p
    r2 = d[-1] ** 2
    ldZ = 2 * np.log(d[:q]).sum()
    if dev.REML:
        return ldZ + 2 * np.log(d[q:q + p]).sum() + (n - p) * (1 + np.log(2 * np.pi * r2 / (n - p)))
    return ldZ + n * (1 + np.log(2 * np.pi * r2 / n))


@pytest.mark.parametrize("dataset,formula", CASES)
@pytest.mark.parametrize("REML", [True, False])
def test_paths_agree(dataset, formula, REML):
    rng = np.random.default_rng(0)
    devs = {mode: _build(dataset, formula, REML, mode) for mode in ("dense", "blocked", "pairs")}
    lower = devs["dense"].lower
    for _ in range(3):
        theta = np.where(np.isfinite(lower), rng.uniform(0.1, 2, lower.size), rng.normal(0, .5, lower.size))
        ref = _direct(devs["dense"], theta)
        for mode, dev in devs.items():
            assert dev(theta) == pytest.approx(ref, rel=1e-10), mode
        # the full factor (used for β̂ and u) agrees between paths too
        b_dense, u_dense = devs["dense"].solve(devs["dense"].factor(theta))
        b_sparse, u_sparse = devs["blocked"].solve(devs["blocked"].factor(theta))
        np.testing.assert_allclose(b_sparse, b_dense, rtol=1e-9)
        np.testing.assert_allclose(u_sparse, u_dense, rtol=1e-7, atol=1e-9)


def test_auto_solver_by_size():
    """Small models get the dense strategy; the choice is one function, by size."""
    assert _build("sleepstudy", "Reaction ~ Days + (Days | Subject)", True, "auto").solver.name == "dense"


def test_unknown_solver_is_an_lmm_error():
    from lmmlite.errors import LmmError
    with pytest.raises(LmmError, match="unknown solver 'qr'"):
        _build("sleepstudy", "Reaction ~ Days + (Days | Subject)", True, "qr")


def test_pairs_full_factor_is_the_blocked_one():
    """The pair structure serves the criterion; the full factor (β̂, u) is the blocked one."""
    dev = _build("crossed", "y ~ x + (x | clinic) + (1 | doctor)", True, "pairs")
    theta = dev.start * 0.7
    assert dev.factor(theta, full=False).L21 is None
    assert dev.factor(theta).L21 is not None
    assert dev.criterion(dev.factor(theta)) == pytest.approx(dev(theta), rel=1e-10)
