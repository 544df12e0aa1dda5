"""Solver strategies for the blocked Cholesky factor of Ω(θ) (see deviance.py).

All three factor the same matrix and give the same :class:`Factor`; they
differ in how they store the cross-products of term 1 (the term with most
levels) with the rest, R = [Z_2 .. Z_K X y]:

* :class:`DenseSolver` (``"dense"``): R'Z_1 as a dense (m, levels_1, p_1)
  array.  numpy's per-call cost is lowest, so small models are fastest.
* :class:`BlockedSolver` (``"blocked"``): R'Z_1 sparse, Λ_1 applied as a
  block-diagonal sparse matrix; memory grows with the nonzeros only.
* :class:`PairSolver` (``"pairs"``): the blocked solver, but the Schur
  complement comes from the fixed sparsity pattern of
  R'Z_1 Λ_1 (L_1 L_1')^{-1} Λ_1' Z_1'R: one sparse matrix-vector product per
  evaluation over stored index pairs, plus one BLAS rank-k update for the
  levels with so many entries that dense columns are cheaper
  (:class:`PairStructure`).  Large crossed models gain most: a 1,000,000-row
  model with 6,040 x 3,706 levels needs 40 million pairs (~0.5 GB).

:func:`choose_solver` picks one from the model's size (``solver="auto"``).
"""

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .errors import LmmError
from .threads import ThreadChooser

SOLVERS = ("auto", "dense", "blocked", "pairs")
DENSE_MAX = 250_000        # dense R'Z_1 up to this many entries (m x levels_1 x p_1)
PAIRS_MAX = 40_000_000     # index pairs of the light levels (12 bytes each)
CANCEL = 1e4               # θ²B_l from which R'R - R'Z_1 Λ_1 (..)^{-1} Λ_1'Z_1'R cancels
WITHIN_MAX = 5_000_000     # rows x columns of [Z_2.. X y] for the cancellation-free form


def _chol_inplace(S):
    """Lower Cholesky factor of the C-ordered S, overwriting S.

    Only the lower triangle of S is read.  It is the upper triangle of S.T, which
    is Fortran-ordered, so LAPACK's dpotrf factors it in place (U'U = S, L = U').
    """
    U, info = sla.lapack.dpotrf(S.T, lower=0, clean=1, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError("Schur complement is not positive definite")
    return U.T


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


def _inv_lower_blocks(L):
    """L_l^{-1} for lower-triangular blocks: in closed form for 1 x 1 and 2 x 2
    (at a third of numpy.linalg.inv's per-call cost on a small model)."""
    p = L.shape[1]
    if p > 2:
        return np.linalg.inv(L)
    out = np.zeros_like(L)
    out[:, 0, 0] = 1.0 / L[:, 0, 0]
    if p == 2:
        out[:, 1, 1] = 1.0 / L[:, 1, 1]
        out[:, 1, 0] = -L[:, 1, 0] * out[:, 0, 0] * out[:, 1, 1]
    return out


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
            Wb = T1 @ np.swapaxes(_inv_lower_blocks(L1), 1, 2)      # T1 L_l^{-T}
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
        return dev.make_factor(L1, A, _chol_inplace(np.ascontiguousarray(S)), Ts)

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

    def l21(self, Ts, L1):
        """The block L21 = Λ_rest' R'Z1 Λ1 L1^{-T} of the factor, sparse."""
        dev, T1 = self.dev, Ts[0]
        if dev.p1 == 1:
            W = (T1[0, 0] / L1[:, 0, 0])          # Λ_1 L_1^{-T}, a diagonal
            A = self.RtZ1.multiply(W[None, :]).tocsr()
        else:
            # W_l = T1 L_l^{-T}: block-diagonal, applied to the columns of R'Z1
            Wb = np.einsum("ij,lkj->lik", T1, _inv_lower_blocks(L1))
            q1 = dev.l1 * dev.p1
            W = sp.bsr_matrix((Wb, np.arange(dev.l1), np.arange(dev.l1 + 1)), shape=(q1, q1))
            A = (self.RtZ1 @ W).tocsr()
        return (self.lambda_rest(Ts).T @ A).tocsr() if dev.q_rest else A

    def factor(self, Ts, M, full=True):
        dev = self.dev
        L1 = _l1_blocks(M, dev.p1)
        A = self.l21(Ts, L1)
        if dev.q_rest:
            Lr = self.lambda_rest(Ts)
            S = np.asarray(Lr.T @ (Lr.T @ dev.RtR.T).T)   # Λ' R'R Λ for the rest
        else:
            S = dev.RtR.copy()
        S[np.arange(dev.q_rest), np.arange(dev.q_rest)] += 1.0
        S -= (A @ A.T).toarray()
        return dev.make_factor(L1, A, _chol_inplace(np.ascontiguousarray(S)), Ts)


PAIR_COST = 2.5e-9     # seconds per stored index pair in the sparse matrix-vector product
FMA_COST = 5e-11       # seconds per multiply-add of the dense rank-k update (BLAS syrk)
CHUNK = 1_000_000      # index pairs generated at a time (bounds the transient memory)
HEAVY_MAX = 60_000_000  # entries of the dense columns of the heavy levels
THREADED_MIN = 1_500    # order of the dense Schur complement from which threads are tried


def _ranks(sizes):
    """For groups of the given sizes laid end to end: each position's group and its
    rank inside the group."""
    grp = np.repeat(np.arange(len(sizes)), sizes)
    return grp, np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)


