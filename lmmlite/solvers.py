"""Solver strategies for the blocked Cholesky factor of Ω(θ) (see deviance.py).

All three factor the same matrix and give the same :class:`Factor`; they
differ in how they store the cross-products of term 1 (the term with most
levels) with the rest, R = [Z_2 .. Z_K X y]:

* :class:`DenseSolver` (``"dense"``): R'Z_1 as a dense (m, levels_1, p_1)
  array.  numpy's per-call cost is lowest, so small models are fastest.
* :class:`BlockedSolver` (``"blocked"``): R'Z_1 sparse, Λ_1 applied as a
  block-diagonal sparse matrix; memory grows with the nonzeros only.
* :class:`PairSolver` (``"pairs"``): the blocked solver, but the criterion
  alone (``full=False``, every optimizer step) comes from the fixed sparsity
  pattern of R'Z_1 Λ_1 (L_1 L_1')^{-1} Λ_1' Z_1'R: one sparse matrix-vector
  product per evaluation.  Large crossed models gain most.

:func:`choose_solver` picks one from the model's size (``solver="auto"``).
"""

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .errors import LmmError

SOLVERS = ("auto", "dense", "blocked", "pairs")
DENSE_MAX = 250_000        # dense R'Z_1 up to this many entries (m x levels_1 x p_1)
PAIRS_MAX = 60_000_000     # pair structure up to this many index pairs
CANCEL = 1e4               # θ²B_l from which R'R - R'Z_1 Λ_1 (..)^{-1} Λ_1'Z_1'R cancels
WITHIN_MAX = 5_000_000     # rows x columns of [Z_2.. X y] for the cancellation-free form


