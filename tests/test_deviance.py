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
    ("crossed", "y ~ x + (1 | clinic) + (1 | doctor) + (1 | clinic:doctor)"),
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


@pytest.mark.parametrize("dataset,formula", CASES[:3])
@pytest.mark.parametrize("share", [0.0, 0.3, 1.0])
def test_heavy_levels_as_dense_columns_agree(dataset, formula, share):
    """Levels of term 1 taken as dense columns (a BLAS rank-k update) instead of index
    pairs give the same criterion and factor, whatever the split."""
    from lmmlite.solvers import PairSolver, pair_structure
    dev = _build(dataset, formula, False, "pairs")
    ref = _build(dataset, formula, False, "dense")
    heavy = np.random.default_rng(1).uniform(size=dev.l1) < share
    dev.solver = PairSolver(dev, dev.solver.RtZ1,
                            pair_structure(dev.solver.RtZ1, dev.l1, dev.p1, dev.m, heavy=heavy))
    assert dev.solver.pairs.heavy.size == heavy.sum()
    for scale in (0.3, 1.0, 2.5):
        theta = np.where(np.isfinite(dev.lower), scale, 0.2) * dev.start
        assert dev(theta) == pytest.approx(ref(theta), rel=1e-11)
        np.testing.assert_allclose(dev.solve(dev.factor(theta))[0], ref.solve(ref.factor(theta))[0],
                                   rtol=1e-9)


def _skewed_crossed(seed=3, users=80, items=60):
    """Users with 1 to 40 ratings of 60 items: a few heavy levels among many light ones."""
    rng = np.random.default_rng(seed)
    rows = [(u, i) for u in range(users)
            for i in rng.choice(items, size=min(items, 1 + int(rng.pareto(1.2) * 2)), replace=False)]
    u, i = np.array(rows).T
    x = rng.normal(size=u.size)
    y = 0.3 * x + rng.normal(size=users)[u] + rng.normal(size=items)[i] + rng.normal(size=u.size)
    import pandas as pd
    return pd.DataFrame({"y": y, "x": x, "user": [f"u{a}" for a in u], "item": [f"i{b}" for b in i]})


def test_heavy_levels_chosen_by_cost_and_memory():
    """A level with many entries is cheaper as dense columns; a cap on the stored pairs
    moves the heaviest levels to dense columns first; the criterion does not change."""
    from lmmlite.solvers import PairSolver, pair_structure
    design = build_design(parse_formula("y ~ x + (1 | user) + (1 | item)"), _skewed_crossed())
    dev = Deviance(design.blocks, design.X, design.y, REML=True, solver="pairs")
    ref = Deviance(design.blocks, design.X, design.y, REML=True, solver="dense")
    C = dev.solver.RtZ1
    k = np.diff(C.tocsc().indptr)
    free = pair_structure(C, dev.l1, dev.p1, dev.m, max_pairs=10 ** 9)
    assert 0 < free.heavy.size < dev.l1 / 2
    cap = int((k[free.light] * (k[free.light] + 1) // 2).sum() // 3)
    capped = pair_structure(C, dev.l1, dev.p1, dev.m, max_pairs=cap)
    assert capped.heavy.size > free.heavy.size
    assert k[capped.heavy].min() >= k[capped.light].max()
    assert capped.P.nnz <= cap
    dev.solver = PairSolver(dev, C, capped)
    theta = np.array([0.8, 1.3])
    assert dev(theta) == pytest.approx(ref(theta), rel=1e-11)