def _lower_pairs(C, cols):
    """Positions (ia, ib) into C.data of every pair of stored entries of a column
    with row(ia) >= row(ib), column by column (rows sorted), and each pair's group.

    Pair t of a column with k entries is (i, j), i >= j, t = i(i+1)/2 + j.
    """
    k = C.indptr[cols + 1] - C.indptr[cols]
    grp, t = _ranks(k * (k + 1) // 2)
    i = ((np.sqrt(8.0 * t + 1.0) - 1.0) / 2.0).astype(np.int64)
    i += (i + 1) * (i + 2) // 2 <= t          # round-off of the square root, either way
    i -= i * (i + 1) // 2 > t
    start = C.indptr[cols][grp]
    return start + i, start + t - i * (i + 1) // 2, grp


def _cross_pairs(C, cols_a, cols_b):
    """As _lower_pairs, for the entries of column cols_a[g] against those of cols_b[g]."""
    ka = C.indptr[cols_a + 1] - C.indptr[cols_a]
    kb = C.indptr[cols_b + 1] - C.indptr[cols_b]
    grp, t = _ranks(ka * kb)
    ia = C.indptr[cols_a][grp] + t // kb[grp]
    ib = C.indptr[cols_b][grp] + t % kb[grp]
    keep = C.indices[ia] >= C.indices[ib]
    return ia[keep], ib[keep], grp[keep]


class PairStructure:
    """G(θ) = R'Z1 Λ1 (L1 L1')^{-1} Λ1' Z1'R = Σ_l C_l M_l C_l', split by level.

    C_l are the p1 columns of C = R'Z1 of level l and M_l = T1 (T1'B_l T1 + I)^{-1} T1'.
    The sparsity pattern of each C_l M_l C_l' is fixed, so for most levels G is one
    sparse matrix-vector product per evaluation over stored index pairs,
    vec(G_lower) = P vec(M) (MixedModels.jl keeps this block sparse for the same
    reason).  A level with k stored entries costs ~k²/2 pairs; a "heavy" level
    (k beyond ~0.14 m here) is cheaper as dense columns C_l K_l' (K_l'K_l = M_l)
    in one BLAS rank-k update of all heavy levels, which also bounds the memory of
    the pairs at ``max_pairs``.
    """

    def __init__(self, RtZ1, l1, p1, m, max_pairs, heavy=None):
        C = RtZ1.tocsc()
        C.sort_indices()
        self.l1, self.p1, self.m = l1, p1, m
        k = np.diff(C.indptr).reshape(l1, p1).sum(axis=1)          # entries per level
        pairs = (k * (k + 1) // 2) * p1
        if heavy is None:
            heavy = k * k * PAIR_COST > m * m * p1 * FMA_COST        # dense is cheaper
            order = np.argsort(-k, kind="stable")
            light_total = np.cumsum(pairs[order][::-1])[::-1]       # pairs if order[i:] light
            over = np.flatnonzero(light_total > max_pairs)
            if over.size:
                heavy[order[:over[-1] + 1]] = True
        self.heavy = np.flatnonzero(heavy)
        self.light = np.flatnonzero(~np.asarray(heavy))
        if self.heavy.size * p1 * m > HEAVY_MAX or pairs[self.light].sum() > max_pairs:
            self.ok = False
            return
        self.ok = True
        hcols = (self.heavy[:, None] * p1 + np.arange(p1)).ravel()
        self.Cheavy = np.asarray(C[:, hcols].toarray().reshape(m, self.heavy.size, p1))
        self.P = self._light_pairs(C)

    def _light_pairs(self, C):
        """The sparse (m², l1 p1²) matrix P of the light levels, built column by column
        (one column per level and pair of its terms' columns: no sorting needed) into
        arrays allocated once."""
        p1, m = self.p1, self.m
        n_col = np.diff(C.indptr)
        k = n_col.reshape(self.l1, p1).sum(axis=1)[self.light]
        cols = self.light[:, None] * p1 + np.arange(p1)
        bound = int(((n_col[cols] * (n_col[cols] + 1) // 2).sum() if p1 == 1 else
                     (n_col[cols].sum(axis=1) ** 2).sum()))
        tgt, val = np.empty(bound, np.int32), np.empty(bound)
        counts = np.zeros(self.l1 * p1 * p1, np.int64)
        filled = 0
        for chunk in np.split(self.light, np.flatnonzero(np.diff(np.cumsum(k * k) // CHUNK)) + 1):
            parts = []
            for a in range(p1):
                for b in range(p1):
                    ca, cb = chunk * p1 + a, chunk * p1 + b
                    ia, ib, grp = _lower_pairs(C, ca) if a == b else _cross_pairs(C, ca, cb)
                    parts.append((ia, ib, (chunk[grp] * p1 + a) * p1 + b))
            ia, ib, kk = (np.concatenate(x) for x in zip(*parts))
            if p1 > 1:
                order = np.argsort(kk, kind="stable")
                ia, ib, kk = ia[order], ib[order], kk[order]
            end = filled + len(ia)
            tgt[filled:end] = C.indices[ia] * m + C.indices[ib]
            val[filled:end] = C.data[ia] * C.data[ib]
            counts += np.bincount(kk, minlength=len(counts))
            filled = end
        if filled < bound:
            tgt, val = tgt[:filled].copy(), val[:filled].copy()
        indptr = np.concatenate([[0], np.cumsum(counts)])
        return sp.csc_matrix((val, tgt, indptr), shape=(m * m, len(counts)))

    def set_rtr(self, RtR):
        """Keep the lower triangle of the sparse R'R as flat positions and values."""
        low = sp.tril(RtR).tocoo()
        self.rtr_at, self.rtr_val = low.row.astype(np.int64) * self.m + low.col, low.data

    def scaled_difference(self, Mblk, K, c=1.0):
        """c (R'R - G(θ)) in the lower triangle, as a new array; Mblk the M_l and K the
        K_l (l1, p1, p1)."""
        S = self.P @ (Mblk.ravel() * -c)
        S[self.rtr_at] += c * self.rtr_val        # the positions are distinct
        S = S.reshape(self.m, self.m)
        if self.heavy.size:
            # dense columns D = [C_l K_l'] of the heavy levels: S -= c D D' (the lower
            # triangle of S is the upper triangle of S.T, which is Fortran-ordered for BLAS)
            D = np.einsum("mla,lba->lbm", self.Cheavy, K[self.heavy])
            D = D.reshape(-1, self.m).T
            S = sla.blas.dsyrk(-c, D, beta=1.0, c=S.T, lower=0, overwrite_c=1).T
        return S


def pair_structure(RtZ1, l1, p1, m, max_pairs=PAIRS_MAX, heavy=None):
    """The :class:`PairStructure` of a model, or None if it would not fit in memory."""
    ps = PairStructure(RtZ1, l1, p1, m, max_pairs, heavy)
    return ps if ps.ok else None


class PairSolver(BlockedSolver):
    """The blocked solver, with the Schur complement from the pair structure."""

    name = "pairs"

    def __init__(self, dev, RtZ1, pairs):
        super().__init__(dev, RtZ1)
        self.pairs = pairs
        pairs.set_rtr(dev.RtR_sparse)
        self.scalar_rest = all(b.p == 1 for b in dev.blocks[1:])
        # the dense factor of order m is most of an evaluation's time: from this size
        # threaded BLAS may halve it (threads.ThreadChooser times 1 thread and all cores)
        self.threads = ThreadChooser() if dev.m >= THREADED_MIN else None

    def factor(self, Ts, M, full=True):
        L1 = _l1_blocks(M, self.dev.p1)
        # L21 (needed for β̂, u and conditional variances) is cheap; only its
        # product L21 L21' is replaced by the pair structure
        L21 = self.l21(Ts, L1) if full else None
        S = self._schur(Ts, L1)
        L22 = _chol_inplace(S) if self.threads is None else self.threads(_chol_inplace, S)
        return self.dev.make_factor(L1, L21, L22, Ts)

    def _schur(self, Ts, L1):
        """The dense Schur complement S from the pair structure."""
        dev, T1 = self.dev, Ts[0]
        K = np.linalg.solve(L1, np.broadcast_to(T1.T, L1.shape))     # L_l^{-1} T1'
        Mblk = np.einsum("lki,lkj->lij", K, K)                       # M_l
        # lower triangle only: the Cholesky reads nothing else
        k = dev.q_rest
        if k and self.scalar_rest and len(Ts) == 2 and Ts[1][0, 0] > 0:
            # one more scalar term: Λ_rest'(R'R - G)Λ_rest is θ² (R'R - G) on its block,
            # θ (R'R - G) against X and y, and R'R - G on X and y
            t = Ts[1][0, 0]
            S = self.pairs.scaled_difference(Mblk, K, t * t)
            S[k:, :k] /= t
            S[k:, k:] /= t * t
        else:
            S = self.pairs.scaled_difference(Mblk, K)
            if k and self.scalar_rest:
                d = np.ones(dev.m)
                start = 0
                for b, T in zip(dev.blocks[1:], Ts[1:]):
                    d[start:start + b.nlevels] = T[0, 0]
                    start += b.nlevels
                S *= d[:, None]
                S *= d[None, :]
            elif k:
                S = np.tril(S) + np.tril(S, -1).T
                Lr = self.lambda_rest(Ts)
                S = np.asarray(Lr.T @ (Lr.T @ S).T)
        S[np.arange(dev.q_rest), np.arange(dev.q_rest)] += 1.0
        return S


def choose_solver(dev, RtZ1, solver="auto"):
    """The solver strategy for a model: by name, or by size for ``"auto"``.

    ``"auto"``: dense while m x levels_1 x p_1 <= 250,000 (m the columns of
    [Z_2.. X y]); else the pair structure (at most 40 million index pairs, the
    heaviest levels as dense columns); else blocked sparse.
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
        raise LmmError(f"the pair structure of this model would need more than {PAIRS_MAX:,} "
                       f"index pairs and {HEAVY_MAX:,} dense entries; use solver='blocked' or 'auto'")
    return BlockedSolver(dev, RtZ1)
