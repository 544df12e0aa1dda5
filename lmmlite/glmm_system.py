"""The penalized weighted least-squares system of PIRLS, with its sparsity fixed once.

Every PIRLS iteration (glmm.py) factors, for new working weights w,

    A = [U R]'W[U R] + diag(I_q, 0),   U = ZΛ, R = [] or X (β solved jointly),

whose columns are ordered term 1 (most levels), term 2, ..., X. A row of the
data touches p_k columns of each term k (those of its level) and all of X.
The Cholesky factor is blocked as in deviance.py / solvers.py (Bates et al.
2015, JSS 67(1), section 3.2; MixedModels.jl's blocked Cholesky): term 1's
columns form a block-diagonal part (one p1 x p1 block per level), eliminated
first,

    L1 L1' = D1 (per level),  L21 = B1 L1^{-T},  S = C - L21 L21',

and the Schur complement S of the rest is factored in turn. When term 1 is
nested in term 2 (each level of term 1 in one level of term 2: observation-level
effects, nested designs), term 2's part of S is again block diagonal and is
eliminated the same way, and so on along a chain of nested terms; what is left
(the other terms and X) is a dense Cholesky. This is the sparse Cholesky lme4
gets from CHOLMOD for these models, written out for their known structure.

Which entries can be nonzero depends only on the grouping factors, not on θ or
w, so :class:`SystemPattern` works out once per model where each product goes:
the lower-triangle products of every row (its contribution to A) and, per block
of each eliminated level, the pairs of the later columns it meets (its fill-in),
as flat indices into one vector holding every stored entry, summed with
``np.bincount``. An iteration then costs a few vectorized numpy calls.
"""

import numpy as np
import scipy.linalg as sla

PAIRS_MAX = 4_000_000     # blocks x K² above this: term 1's fill-in by one dense product
CHAIN_MIN = 100           # a nested term with fewer columns stays in the dense part


class _Level:
    """One eliminated term: ``nl`` blocks of size ``p`` at global columns ``start``..;
    block b meets the later columns ``rows[b]`` (ascending, padded with the dummy N)."""

    def __init__(self, start, nl, p, rows):
        self.start, self.nl, self.p = start, nl, p
        self.q = nl * p
        self.rows = rows
        self.K = rows.shape[1]


