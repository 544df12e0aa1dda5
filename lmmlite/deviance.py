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
matrix.  How the cross-products of term 1 with the rest are stored is a
solver strategy (solvers.py: dense, blocked sparse, pair structure), chosen
by ``Deviance(..., solver=)``.
"""

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .covariance import CovarianceParameters
from .solvers import SOLVERS, WITHIN_MAX, Factor, choose_solver

__all__ = ["Deviance", "Factor", "SOLVERS", "Zb"]


def Zb(blocks, bs, start=None):
    """Σ_k Z_k b_k (added to ``start``): b_k a (levels x p) array per term, Z_k never formed."""
    out = np.zeros(len(blocks[0].codes)) if start is None else start
    for blk, bk in zip(blocks, bs):
        out += np.einsum("ij,ij->i", blk.X, bk[blk.codes])
    return out


def _dense(x):
    return x.toarray() if sp.issparse(x) else np.asarray(x)


class Deviance:
    """Precomputed cross-products of a model; evaluates d(θ) for REML or ML.

    Parameters
    ----------
    blocks : list of RandomBlock (from design.random_blocks)
    X : (n, p) fixed-effects matrix
    y : (n,) response
    REML : bool
        Which criterion ``__call__`` evaluates.
    solver : {"auto", "dense", "blocked", "pairs"}
        The storage strategy of the factorization (see solvers.py); all give
        the same numbers, "auto" chooses by the model's size.

    What the optimizer uses (optimize.optimize_theta): calling the object,
    θ -> d(θ) (+inf where Ω(θ) is not positive definite), and the θ layout in
    ``covariance`` (a :class:`~lmmlite.covariance.CovarianceParameters`):
    ``lower``, ``start`` and ``below`` (for each diagonal θ index, the indices
    below it in its column of T_k).
    """

    def __init__(self, blocks, X, y, REML=True, solver="auto"):
        self.blocks = blocks
        self.X, self.y = X, y
        Xc, yc = self._centre(X, y)
        self.Xc, self.yc = Xc, yc
        self.yty = float(yc @ yc)
        self.n, self.p = X.shape
        self.REML = REML
        self.covariance = CovarianceParameters.of_blocks(blocks)
        self.lower = self.covariance.lower
        self.start = self.covariance.start
        self.below = self.covariance.below()
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
        self.RtR_sparse = (R.T @ R).tocsr()        # m x m, sparse: Z_k'Z_k are diagonal
        self._RtR = None
        self.m = R.shape[1]
        self._R, self._within = R, False
        self.solver = choose_solver(self, (R.T @ blocks[0].Z()).tocsr(), solver)

    @property
    def RtR(self):
        """R'R as a dense m x m array (built on first use: the pair solver needs only
        the sparse one, and at 3,709 columns the dense one is 110 MB)."""
        if self._RtR is None:
            self._RtR = self.RtR_sparse.toarray()
        return self._RtR

    def within_scatter(self):
        """W = Σ_l P_l'P_l, P_l the rows of R = [Z_2.. X y] of level l of term 1 minus
        their projection on that level's z (term 1 scalar); None if not applicable.

        Computed once, from the rows, for the solvers' cancellation-free Schur
        complement at large θ_1.
        """
        if self._within is False:
            self._within = None
            b1 = self.blocks[0]
            B = self.B1[:, 0, 0] if self.p1 == 1 else None
            if B is not None and np.all(B > 0) and self.n * self.m <= WITHIN_MAX:
                z = b1.X[:, 0]
                means = (self._R.T @ sp.csc_matrix((z, (np.arange(self.n), b1.codes)),
                                                   shape=(self.n, self.l1))).toarray() / B
                P = self._R.toarray() - z[:, None] * means.T[b1.codes]
                self._within = P.T @ P
        return self._within

    def make_factor(self, L1, L21, L22, Ts):
        """A :class:`Factor` of this model (the solvers' common result)."""
        return Factor(L1=L1, L21=L21, L22=L22, q_rest=self.q_rest, p=self.p, Ainv=self.Ainv, Ts=Ts)

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
        return X - means[None, :], y - self.ybar     # = X A (the intercept column is 1)

    def split(self, theta):
        """The T_k of every term at θ."""
        return self.covariance.factors(theta)

    def factor(self, theta, full=True):
        """The blocked Cholesky factor of Ω(θ) (raises LinAlgError if not PD).

        With ``full=False`` the off-diagonal block L21 may be left out (it is
        not needed for the criterion).
        """
        Ts = self.split(np.asarray(theta, dtype=float))
        T1 = Ts[0]
        # term 1 diagonal blocks: T1' B_l T1 + I = L_l L_l'
        M = T1.T @ self.B1 @ T1 + np.eye(self.p1)
        return self.solver.factor(Ts, M, full=full)

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
        resid = self.yc - self.Zb(self.random_effects(u, fac.Ts), start=self.Xc @ gamma)
        return float(resid @ resid + u @ u)

    def random_effects(self, u, Ts):
        """b = Λu from the spherical u, as one (levels x p) array per term."""
        out, start = [], 0
        for b, T in zip(self.blocks, Ts):     # u: term 1 first, each level by level
            size = b.nlevels * b.p
            out.append(u[start:start + size].reshape(b.nlevels, b.p) @ T.T)
            start += size
        return out

    def Zb(self, bs, start=None):
        """Z b (added to ``start``) for random effects given per term as (levels x p) arrays."""
        return Zb(self.blocks, bs, start)

    def criterion(self, fac, REML=None):
        """The profiled deviance from a factor (eq. 34 for ML, 41 for REML)."""
        REML = self.REML if REML is None else REML
        r2 = self.pwrss(fac)
        if REML:
            nmp = self.n - self.p
            return fac.logdet_Z() + fac.logdet_X() + nmp * (1 + np.log(2 * np.pi * r2 / nmp))
        return fac.logdet_Z() + self.n * (1 + np.log(2 * np.pi * r2 / self.n))

    def too_large_for_derivatives(self):
        """More random effects than the dense q x q algebra of ProfiledDerivatives takes."""
        return sum(b.nlevels * b.p for b in self.blocks) > ProfiledDerivatives.MAX_Q

    def grad_hess(self, theta):
        """Exact gradient and Hessian of d at θ (see ProfiledDerivatives).

        None when the model has too many random effects for the dense q x q
        algebra; raises LinAlgError where d is not defined.
        """
        if self._derivs is None:
            if self.too_large_for_derivatives():
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
        # L22'[sol2; 0] = [ℓ2; 0] with the whole (contiguous) L22: its last row is
        # [ℓ2' r], so the last unknown is 0 and the rest solve L'sol2 = ℓ2
        # (no copy of the m x m block L22[:-1, :-1])
        ell2 = fac.L22[-1, :-1]
        sol2 = sla.solve_triangular(fac.L22, np.append(ell2, 0.0), trans="T", lower=True,
                                    check_finite=False)[:-1]
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


def _solve(cf, b):
    """cho_solve without the finite check (the factor and b come from finite data)."""
    return sla.cho_solve(cf, b, check_finite=False)


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
        cf = sla.cho_factor(LtG @ Lam + np.eye(self.q), lower=True, check_finite=False)
        B = _solve(cf, LtG)                               # Λ'Z'V⁻¹Z
        Bx = _solve(cf, Lam.T @ self.ZX)                  # Λ'Z'V⁻¹X
        By = _solve(cf, Lam.T @ self.Zy)                  # Λ'Z'V⁻¹y
        LZX, LZy = Lam.T @ self.ZX, Lam.T @ self.Zy
        XVX = self.XX - LZX.T @ Bx
        XVy = self.Xy - LZX.T @ By
        cx = sla.cho_factor(XVX, lower=True, check_finite=False)
        beta = _solve(cx, XVy)
        r2 = self.yy - LZy @ By - XVy @ beta
        ZVX = self.ZX - self.G @ (Lam @ Bx)               # Z'V⁻¹X
        ZVZ = self.G - self.G @ (Lam @ B)                 # Z'V⁻¹Z
        F = _solve(cx, ZVX.T)                             # (X'V⁻¹X)⁻¹X'V⁻¹Z
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
                t1 = (Kt[ci[:, None], rj[None, :]] * Kt[cj[:, None], ri[None, :]].T).sum()
                t2 = (Wt[ri[:, None], rj[None, :]] * Nt[cj[:, None], ci[None, :]].T).sum()
                d2r = 2.0 * (w[j] @ W @ w[i]) - 2.0 * (a[i] @ a[j])
                H[i, j] = H[j, i] = tr_ij - 2.0 * (t1 + t2) \
                    + nu * (d2r / r2 - dr[i] * dr[j] / r2 ** 2)
        return g, H