def _chol_inplace(S):
    """Lower Cholesky factor of S, overwriting S (LAPACK dpotrf reads the lower triangle)."""
    L, info = sla.lapack.dpotrf(S, lower=1, clean=1, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError("Schur complement is not positive definite")
    return L


@dataclass
class Factor:
    """The blocked Cholesky factor of Ω(θ) for one θ."""

    L1: np.ndarray      # (levels_1, p1, p1) lower factors of term 1's diagonal blocks
    L21: object         # (m, q1) dense or sparse: rows of [Z_2.. X y] against term 1
    L22: np.ndarray     # (m, m) dense lower factor of the Schur complement
    q_rest: int         # number of random-effects columns after term 1
    p: int              # number of fixed effects
    Ainv: object = None  # undoes the centring of X (see Deviance._centre)
    Ts: list = None      # the T_k of this θ

    @property
    def r2(self):
        return self.L22[-1, -1] ** 2

    def logdet_Z(self):
        d1 = np.diagonal(self.L1, axis1=1, axis2=2)
        d2 = np.diag(self.L22)[:self.q_rest]
        return 2.0 * (np.log(d1).sum() + np.log(d2).sum())

    def logdet_X(self):
        return 2.0 * np.log(np.diag(self.L22)[self.q_rest:self.q_rest + self.p]).sum()

    def RX(self):
        """Upper-triangular R_X with R_X'R_X = X'V^{-1}X σ² (lme4's RX)."""
        k = self.q_rest
        R = self.L22[k:k + self.p, k:k + self.p].T
        return R if self.Ainv is None else R @ self.Ainv


def _l1_blocks(M, p1):
    """L_l with L_l L_l' = T1'B_l T1 + I for every level of term 1."""
    return np.sqrt(M) if p1 == 1 else np.linalg.cholesky(M)


class DenseSolver:
    """Dense arrays throughout (small models)."""

    name = "dense"

    def __init__(self, dev, RtZ1):
        self.dev = dev
        self.RtZ1 = RtZ1.toarray().reshape(dev.m, dev.l1, dev.p1)
        self.lr_index = self._rest_index()

    def _rest_index(self):
        """Positions of the entries of each T_k in the dense block-diagonal Λ_rest."""
        out, start = [], 0
        for b in self.dev.blocks[1:]:
            i, j = np.tril_indices(b.p)
            base = start + np.arange(b.nlevels)[:, None] * b.p
            out.append(((base + i).ravel(), (base + j).ravel(), i, j, b.nlevels))
            start += b.nlevels * b.p
        return out

    def _lambda_rest(self, Ts):
        Lr = np.eye(self.dev.m)
        for (rows, cols, i, j, nl), T in zip(self.lr_index, Ts[1:]):
            Lr[rows, cols] = np.tile(T[i, j], nl)
        return Lr

    def factor(self, Ts, M, full=True):
        dev, T1 = self.dev, Ts[0]
        L1 = _l1_blocks(M, dev.p1)
        if dev.p1 == 1:
            A = self.RtZ1[:, :, 0] * (T1[0, 0] / L1[:, 0, 0])[None, :]
        else:
            Wb = T1 @ np.swapaxes(np.linalg.inv(L1), 1, 2)          # T1 L_l^{-T}
            A = np.matmul(self.RtZ1.transpose(1, 0, 2), Wb)          # (l, m, p1)
            A = A.transpose(1, 0, 2).reshape(dev.m, -1)
        core = self._core_without_cancellation(T1[0, 0]) if dev.p1 == 1 else None
        Lr = self._lambda_rest(Ts) if dev.q_rest else None
        if core is not None:
            S = core if Lr is None else Lr.T @ core @ Lr
        elif Lr is not None:
            S = Lr.T @ dev.RtR @ Lr
        else:
            S = dev.RtR.copy()
        if Lr is not None:
            A = Lr.T @ A
        S[np.arange(dev.q_rest), np.arange(dev.q_rest)] += 1.0
        if core is None:
            S -= A @ A.T
        return dev.make_factor(L1, A, np.linalg.cholesky(S), Ts)

    def _core_without_cancellation(self, t):
        """R'R - R'Z_1 Λ_1 (Λ_1'Z_1'Z_1Λ_1 + I)^{-1} Λ_1'Z_1'R for a scalar term 1 at large θ.

        With B_l = z_l'z_l and s_l = R_l'z_l per level, t²/(1 + t²B_l) =
        1/B_l - 1/(B_l(1 + t²B_l)), so the matrix is W + Σ_l s_l s_l'/(B_l(1 + t²B_l))
        with W = Σ_l (R_l - z_l s_l'/B_l)'(R_l - z_l s_l'/B_l), the scatter of R within
        the levels, summed once from the rows.  Both terms are sums of positive parts:
        nothing cancels, where R'R minus the second form loses log10(t²B_l) digits
        (e.g. log|R_X| of the intercept at θ ~ 1e6).  None while t²B_l < 1e4.
        """
        B = self.dev.B1[:, 0, 0]
        if t * t * B.max() < CANCEL:
            return None
        W = self.dev.within_scatter()
        if W is None:
            return None
        C = self.RtZ1[:, :, 0]
        return W + (C / (B * (1.0 + t * t * B))) @ C.T


class BlockedSolver:
    """Sparse R'Z_1 and a block-diagonal sparse Λ_1 (large models)."""

    name = "blocked"

    def __init__(self, dev, RtZ1):
        self.dev = dev
        self.RtZ1 = RtZ1

    def lambda_rest(self, Ts):
        """Sparse block-diagonal Λ for terms 2..K, identity on X and y."""
        dev = self.dev
        parts = [sp.kron(sp.identity(b.nlevels), T, format="csr")
                 for b, T in zip(dev.blocks[1:], Ts[1:])]
        parts.append(sp.identity(dev.p + 1, format="csr"))
        return sp.block_diag(parts, format="csr")

    def factor(self, Ts, M, full=True):
        dev, T1 = self.dev, Ts[0]
        L1 = _l1_blocks(M, dev.p1)
        if dev.p1 == 1:
            W = (T1[0, 0] / L1[:, 0, 0])          # Λ_1 L_1^{-T}, a diagonal
            A = self.RtZ1.multiply(W[None, :]).tocsr()
        else:
            # W_l = T1 L_l^{-T}: block-diagonal, applied to the columns of R'Z1
            Wb = np.einsum("ij,lkj->lik", T1, np.linalg.inv(L1))
            q1 = dev.l1 * dev.p1
            W = sp.bsr_matrix((Wb, np.arange(dev.l1), np.arange(dev.l1 + 1)), shape=(q1, q1))
            A = (self.RtZ1 @ W).tocsr()
        if dev.q_rest:
            Lr = self.lambda_rest(Ts)
            A = (Lr.T @ A).tocsr()
            S = np.asarray(Lr.T @ (Lr.T @ dev.RtR.T).T)   # Λ' R'R Λ for the rest
        else:
            S = dev.RtR.copy()
        S[np.arange(dev.q_rest), np.arange(dev.q_rest)] += 1.0
        S -= (A @ A.T).toarray()
        return dev.make_factor(L1, A, np.linalg.cholesky(S), Ts)


def pair_structure(RtZ1, l1, p1, m, max_pairs=PAIRS_MAX):
    """Index pairs for G(θ) = R'Z1 Λ1 (L1 L1')^{-1} Λ1' Z1'R, a sum over levels.

    G = Σ_l Σ_ab (M_l)_ab r_(l,a) r_(l,b)' with r_c the sparse columns of R'Z1
    and M_l = T1 (T1'B_l T1 + I)^{-1} T1'.  The pattern is fixed, so each
    evaluation is one sparse matrix-vector product, vec(G_lower) = P vec(M)
    (MixedModels.jl keeps this block sparse for the same reason).  None if
    there would be more than ``max_pairs`` pairs.
    """
    C = RtZ1.tocsc()
    C.sort_indices()
    counts = np.diff(C.indptr).reshape(l1, p1)
    if int((counts.sum(axis=1) ** 2).sum()) > max_pairs:
        return None
    tgt, val, key = [], [], []
    for lev in range(l1):
        for a in range(p1):
            ca = lev * p1 + a
            ra, va = C.indices[C.indptr[ca]:C.indptr[ca + 1]], C.data[C.indptr[ca]:C.indptr[ca + 1]]
            for b in range(p1):
                cb = lev * p1 + b
                rb = C.indices[C.indptr[cb]:C.indptr[cb + 1]]
                vb = C.data[C.indptr[cb]:C.indptr[cb + 1]]
                low = ra[:, None] >= rb[None, :]       # the Cholesky reads the lower triangle
                tgt.append((ra[:, None] * m + rb[None, :])[low])
                val.append(np.outer(va, vb)[low])
                key.append(np.full(int(low.sum()), (lev * p1 + a) * p1 + b))
    return sp.csr_matrix((np.concatenate(val), (np.concatenate(tgt), np.concatenate(key))),
                         shape=(m * m, l1 * p1 * p1))


class PairSolver(BlockedSolver):
    """The blocked solver, with the criterion-only factor from the pair structure."""

    name = "pairs"

    def __init__(self, dev, RtZ1, pairs):
        super().__init__(dev, RtZ1)
        self.pairs = pairs
        self.scalar_rest = all(b.p == 1 for b in dev.blocks[1:])

    def factor(self, Ts, M, full=True):
        if full:        # L21 is needed (β̂, u, conditional variances)
            return super().factor(Ts, M)
        L1 = _l1_blocks(M, self.dev.p1)
        return self.dev.make_factor(L1, None, _chol_inplace(self._schur(Ts, L1)), Ts)

    def _schur(self, Ts, L1):
        """The dense Schur complement S from the pair structure."""
        dev, T1 = self.dev, Ts[0]
        K = np.linalg.solve(L1, np.broadcast_to(T1.T, L1.shape))     # L_l^{-1} T1'
        Mblk = np.einsum("lki,lkj->lij", K, K)                       # M_l
        # lower triangle only: the Cholesky reads nothing else
        S = dev.RtR - (self.pairs @ Mblk.ravel()).reshape(dev.m, dev.m)
        if dev.q_rest:
            if self.scalar_rest:
                d = np.ones(dev.m)
                start = 0
                for b, T in zip(dev.blocks[1:], Ts[1:]):
                    d[start:start + b.nlevels] = T[0, 0]
                    start += b.nlevels
                S *= d[:, None]
                S *= d[None, :]
            else:
                S = np.tril(S) + np.tril(S, -1).T
                Lr = self.lambda_rest(Ts)
                S = np.asarray(Lr.T @ (Lr.T @ S).T)
        S[np.arange(dev.q_rest), np.arange(dev.q_rest)] += 1.0
        return S


def choose_solver(dev, RtZ1, solver="auto"):
    """The solver strategy for a model: by name, or by size for ``"auto"``.

    ``"auto"``: dense while m x levels_1 x p_1 <= 250,000 (m the columns of
    [Z_2.. X y]); else the pair structure while it has at most 60 million
    index pairs; else blocked sparse.
    """
    if solver not in SOLVERS:
        raise LmmError(f"unknown solver {solver!r}: use one of {', '.join(SOLVERS)}")
    if solver == "dense" or (solver == "auto" and dev.m * dev.l1 * dev.p1 <= DENSE_MAX):
        return DenseSolver(dev, RtZ1)
    if solver == "blocked":
        return BlockedSolver(dev, RtZ1)
    pairs = pair_structure(RtZ1, dev.l1, dev.p1, dev.m)
    if pairs is not None:
        return PairSolver(dev, RtZ1, pairs)
    if solver == "pairs":
        raise LmmError(f"the pair structure of this model would have more than {PAIRS_MAX:,} "
                       "index pairs; use solver='blocked' or 'auto'")
    return BlockedSolver(dev, RtZ1)