class SystemPattern:
    """Where every product of the PIRLS system goes (fixed per model).

    Parameters
    ----------
    term_codes : list of (n,) int arrays
        The level of each row in every random term (lme4's order: term 1 has most levels).
    term_sizes : list of (nlevels, p) pairs
    X : (n, p) array or None
        The fixed-effects columns, when β is solved jointly with u.
    """

    def __init__(self, term_codes, term_sizes, X=None):
        n = len(term_codes[0])
        self.p = 0 if X is None else X.shape[1]
        self.X = X
        starts = np.concatenate([[0], np.cumsum([nl * p for nl, p in term_sizes])]).astype(int)
        self.q = int(starts[-1])
        self.N = N = self.q + self.p
        # global columns of each row: its level's columns in every term, then X
        cols = [st + codes[:, None] * p + np.arange(p)
                for st, codes, (nl, p) in zip(starts, term_codes, term_sizes)]
        cols.append(np.broadcast_to(self.q + np.arange(self.p), (n, self.p)))
        self.row_cols = np.hstack(cols)
        # the chain of block-diagonal levels: term 1, then each term its predecessor nests in
        nchain = 1
        while nchain < len(term_sizes) and term_sizes[nchain][0] * term_sizes[nchain][1] \
                >= CHAIN_MIN and _nested(term_codes[nchain - 1], term_codes[nchain]):
            nchain += 1
        self.d0 = int(starts[nchain])              # the dense part: columns d0 .. N-1
        self.md = N - self.d0
        self.levels = []
        for k in range(nchain):
            nl, p = term_sizes[k]
            later = self.row_cols[:, self.row_cols[0] >= starts[k + 1]] \
                if n else np.zeros((0, 0), dtype=int)
            self.levels.append(_Level(int(starts[k]), nl, p, _block_rows(term_codes[k], nl,
                                                                         later, N)))
        lev1 = self.levels[0]
        self.dense_fill = nchain == 1 and lev1.nl * lev1.K ** 2 > PAIRS_MAX
        # the stored entries: per level D (nl, p, p) and B (nl, K, p), then dense C (md, md)
        offset = 0
        for lev in self.levels:
            lev.d_off, offset = offset, offset + lev.nl * lev.p * lev.p
            lev.b_off, offset = offset, offset + lev.nl * lev.K * lev.p
        self.c_off = offset
        self.size = offset + self.md * self.md      # entry `size` is the discard slot
        # each row's lower-triangle products (a >= b), except X x X (a dense product)
        c = self.row_cols.shape[1]
        pa, pb = np.tril_indices(c)
        keep = pb < c - self.p
        self.pa, self.pb = pa[keep], pb[keep]
        self.direct_index = self.target(self.row_cols[:, self.pa], self.row_cols[:, self.pb])
        for lev in ([] if self.dense_fill else self.levels):
            a, b = lev.rows[:, :, None], lev.rows[:, None, :]
            lev.fill_index = self.target(np.broadcast_to(a, (lev.nl, lev.K, lev.K)),
                                         np.broadcast_to(b, (lev.nl, lev.K, lev.K)))
        # the penalty: 1 on the diagonal of every random-effects column
        self.penalty = np.zeros(self.size + 1)
        diag = np.arange(self.q)
        self.penalty[self.target(diag, diag)] = 1.0

    def target(self, a, b):
        """Flat index of the stored entry (a, b) of A, a >= b global columns; pairs that
        are not stored (upper triangle, the dummy N) go to the discard slot."""
        a, b = np.asarray(a), np.asarray(b)
        out = np.full(a.shape, self.size, dtype=np.int64)
        ok = (a >= b) & (a < self.N)
        dense = ok & (b >= self.d0)
        out[dense] = self.c_off + (a[dense] - self.d0) * self.md + (b[dense] - self.d0)
        for lev in self.levels:
            inb = ok & (b >= lev.start) & (b < lev.start + lev.q)
            blk, jb = (b - lev.start) // lev.p, (b - lev.start) % lev.p
            same = inb & (a < lev.start + lev.q)        # within b's block (nesting)
            ja = (a - lev.start) % lev.p
            out[same] = lev.d_off + (blk[same] * lev.p + ja[same]) * lev.p + jb[same]
            later = inb & ~same
            # position of column a among the later columns of block blk (keys ascending)
            keys = (np.arange(lev.nl)[:, None] * (self.N + 1) + lev.rows).ravel()
            pos = np.searchsorted(keys, blk[later] * (self.N + 1) + a[later]) - blk[later] * lev.K
            out[later] = lev.b_off + (blk[later] * lev.K + pos) * lev.p + jb[later]
        return out

    def factor(self, values, w):
        """The blocked factor at each row's column values ``values`` (n, c: term 1's
        p1, the other terms', then X if joint) and working weights w."""
        wv = w[:, None] * values
        vec = np.bincount(self.direct_index.ravel(),
                          (values[:, self.pa] * wv[:, self.pb]).ravel(), minlength=self.size + 1)
        vec += self.penalty
        return PirlsFactor(self, vec, wv[:, values.shape[1] - self.p:])

    def rhs(self, values, wz):
        """[U R]'Wz for wz = w * z."""
        return np.bincount(self.row_cols.ravel(), (values * wz[:, None]).ravel(),
                           minlength=self.N)


def _nested(inner, outer):
    """Each level of ``inner`` occurs with a single level of ``outer``."""
    pairs = np.unique(np.stack([inner, outer]), axis=1)
    return pairs.shape[1] == len(np.unique(inner))


def _block_rows(codes, nl, later, N):
    """For each level (block): the distinct later columns of its rows, ascending, padded with N."""
    if later.shape[1] == 0:
        return np.zeros((nl, 0), dtype=np.int64)
    keys = np.unique(codes[:, None] * (N + 1) + later)
    blk, col = keys // (N + 1), keys % (N + 1)
    count = np.bincount(blk, minlength=nl)
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    rows = np.full((nl, int(count.max())), N, dtype=np.int64)
    rows[blk, np.arange(len(keys)) - first[blk]] = col
    return rows


class _Block:
    """The factor of one eliminated level: L (nl, p, p), its inverse, and Lc = B L^{-T}."""

    def __init__(self, lev, D, B):
        self.lev = lev
        if lev.p == 1:          # scalar blocks: D is diagonal
            if not (D > 0).all():
                raise np.linalg.LinAlgError("not positive definite")
            self.L = np.sqrt(D)
            self.Linv = 1.0 / self.L
            self.Lc = B * self.Linv[:, :, 0][:, None, :] if lev.K else None
        else:
            self.L = np.linalg.cholesky(D)
            self.Linv = np.linalg.inv(self.L)
            self.Lc = np.einsum("lkj,lij->lki", B, self.Linv) if lev.K else None

    def forward(self, r):
        """y = L^{-1} r_blocks (r_blocks: nl x p)."""
        return r * self.Linv[:, :, 0] if self.lev.p == 1 else \
            np.einsum("lij,lj->li", self.Linv, r)

    def backward(self, y):
        """L^{-T} y."""
        return y * self.Linv[:, :, 0] if self.lev.p == 1 else \
            np.einsum("lji,lj->li", self.Linv, y)


