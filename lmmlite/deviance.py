"""Stage 3: the profiled deviance d(θ) by penalized least squares.

Notation of Bates, Mächler, Bolker & Walker (2015), "Fitting Linear
Mixed-Effects Models Using lme4", J. Stat. Softw. 67(1), section 3.  With
Λθ the relative covariance factor, the Cholesky factor of the augmented
system (eq. 3.13-3.20 there, and MixedModels.jl's blocked form)::

    Ω(θ) = [ZΛ X y]'[ZΛ X y] + diag(I_q, 0, 0) = L L'

gives everything: log|L_Z|² from the random-effects diagonal of L, R_X from
the X block, and the penalized residual sum of squares r² = L[y, y]².  Then

    ML:    d(θ) = log|L_Z|² + n (1 + log(2π r² / n))                     (eq. 34)
    REML:  d(θ) = log|L_Z|² + log|R_X|² + (n-p)(1 + log(2π r² / (n-p)))  (eq. 41)

Structure used for speed: the first random term (most levels) has a
block-diagonal Z_1'Z_1 (p_1 x p_1 per level), so its part of L is a batch of
small Cholesky factors; the rest, [Z_2 .. Z_K X y], is a dense Schur
complement of modest size m.  Ω is never formed as an n x n or q x q dense
matrix.
"""

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp


