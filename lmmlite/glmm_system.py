"""The penalized weighted least-squares system of PIRLS, with its sparsity fixed once.

Every PIRLS iteration (glmm.py) factors, for new working weights w,

    [U1 R]'W[U1 R] + diag(I_q, 0) = [[D, B'], [B, C]],

where U1 = Z1Λ1 is the first random-effects term (most levels), R = [U_rest]
(the other terms) or [U_rest X] (β solved jointly), D is block diagonal (one
p1 x p1 block per level of term 1), B = R'WU1 and C = R'WR (+ I on U_rest).
The Cholesky factor is blocked as in deviance.py / solvers.py (Bates et al.
2015, JSS 67(1), section 3.2; MixedModels.jl's blocked Cholesky):

    L1 L1' = D (per level),  L21 = B L1^{-T},  L22 L22' = C - L21 L21'.

Which entries of B, C and L21 L21' can be nonzero depends only on the grouping
factors, not on θ or w, so :class:`SystemPattern` works out, once per model,
where each row's products go (flat indices for ``np.bincount``): a level l of
term 1 meets only the columns of R that occur in its rows, its "rows" of B,
padded to a common length K. An iteration then costs a few vectorized numpy
calls instead of building sparse matrices.
"""

import numpy as np
import scipy.linalg as sla

PAIRS_MAX = 4_000_000     # levels x K² above this: L21 L21' by one dense product instead


class SystemPattern:
    """Where the products of each row go in D, B, C and L21 L21' (fixed per model).

    Parameters
    ----------
    codes1 : (n,) int
        Level of term 1 of each row; ``l1`` levels, ``p1`` columns each.
    rest_cols : (n, wr) int
        Columns of U_rest (0 .. k_rest-1) that row i touches.
    X : (n, p) array or None
        Dense columns appended to R (the fixed effects, when β is solved jointly).
    """

    def __init__(self, codes1, l1, p1, rest_cols, k_rest, X=None):
        n, wr = rest_cols.shape
        self.n, self.l1, self.p1, self.q1 = n, l1, p1, l1 * p1
        self.k_rest, self.wr = k_rest, wr
        self.X = X
        self.p = 0 if X is None else X.shape[1]
        self.m = m = k_rest + self.p
        self.codes1, self.rest_cols = codes1, rest_cols
        j1 = np.arange(p1)
        # D: row i's p1 x p1 outer product goes to the block of its level
        self.d_index = (codes1[:, None] * p1 * p1 + np.arange(p1 * p1)[None, :]).ravel()
        self.r1_index = (codes1[:, None] * p1 + j1[None, :]).ravel()
        # the distinct rest columns of each level of term 1, padded with the dummy m
        keys = np.unique(codes1[:, None] * max(k_rest, 1) + rest_cols)
        lev, col = keys // max(k_rest, 1), keys % max(k_rest, 1)
        count = np.bincount(lev, minlength=l1)
        first = np.concatenate([[0], np.cumsum(count)[:-1]])
        self.Kr = Kr = int(count.max()) if wr else 0
        self.K = K = Kr + self.p
        rows = np.full((l1, K), m, dtype=np.int64)
        rows[lev, np.arange(len(keys)) - first[lev]] = col
        rows[:, Kr:] = k_rest + np.arange(self.p)
        self.rows = rows
        pos = np.searchsorted(keys, (codes1[:, None] * max(k_rest, 1) + rest_cols)) \
            - first[codes1][:, None]
        allpos = np.hstack([pos, np.broadcast_to(Kr + np.arange(self.p), (n, self.p))])
        # B (compressed): entry (level, position, j) per row, column of R and j
        self.b_index = (((codes1[:, None] * K + allpos)[:, :, None]) * p1 + j1).ravel()
        # C's rest x rest and rest x X parts
        self.cr_index = (rest_cols[:, :, None] * k_rest + rest_cols[:, None, :]).ravel()
        self.cx_index = (rest_cols[:, :, None] * self.p + np.arange(self.p)).ravel()
        self.r2_index = rest_cols.ravel()
        self.dense_schur = l1 * K * K > PAIRS_MAX
        if not self.dense_schur:
            self.pair_index = (rows[:, :, None] * (m + 1) + rows[:, None, :]).ravel()

    def factor(self, V1, Vr, w):
        """The blocked factor at row values V1 (n, p1) of U1, Vr (n, wr) of U_rest and
        working weights w."""
        p1, k = self.p1, self.k_rest
        wV1 = w[:, None] * V1
        D = np.bincount(self.d_index, (wV1[:, :, None] * V1[:, None, :]).ravel(),
                        minlength=self.l1 * p1 * p1).reshape(self.l1, p1, p1)
        D += np.eye(p1)
        if not self.m:
            return PirlsFactor(self, D, None, None)
        wVr = w[:, None] * Vr
        vals = wVr if self.X is None else np.hstack([wVr, w[:, None] * self.X])
        Bc = np.bincount(self.b_index, (vals[:, :, None] * V1[:, None, :]).ravel(),
                         minlength=self.l1 * self.K * p1).reshape(self.l1, self.K, p1)
        C = np.zeros((self.m, self.m))
        if k:
            C[:k, :k] = np.bincount(self.cr_index, (wVr[:, :, None] * Vr[:, None, :]).ravel(),
                                    minlength=k * k).reshape(k, k)
            C[np.arange(k), np.arange(k)] += 1.0
        if self.p:
            wX = vals[:, self.wr:]
            C[k:, k:] = wX.T @ self.X
            if k:
                C[:k, k:] = np.bincount(self.cx_index,
                                        (wVr[:, :, None] * self.X[:, None, :]).ravel(),
                                        minlength=k * self.p).reshape(k, self.p)
                C[k:, :k] = C[:k, k:].T
        return PirlsFactor(self, D, Bc, C)

    def rhs(self, V1, Vr, wz):
        """[U1 R]'Wz for wz = w * z."""
        r1 = np.bincount(self.r1_index, (V1 * wz[:, None]).ravel(), minlength=self.q1)
        if not self.m:
            return r1
        parts = [r1]
        if self.k_rest:
            parts.append(np.bincount(self.r2_index, (Vr * wz[:, None]).ravel(),
                                     minlength=self.k_rest))
        if self.p:
            parts.append(self.X.T @ wz)
        return np.concatenate(parts)