class PirlsFactor:
    """The blocked Cholesky factor of A (module docstring)."""

    def __init__(self, pattern, vec, wX):
        self.pattern = pat = pattern
        self.blocks = []
        for lev in pat.levels:
            D = vec[lev.d_off:lev.b_off].reshape(lev.nl, lev.p, lev.p)
            B = vec[lev.b_off:lev.b_off + lev.nl * lev.K * lev.p].reshape(lev.nl, lev.K, lev.p)
            blk = _Block(lev, D, B)
            self.blocks.append(blk)
            if not lev.K:
                continue
            if pat.dense_fill:
                Ld = self._dense_lc(blk)
                vec[pat.c_off:pat.size] -= (Ld @ Ld.T).ravel()
            else:
                G = np.matmul(blk.Lc, np.swapaxes(blk.Lc, 1, 2))
                vec -= np.bincount(lev.fill_index.ravel(), G.ravel(), minlength=pat.size + 1)
        b1 = self.blocks[0]
        self.L1, self.L1inv = b1.L, b1.Linv
        self.L22 = np.zeros((0, 0))
        if pat.md:
            C = vec[pat.c_off:pat.size].reshape(pat.md, pat.md)
            if pat.p:
                C[-pat.p:, -pat.p:] += wX.T @ pat.X
            L22, info = sla.lapack.dpotrf(C, lower=1, clean=1)
            if info != 0:
                raise np.linalg.LinAlgError("Schur complement is not positive definite")
            self.L22 = L22

    def _dense_lc(self, blk):
        """Lc of term 1 as a dense (md, q1) matrix (the dense part is term 1's whole tail)."""
        lev, pat = blk.lev, self.pattern
        out = np.zeros((pat.N + 1, lev.q))
        cols = (np.arange(lev.nl)[:, None] * lev.p + np.arange(lev.p))[:, None, :]
        out[lev.rows[:, :, None], cols] = blk.Lc
        return out[pat.d0:pat.N]

    def logdet(self):
        """log|L|² of the random-effects columns (the Laplace approximation's term)."""
        pat = self.pattern
        out = sum(2.0 * np.log(np.diagonal(b.L, axis1=1, axis2=2)).sum() for b in self.blocks)
        k = pat.md - pat.p
        if k:
            out += 2.0 * np.log(np.diag(self.L22)[:k]).sum()
        return float(out)

    def solve(self, r):
        """A⁻¹ r."""
        pat = self.pattern
        if len(self.blocks) == 1 and self.blocks[0].lev.p == 1:
            return self._solve_scalar(r)
        x = np.array(r, dtype=float)
        ys = []
        for blk in self.blocks:
            lev = blk.lev
            y = blk.forward(x[lev.start:lev.start + lev.q].reshape(lev.nl, lev.p))
            ys.append(y)
            if lev.K:
                x -= np.bincount(lev.rows.ravel(), np.einsum("lki,li->lk", blk.Lc, y).ravel(),
                                 minlength=pat.N + 1)[:pat.N]
        if pat.md:
            x[pat.d0:], _ = sla.lapack.dpotrs(self.L22, x[pat.d0:], lower=1)
        xpad = np.append(x, 0.0)
        for blk, y in zip(self.blocks[::-1], ys[::-1]):
            lev = blk.lev
            if lev.K:
                y = y - np.einsum("lki,lk->li", blk.Lc, xpad[lev.rows])
            xpad[lev.start:lev.start + lev.q] = blk.backward(y).ravel()
        return xpad[:pat.N]

    def _solve_scalar(self, r):
        """solve() for the common case: one scalar term eliminated, then the dense part."""
        blk, pat = self.blocks[0], self.pattern
        q1, d = blk.lev.q, blk.Linv[:, 0, 0]
        y = r[:q1] * d
        if not pat.md:
            return y * d
        Lc, rows = blk.Lc[:, :, 0], blk.lev.rows - q1        # the dummy N becomes md
        t = r[q1:] - np.bincount(rows.ravel(), (Lc * y[:, None]).ravel(),
                                 minlength=pat.md + 1)[:pat.md]
        x2, _ = sla.lapack.dpotrs(self.L22, t, lower=1)
        y = y - (Lc * np.append(x2, 0.0)[rows]).sum(axis=1)
        return np.concatenate([y * d, x2])

    def inverse(self):
        """A⁻¹ as a dense matrix (conditional variances; models of modest size)."""
        return np.column_stack([self.solve(e) for e in np.eye(self.pattern.N)])