def _chol_inplace(S):
    """Lower Cholesky factor of S, overwriting S (LAPACK dpotrf reads the lower triangle)."""
    L, info = sla.lapack.dpotrf(S, lower=1, clean=1, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError("Schur complement is not positive definite")
    return L


def _dense(x):
    return x.toarray() if sp.issparse(x) else np.asarray(x)


@dataclass
class Factor:
    """The blocked Cholesky factor of Ω(θ) for one θ."""

    L1: np.ndarray      # (levels_1, p1, p1) lower factors of term 1's diagonal blocks
    L21: object         # sparse (m, q1): rows of [Z_2.. X y] against term 1
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


class Deviance:
    """Precomputed cross-products of a model; evaluates d(θ) for REML or ML.

    Parameters
    ----------
    blocks : list of RandomBlock (from design.random_blocks)
    X : (n, p) fixed-effects matrix
    y : (n,) response
    """

    def __init__(self, blocks, X, y, REML=True):
        self.blocks = blocks
        self.X, self.y = X, y
        Xc, yc = self._centre(X, y)
        self.Xc, self.yc = Xc, yc
        self.yty = float(yc @ yc)
        self.n, self.p = X.shape
        self.REML = REML
        self._derivs = None  # ProfiledDerivatives, built on first use
        b1 = blocks[0]
        self.p1, self.l1 = b1.p, b1.nlevels
        # term 1: per-level cross-products B[l] = sum over rows of x x'
        B = np.zeros((self.l1, self.p1, self.p1))
        outer = b1.X[:, :, None] * b1.X[:, None, :]
        np.add.at(B, b1.codes, outer)
        self.B1 = B
        # the rest: R = [Z_2 .. Z_K, X, y]
        rest = [b.Z() for b in blocks[1:]]
        self.q_rest = sum(b.nlevels * b.p for b in blocks[1:])
        R = sp.hstack(rest + [sp.csc_matrix(np.column_stack([Xc, yc]))], format="csc")
        self.RtZ1 = (R.T @ blocks[0].Z()).tocsr()   # m x q1
        self.RtR = (R.T @ R).toarray()              # m x m
        self.m = R.shape[1]
        # small models: dense arrays beat scipy.sparse's per-call overhead
        self.dense = self.m * self.l1 * self.p1 <= 250_000
        self.pairs = None
        if self.dense:
            self.RtZ1 = self.RtZ1.toarray().reshape(self.m, self.l1, self.p1)
            self._lr_index = self._rest_index()
        else:
            self.pairs = self._pair_structure()
        self.scalar_rest = all(b.p == 1 for b in blocks[1:])
        self._ntheta = [b.ntheta for b in blocks]
        self.lower = np.concatenate([b.theta_lower() for b in blocks])
        # for each diagonal θ index, the θ indices below it in the same column of T
        self.below, k = {}, 0
        for b in blocks:
            for j in range(b.p):
                self.below[k] = list(range(k + 1, k + b.p - j))
                k += b.p - j

    def _pair_structure(self, max_pairs=60_000_000):
        """Index pairs for G(θ) = R'Z1 Λ1 (L1 L1')^{-1} Λ1' Z1'R, a sum over levels.

        G = Σ_l Σ_ab (M_l)_ab r_(l,a) r_(l,b)' with r_c the sparse columns of R'Z1
        and M_l = T1 (T1'B_l T1 + I)^{-1} T1'.  The pattern is fixed, so each
        evaluation is one weighted bincount (MixedModels.jl keeps this block
        sparse for the same reason).  None if there would be too many pairs.
        """
        C = self.RtZ1.tocsc()
        C.sort_indices()
        counts = np.diff(C.indptr).reshape(self.l1, self.p1)
        if int((counts.sum(axis=1) ** 2).sum()) > max_pairs:
            return None
        m, p1 = self.m, self.p1
        tgt, val, key = [], [], []
        for lev in range(self.l1):
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
        # vec(G_lower) = P @ vec(M): one sparse matrix-vector product per evaluation
        return sp.csr_matrix((np.concatenate(val), (np.concatenate(tgt), np.concatenate(key))),
                             shape=(m * m, self.l1 * p1 * p1))

    def _schur_pairs(self, Ts, L1):
        """The dense Schur complement S from the pair structure (evaluation only)."""
        T1 = Ts[0]
        K = np.linalg.solve(L1, np.broadcast_to(T1.T, L1.shape))     # L_l^{-1} T1'
        Mblk = np.einsum("lki,lkj->lij", K, K)                       # M_l
        # lower triangle only: np.linalg.cholesky reads nothing else
        S = self.RtR - (self.pairs @ Mblk.ravel()).reshape(self.m, self.m)
        if self.q_rest:
            if self.scalar_rest:
                d = np.ones(self.m)
                start = 0
                for b, T in zip(self.blocks[1:], Ts[1:]):
                    d[start:start + b.nlevels] = T[0, 0]
                    start += b.nlevels
                S *= d[:, None]
                S *= d[None, :]
            else:
                S = np.tril(S) + np.tril(S, -1).T
                Lr = self._lambda_rest(Ts)
                S = np.asarray(Lr.T @ (Lr.T @ S).T)
        S[np.arange(self.q_rest), np.arange(self.q_rest)] += 1.0
        return S

    def _centre(self, X, y):
        """Centre y and the non-intercept columns of X when X has an intercept column.

        With X̃ = X A (A unit triangular: x̃_j = x_j - mean(x_j)) and ỹ = y - ȳ, the
        criterion is unchanged (det A = 1, and ȳ is absorbed by the intercept), but the
        cross-products no longer cancel catastrophically when y or x has a large
        offset.  β = A γ + ȳ e_int maps the solution back; R_X = R̃_X A^{-1}.
        """
        self.A = self.Ainv = None
        ones = [j for j in range(X.shape[1]) if np.all(X[:, j] == 1.0)]
        if not ones:
            return X, y
        j0 = self.intercept = ones[0]
        means = X.mean(axis=0)
        means[j0] = 0.0
        A = np.eye(X.shape[1])
        A[j0, :] = -means
        A[j0, j0] = 1.0
        self.A = A
        self.Ainv = np.eye(X.shape[1])
        self.Ainv[j0, :] = means
        self.Ainv[j0, j0] = 1.0
        self.ybar = float(y.mean())
        return X @ A, y - self.ybar

    def split(self, theta):
        out, k = [], 0
        for b, nt in zip(self.blocks, self._ntheta):
            out.append(b.T(theta[k:k + nt]))
            k += nt
        return out

    def _rest_index(self):
        """Positions of the entries of each T_k in the dense block-diagonal Λ_rest."""
        out, start = [], 0
        for b in self.blocks[1:]:
            i, j = np.tril_indices(b.p)
            base = start + np.arange(b.nlevels)[:, None] * b.p
            out.append(((base + i).ravel(), (base + j).ravel(), i, j, b.nlevels))
            start += b.nlevels * b.p
        return out

    def _lambda_rest_dense(self, Ts):
        Lr = np.eye(self.m)
        for (rows, cols, i, j, nl), T in zip(self._lr_index, Ts[1:]):
            Lr[rows, cols] = np.tile(T[i, j], nl)
        return Lr

    def _lambda_rest(self, Ts):
        """Sparse block-diagonal Λ for terms 2..K, identity on X and y."""
        parts = [sp.kron(sp.identity(b.nlevels), T, format="csr")
                 for b, T in zip(self.blocks[1:], Ts[1:])]
        parts.append(sp.identity(self.p + 1, format="csr"))
        return sp.block_diag(parts, format="csr")

    def factor(self, theta, full=True):
        """The blocked Cholesky factor of Ω(θ) (raises LinAlgError if not PD).

        With ``full=False`` the off-diagonal block L21 may be left out (it is
        not needed for the criterion).
        """
        Ts = self.split(np.asarray(theta, dtype=float))
        T1 = Ts[0]
        # term 1 diagonal blocks: T1' B_l T1 + I = L_l L_l'
        M = T1.T @ self.B1 @ T1 + np.eye(self.p1)
        if self.dense:
            return self._factor_dense(Ts, M)
        if not full and self.pairs is not None:
            L1 = np.sqrt(M) if self.p1 == 1 else np.linalg.cholesky(M)
            L22 = _chol_inplace(self._schur_pairs(Ts, L1))
            return Factor(L1=L1, L21=None, L22=L22, q_rest=self.q_rest, p=self.p, Ainv=self.Ainv, Ts=Ts)
        if self.p1 == 1:
            L1 = np.sqrt(M)
            W = (T1[0, 0] / L1[:, 0, 0])          # Λ_1 L_1^{-T}, a diagonal
            A = self.RtZ1.multiply(W[None, :]).tocsr()
        else:
            L1 = np.linalg.cholesky(M)
            # W_l = T1 L_l^{-T}: block-diagonal, applied to the columns of R'Z1
            Linv = np.linalg.inv(L1)
            Wb = np.einsum("ij,lkj->lik", T1, Linv)
            q1 = self.l1 * self.p1
            W = sp.bsr_matrix((Wb, np.arange(self.l1), np.arange(self.l1 + 1)),
                              shape=(q1, q1))
            A = (self.RtZ1 @ W).tocsr()
        if self.q_rest:
            Lr = self._lambda_rest(Ts)
            A = (Lr.T @ A).tocsr()
            S = Lr.T @ (Lr.T @ self.RtR.T).T   # Λ' R'R Λ for the rest
            S = np.asarray(S)
        else:
            S = self.RtR.copy()
        S[np.arange(self.q_rest), np.arange(self.q_rest)] += 1.0
        S -= (A @ A.T).toarray()
        L22 = np.linalg.cholesky(S)
        return Factor(L1=L1, L21=A, L22=L22, q_rest=self.q_rest, p=self.p, Ainv=self.Ainv, Ts=Ts)

    def _factor_dense(self, Ts, M):
        """The same factorization with dense arrays (small models)."""
        T1 = Ts[0]
        if self.p1 == 1:
            L1 = np.sqrt(M)
            A = self.RtZ1[:, :, 0] * (T1[0, 0] / L1[:, 0, 0])[None, :]
        else:
            L1 = np.linalg.cholesky(M)
            Wb = T1 @ np.swapaxes(np.linalg.inv(L1), 1, 2)          # T1 L_l^{-T}
            A = np.matmul(self.RtZ1.transpose(1, 0, 2), Wb)          # (l, m, p1)
            A = A.transpose(1, 0, 2).reshape(self.m, -1)
        if self.q_rest:
            Lr = self._lambda_rest_dense(Ts)
            A = Lr.T @ A
            S = Lr.T @ self.RtR @ Lr
        else:
            S = self.RtR.copy()
        S[np.arange(self.q_rest), np.arange(self.q_rest)] += 1.0
        S -= A @ A.T
        L22 = np.linalg.cholesky(S)
        return Factor(L1=L1, L21=A, L22=L22, q_rest=self.q_rest, p=self.p, Ainv=self.Ainv, Ts=Ts)

    def pwrss(self, fac):
        """Penalized residual sum of squares r² = ||y - Xβ - ZΛu||² + ||u||².

        L[y, y]² loses digits to cancellation when r² is tiny against ỹ'ỹ (θ
        large); then, when the full factor is at hand, r² is summed from the
        residuals (as lme4's pwrss): r² is stationary in (β, u), so round-off in
        the solution enters only to second order.  The pair-structure path
        (large models) always uses L[y, y]².
        """
        if fac.L21 is None or fac.r2 * 1e4 > self.yty:
            return fac.r2
        gamma, u = self._solve_centred(fac)
        fitted = self.Xc @ gamma
        start = 0
        for b, T in zip(self.blocks, fac.Ts):
            size = b.nlevels * b.p
            bk = u[start:start + size].reshape(b.nlevels, b.p) @ T.T
            fitted += np.einsum("ij,ij->i", b.X, bk[b.codes])
            start += size
        resid = self.yc - fitted
        return float(resid @ resid + u @ u)

    def criterion(self, fac, REML=None):
        """The profiled deviance from a factor (eq. 34 for ML, 41 for REML)."""
        REML = self.REML if REML is None else REML
        r2 = self.pwrss(fac)
        if REML:
            nmp = self.n - self.p
            return fac.logdet_Z() + fac.logdet_X() + nmp * (1 + np.log(2 * np.pi * r2 / nmp))
        return fac.logdet_Z() + self.n * (1 + np.log(2 * np.pi * r2 / self.n))

    def grad_hess(self, theta):
        """Exact gradient and Hessian of d at θ (see ProfiledDerivatives).

        None when the model has too many random effects for the dense q x q
        algebra; raises LinAlgError where d is not defined.
        """
        if self._derivs is None:
            if sum(b.nlevels * b.p for b in self.blocks) > ProfiledDerivatives.MAX_Q:
                return None
            self._derivs = ProfiledDerivatives(self.blocks, self.Xc, self.yc, self.REML)
        return self._derivs(theta)

    def __call__(self, theta):
        try:
            fac = self.factor(theta, full=False)
        except np.linalg.LinAlgError:
            return np.inf
        value = self.criterion(fac)
        return value if np.isfinite(value) else np.inf

    # -- solutions at a given θ (used once, after optimizing)
    def solve(self, fac):
        """β̂ and the spherical random effects u at θ (L'[u; β] = ℓ, ℓ the y row)."""
        beta, u = self._solve_centred(fac)
        if self.A is not None:  # back from the centred parametrization
            beta = self.A @ beta
            beta[self.intercept] += self.ybar
        return beta, u

    def _solve_centred(self, fac):
        m, k = self.m, self.q_rest
        ell2 = fac.L22[-1, :-1]
        sol2 = sla.solve_triangular(fac.L22[:-1, :-1].T, ell2, lower=False, check_finite=False)
        u_rest, beta = sol2[:k], sol2[k:]
        ell1 = _dense(fac.L21[m - 1]).ravel()
        rhs = ell1 - fac.L21[:m - 1].T @ sol2
        rhs = rhs.reshape(self.l1, self.p1)
        u1 = np.linalg.solve(np.swapaxes(fac.L1, 1, 2), rhs[:, :, None])[:, :, 0]
        return beta, np.concatenate([u1.ravel(), u_rest])

    def condvar_blocks(self, fac):
        """Diagonal blocks of (Λ'Z'ZΛ + I)^{-1}, one (levels, p, p) array per term.

        With L_Z = [[L11, 0], [L21, L22]] the random-effects part of L,
        L_Z^{-1} = [[L11^{-1}, 0], [-G, L22^{-1}]] with G = L22^{-1} L21 L11^{-1},
        and the inverse is L_Z^{-T} L_Z^{-1}.
        """
        k = self.q_rest
        L11inv = np.linalg.inv(fac.L1)                       # (l1, p1, p1)
        out = []
        first = np.einsum("lji,ljk->lik", L11inv, L11inv)    # L_l^{-T} L_l^{-1}
        if k:
            L22inv = sla.solve_triangular(fac.L22[:k, :k], np.eye(k), lower=True)
            L21 = _dense(fac.L21[:k]).reshape(k, self.l1, self.p1)
            H = np.einsum("kli,lij->klj", L21, L11inv)       # L21 L11^{-1}
            G = np.tensordot(L22inv, H, axes=(1, 0))          # (k, l1, p1)
            first = first + np.einsum("kli,klj->lij", G, G)
            full = L22inv.T @ L22inv
        out.append(first)
        start = 0
        for b in self.blocks[1:]:
            size = b.nlevels * b.p
            sub = full[start:start + size, start:start + size]
            idx = np.arange(b.nlevels)[:, None] * b.p + np.arange(b.p)
            out.append(sub[idx[:, :, None], idx[:, None, :]])
            start += size
        return out


class ProfiledDerivatives:
    """Exact gradient and Hessian of the profiled deviance d(θ) (ML or REML).

    With V = I + ZΛΛ'Z' (σ² profiled out), P = V⁻¹ - V⁻¹X(X'V⁻¹X)⁻¹X'V⁻¹ and
    r² = y'Py (the penalized residual sum of squares), Λ = Σ_i θ_i E_i is linear
    in θ, so V_i = ∂V/∂θ_i = Z D_i Z' with D_i = E_iΛ' + ΛE_i', and
    V_ij = Z(E_iE_j' + E_jE_i')Z'.  Then (Harville 1977, JASA 72, eq. 4.4-4.6 for
    the REML terms; Bates et al. 2015, JSS 67(1), eq. 34 and 41 for d itself)

        ∂ log|V|            = tr(V⁻¹V_i)        (ML)
        ∂ log|V| + log|X'V⁻¹X| = tr(P V_i)      (REML)
        ∂ r²  = -y'P V_i P y,   ∂² r² = 2 y'P V_j P V_i P y - y'P V_ij P y
        ∂² (REML trace part) = tr(P V_ij) - tr(P V_j P V_i)

    and d = logdets + ν(1 + log(2π r²/ν)), ν = n - p (REML) or n (ML).
    Everything is written with q x q matrices (q random effects): with
    A = Λ'Z'ZΛ + I, Woodbury gives Λ'Z'V⁻¹ = A⁻¹Λ'Z'; W = Z'PZ, s = Z'Py and
    u = Λ's (the conditional mode of the spherical random effects).  Exact
    derivatives let the optimizer solve ∇d = 0 to round-off, where function
    values alone cannot locate θ better than ~sqrt(round-off / curvature).
    """

    MAX_Q = 1500  # dense q x q algebra; beyond this the optimizer uses differences

    def __init__(self, blocks, X, y, REML=True):
        Z = sp.hstack([b.Z() for b in blocks], format="csc")
        self.q = Z.shape[1]
        self.n, self.p = X.shape
        self.REML = REML
        self.G = (Z.T @ Z).toarray()
        self.ZX = np.asarray(Z.T @ X)
        self.Zy = np.asarray(Z.T @ y).ravel()
        self.XX, self.Xy, self.yy = X.T @ X, X.T @ y, float(y @ y)
        # positions (row, column) in Λ of each θ_i, one per level of its term
        self.pos, start = [], 0
        for b in blocks:
            for j in range(b.ntheta):
                unit = np.zeros(b.ntheta)
                unit[j] = 1.0
                r, c = np.nonzero(b.T(unit))
                base = start + np.arange(b.nlevels) * b.p
                self.pos.append((base + r[0], base + c[0]))
            start += b.nlevels * b.p

    def lam(self, theta):
        L = np.zeros((self.q, self.q))
        for t, (r, c) in zip(theta, self.pos):
            L[r, c] = t
        return L

    def __call__(self, theta):
        """(gradient, Hessian) of d at θ; raises LinAlgError where d is undefined."""
        theta = np.asarray(theta, dtype=float)
        Lam = self.lam(theta)
        LtG = Lam.T @ self.G
        cf = sla.cho_factor(LtG @ Lam + np.eye(self.q), lower=True)
        B = sla.cho_solve(cf, LtG)                        # Λ'Z'V⁻¹Z
        Bx = sla.cho_solve(cf, Lam.T @ self.ZX)           # Λ'Z'V⁻¹X
        By = sla.cho_solve(cf, Lam.T @ self.Zy)           # Λ'Z'V⁻¹y
        LZX, LZy = Lam.T @ self.ZX, Lam.T @ self.Zy
        XVX = self.XX - LZX.T @ Bx
        XVy = self.Xy - LZX.T @ By
        cx = sla.cho_factor(XVX, lower=True)
        beta = sla.cho_solve(cx, XVy)
        r2 = self.yy - LZy @ By - XVy @ beta
        ZVX = self.ZX - self.G @ (Lam @ Bx)               # Z'V⁻¹X
        ZVZ = self.G - self.G @ (Lam @ B)                 # Z'V⁻¹Z
        F = sla.cho_solve(cx, ZVX.T)                      # (X'V⁻¹X)⁻¹X'V⁻¹Z
        W = ZVZ - ZVX @ F                                 # Z'PZ
        K = B - Bx @ F                                    # Λ'Z'PZ
        s = (self.Zy - self.G @ (Lam @ By)) - ZVX @ beta  # Z'Py
        u = By - Bx @ beta                                # Λ's
        if self.REML:
            nu, Wt, Kt = self.n - self.p, W, K
        else:
            nu, Wt, Kt = self.n, 0.5 * (ZVZ + ZVZ.T), B
        Nt = Kt @ Lam
        k = len(self.pos)
        g, H = np.zeros(k), np.zeros((k, k))
        a = [np.bincount(c, weights=s[r], minlength=self.q) for r, c in self.pos]   # E_i's
        w = []                                            # D_i s = E_i u + Λ E_i's
        for i, (r, c) in enumerate(self.pos):
            wi = Lam @ a[i]
            np.add.at(wi, r, u[c])
            w.append(wi)
        dr = np.array([-s @ wi for wi in w])              # ∂r²
        for i, (ri, ci) in enumerate(self.pos):
            g[i] = 2.0 * Kt[ci, ri].sum() + nu * dr[i] / r2
            for j in range(i + 1):
                rj, cj = self.pos[j]
                # tr(P V_ij): E_iE_j' is non-zero only where the columns coincide
                same = ci[:, None] == cj[None, :]
                tr_ij = 2.0 * (Wt[rj[None, :], ri[:, None]] * same).sum()
                # tr(P V_j P V_i) = 2 tr(K E_j K E_i) + 2 tr(E_i' W E_j N)
                t1 = (Kt[np.ix_(ci, rj)] * Kt[np.ix_(cj, ri)].T).sum()
                t2 = (Wt[np.ix_(ri, rj)] * Nt[np.ix_(cj, ci)].T).sum()
                d2r = 2.0 * (w[j] @ W @ w[i]) - 2.0 * (a[i] @ a[j])
                H[i, j] = H[j, i] = tr_ij - 2.0 * (t1 + t2) \
                    + nu * (d2r / r2 - dr[i] * dr[j] / r2 ** 2)
        return g, H