class PirlsFactor:
    """L L' = [[D, B'], [B, C]] blocked as in the module docstring."""

    def __init__(self, pattern, D, Bc, C):
        self.pattern = pat = pattern
        self.l1, self.p1, self.q1, self.m = pat.l1, pat.p1, pat.q1, pat.m
        if self.p1 == 1:        # scalar first term: D is diagonal
            if np.any(D[:, 0, 0] <= 0):
                raise np.linalg.LinAlgError("not positive definite")
            self.L1 = np.sqrt(D)
            self.L1inv = 1.0 / self.L1
        else:
            self.L1 = np.linalg.cholesky(D)
            self.L1inv = np.linalg.inv(self.L1)
        if not self.m:
            return
        # L21 per level: B_l L_l^{-T}, on the level's K rows of R
        if self.p1 == 1:
            self.L21c = Bc * self.L1inv[:, :, 0][:, None, :]
        else:
            self.L21c = np.einsum("lkj,lij->lki", Bc, self.L1inv)
        if pat.dense_schur:
            G = self.L21
            S = C - G @ G.T
        else:
            G = np.einsum("lki,lhi->lkh", self.L21c, self.L21c)
            m1 = self.m + 1
            S = C - np.bincount(pat.pair_index, G.ravel(),
                                minlength=m1 * m1).reshape(m1, m1)[:self.m, :self.m]
        L22, info = sla.lapack.dpotrf(S, lower=1, clean=1, overwrite_a=1)
        if info != 0:
            raise np.linalg.LinAlgError("Schur complement is not positive definite")
        self.L22 = L22

    @property
    def L21(self):
        """L21 as a dense (m, q1) matrix."""
        out = np.zeros((self.m + 1, self.q1))
        cols = (np.arange(self.l1)[:, None] * self.p1 + np.arange(self.p1))[:, None, :]
        out[self.pattern.rows[:, :, None], cols] = self.L21c
        return out[:self.m]

    def logdet(self, k):
        """log|L|² over the first block and the first k rows of the Schur part."""
        out = 2.0 * np.sum(np.log(np.diagonal(self.L1, axis1=1, axis2=2)))
        if k:
            out += 2.0 * np.sum(np.log(np.diag(self.L22)[:k]))
        return float(out)

    def solve(self, r):
        """(L L')⁻¹ r."""
        l1, p1 = self.l1, self.p1
        r1 = r[:self.q1].reshape(l1, p1)
        y1 = r1 * self.L1inv[:, :, 0] if p1 == 1 else np.einsum("lij,lj->li", self.L1inv, r1)
        if not self.m:
            x1 = y1 * self.L1inv[:, :, 0] if p1 == 1 else \
                np.einsum("lji,lj->li", self.L1inv, y1)
            return x1.ravel()
        rows = self.pattern.rows
        t = r[self.q1:] - np.bincount(rows.ravel(), np.einsum("lki,li->lk", self.L21c, y1).ravel(),
                                      minlength=self.m + 1)[:self.m]
        x2 = sla.cho_solve((self.L22, True), t, check_finite=False)
        y1 = y1 - np.einsum("lki,lk->li", self.L21c, np.append(x2, 0.0)[rows])
        x1 = y1 * self.L1inv[:, :, 0] if p1 == 1 else np.einsum("lji,lj->li", self.L1inv, y1)
        return np.concatenate([x1.ravel(), x2])

    def inverse(self):
        """(L L')⁻¹ as a dense matrix (conditional variances; models of modest size)."""
        n = self.q1 + self.m
        return np.column_stack([self.solve(e) for e in np.eye(n)])
