"""Kenward-Roger's adjusted covariance and df, with nothing of size n x n.

Kenward & Roger (1997), Biometrics 53, 983-997; as pbkrtest (Halekoh &
Højsgaard 2014, J. Stat. Softw. 59(9)); REML fits only.  The covariance of y is
Σ = σ²V, V = I + ZΛΛ'Z', linear in the variance/covariance parameters γ (one
per entry of the lower triangle of each Σ_k = σ²T_kT_k', then σ²):

    Σ = Σ_r γ_r G_r,   G_r = Z D_r Z'  (D_r = I ⊗ E_r on term k's columns,
                                        E_r the unit symmetric matrix of entry (i, j)),
    G_σ² = I.

Since ∂²Σ/∂γ_r∂γ_s = 0 (R_rs = 0), Kenward & Roger's eq. 2-5 need

    Φ = (X'Σ⁻¹X)⁻¹,  P_r = -X'Σ⁻¹G_rΣ⁻¹X,  Q_rs = X'Σ⁻¹G_rΣ⁻¹G_sΣ⁻¹X,
    K_rs = tr(Σ⁻¹G_rΣ⁻¹G_s),

and then I_E[r, s] = ½(K_rs - 2 tr(ΦQ_rs) + tr(ΦP_rΦP_s)), W = I_E⁻¹ and
Φ_A = Φ + 2Φ{Σ_rs W_rs (Q_rs - P_rΦP_s)}Φ.

Every one of these is a p x p (or scalar) product of q x q and q x p matrices
(q random effects).  With A = Λ'Z'ZΛ + I and M = ΛA⁻¹Λ', the Woodbury identity
gives V⁻¹ = I - ZMZ', so with G = Z'Z (sparse), N = M Z'X:

    V⁻¹X = X - ZN,          Z'V⁻¹X = Z'X - GN,       X'V⁻¹X = X'X - X'ZN,
    V⁻¹Z = Z(I - MG),       C = Z'V⁻¹Z = G - GMG,
    V⁻²X = X - ZN₂,         N₂ = N + M Z'V⁻¹X,

from which X'V⁻²X = (V⁻¹X)'(V⁻¹X), X'V⁻³X = (V⁻¹X)'(V⁻²X), Z'V⁻²X = Z'X - GN₂,
tr(V⁻²) = n - 2 tr(MG) + tr(MGMG) and the diagonal blocks of Z'V⁻²Z =
(I - MG)'G(I - MG).  The dense q x q matrices are A⁻¹ (one Cholesky), M, GM and
C: about 4 x 8q² bytes (0.5 GB at InstEval's q = 4,114), against 8n² (43 GB at
its n = 73,421) for Σ⁻¹.
"""

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .covariance import tril_index
from .errors import LmmError


def _unit(p, i, j):
    """E_r: the symmetric p x p matrix with ones at (i, j) and (j, i)."""
    E = np.zeros((p, p))
    E[i, j] = E[j, i] = 1.0
    return E


def _spd_inverse(A):
    """A⁻¹ of a symmetric positive definite A (LAPACK potrf + potri), both triangles."""
    c, info = sla.lapack.dpotrf(A, lower=1, clean=1, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError("Λ'Z'ZΛ + I is not positive definite")
    inv, info = sla.lapack.dpotri(c, lower=1, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError("Λ'Z'ZΛ + I could not be inverted")
    low = np.tril(inv)
    return low + np.tril(inv, -1).T


class _Generators:
    """The G_r = Z D_r Z' of the random terms: their term's columns and E_r."""

    def __init__(self, blocks):
        self.items = []           # (slice of the term's columns, nlevels, p_k, E_r)
        start = 0
        for b in blocks:
            cols = slice(start, start + b.nlevels * b.p)
            for i, j in tril_index(b.p):
                self.items.append((cols, b.nlevels, b.p, _unit(b.p, i, j)))
            start += b.nlevels * b.p

    def apply(self, r, U):
        """D_r U for U with the rows of r's term (levels x p_k rows, level by level)."""
        cols, nl, pk, E = self.items[r]
        if pk == 1:
            return U
        U3 = U.reshape(nl, pk, -1)
        return np.einsum("ij,ljc->lic", E, U3).reshape(U.shape)

    def trace2(self, a, b, C):
        """tr(D_a C_kl D_b C_lk) for a symmetric C (k, l the terms of a and b)."""
        ca, na, pa, Ea = self.items[a]
        cb, nb, pb, Eb = self.items[b]
        Ckl = C[ca, cb]
        if pa == 1 and pb == 1:
            return float(np.sum(Ckl * Ckl))
        C4 = Ckl.reshape(na, pa, nb, pb)
        DCD = np.einsum("ij,xjyk,kl->xiyl", Ea, C4, Eb)
        return float(np.sum(DCD * C4))

    def block_trace(self, r, F, GF):
        """tr(D_r S_kk) for S = F'GF, from F and GF restricted to the term's columns."""
        cols, nl, pk, E = self.items[r]
        i, j = np.nonzero(np.tril(E))
        i, j = int(i[0]), int(j[0])
        idx = np.arange(nl) * pk
        s = float(np.sum(F[:, idx + i] * GF[:, idx + j]))
        return s if i == j else 2.0 * s


def kr_pieces(dev, theta, sigma):
    """Φ and the lists P, Q (dict by (r, s)), K of Kenward & Roger at (θ, σ), in the γ
    order of ``CovarianceParameters.gamma`` (every Σ_k's lower triangle, then σ²)."""
    X = dev.X
    n, p = X.shape
    Z = sp.hstack([b.Z() for b in dev.blocks], format="csr")
    q = Z.shape[1]
    s2 = sigma ** 2
    Lam = sp.block_diag([sp.kron(sp.identity(b.nlevels), T, format="csr")
                         for b, T in zip(dev.blocks, dev.split(theta))], format="csr")
    G = (Z.T @ Z).tocsr()
    ZX = np.asarray(Z.T @ X)
    XX = X.T @ X
    A = (Lam.T @ G @ Lam).toarray()
    A[np.diag_indices(q)] += 1.0
    Ainv = _spd_inverse(A)
    del A
    M = np.asarray(Lam @ np.asarray(Lam @ Ainv).T)          # Λ A⁻¹ Λ' (A⁻¹ symmetric)
    del Ainv
    GM = np.asarray(G @ M)                                   # G M; (GM)' = M G
    C = G.toarray() - np.asarray(G @ GM.T)                   # Z'V⁻¹Z = G - GMG
    N = M @ ZX
    ZVX = ZX - G @ N                                         # Z'V⁻¹X
    XVX = XX - ZX.T @ N                                      # X'V⁻¹X
    N2 = N + M @ ZVX                                         # V⁻²X = X - Z N₂
    del M
    ZV2X = ZX - G @ N2                                       # Z'V⁻²X
    XV2X = XX - ZX.T @ N - N.T @ ZX + N.T @ (G @ N)          # (V⁻¹X)'(V⁻¹X)
    XV3X = XX - ZX.T @ N2 - N.T @ ZX + N.T @ (G @ N2)        # (V⁻¹X)'(V⁻²X)
    XV3X = 0.5 * (XV3X + XV3X.T)
    trV2 = n - 2.0 * np.trace(GM) + float(np.sum(GM * GM.T))

    gens = _Generators(dev.blocks)
    mz = len(gens.items)           # the random-term generators; index mz is σ²
    m = mz + 1
    DU = [gens.apply(r, ZVX[it[0]]) for r, it in enumerate(gens.items)]   # D_r Z_k'V⁻¹X
    P = [-(ZVX[it[0]].T @ DU[r]) / s2 ** 2 for r, it in enumerate(gens.items)]
    P.append(-XV2X / s2 ** 2)
    CD = [C[:, it[0]] @ DU[r] for r, it in enumerate(gens.items)]         # C D_s U_s
    Q, K = {}, np.empty((m, m))
    for a, ia in enumerate(gens.items):
        for b in range(a, mz):
            Q[a, b] = DU[a].T @ CD[b][ia[0]] / s2 ** 3
            Q[b, a] = Q[a, b].T
            K[a, b] = K[b, a] = gens.trace2(a, b, C) / s2 ** 2
        # with σ²: Q = X'V⁻²Z D_a Z'V⁻¹X, K = tr(D_a Z'V⁻²Z)
        Q[mz, a] = ZV2X[ia[0]].T @ DU[a] / s2 ** 3
        Q[a, mz] = Q[mz, a].T
        cols = ia[0]
        F = -GM[cols].T                                       # (I - MG)[:, cols]
        F[np.arange(cols.start, cols.stop), np.arange(cols.stop - cols.start)] += 1.0
        K[a, mz] = K[mz, a] = gens.block_trace(a, F, np.asarray(G @ F)) / s2 ** 2
    Q[mz, mz] = XV3X / s2 ** 3
    K[mz, mz] = trV2 / s2 ** 2
    Phi = s2 * np.linalg.inv(XVX)
    return Phi, P, Q, K


def kr_adjust(Phi, P, Q, K):
    """Kenward & Roger's W (2 x the inverse expected information of γ) and Φ_A."""
    m = len(P)
    IE2 = np.empty((m, m))                # 2 I_E
    for a in range(m):
        PhiPa = Phi @ P[a]
        for b in range(a, m):
            IE2[a, b] = IE2[b, a] = (K[a, b] - 2 * np.sum(Phi * Q[a, b])
                                     + np.sum(PhiPa * (P[b] @ Phi)))
    ev = np.linalg.eigvalsh(IE2)
    W = 2 * (np.linalg.inv(IE2) if np.min(np.abs(ev)) > 1e-10 else np.linalg.pinv(IE2))
    UU = np.zeros_like(Phi)
    for a in range(m):
        for b in range(m):
            UU += W[a, b] * (Q[a, b] - P[a] @ Phi @ P[b])
    return W, Phi + 2 * Phi @ UU @ Phi


class KenwardRoger:
    """Kenward-Roger adjusted Cov(β̂) (Φ_A) and the pieces for its df (REML fits only).

    Attributes
    ----------
    vcov_adj : (p, p) array, Φ_A
    vcov : (p, p) array, Φ = Cov(β̂) unadjusted
    P : list of (p, p) arrays, P_r = -X'Σ⁻¹G_rΣ⁻¹X
    W : (m, m) array, 2 × inverse expected information of γ
    """

    def __init__(self, fit):
        if not fit.REML:
            raise LmmError("Kenward-Roger's method is only available for REML fits; "
                           "refit the model with REML=True")
        Phi, P, Q, K = kr_pieces(fit.devfun, np.asarray(fit.theta, dtype=float), float(fit.sigma))
        self.W, self.vcov_adj = kr_adjust(Phi, P, Q, K)
        self.vcov, self.P = Phi, P
        self.gamma = fit.covariance.gamma(fit.theta, fit.sigma)

    def _A(self, L):
        V0 = self.vcov
        Theta = L.T @ np.linalg.solve(L @ V0 @ L.T, L)
        u = [Theta @ V0 @ Pr @ V0 for Pr in self.P]
        tr = np.array([np.trace(ui) for ui in u])
        m = len(u)
        A1 = float(tr @ self.W @ tr)
        A2 = float(sum(self.W[a, b] * np.sum(u[a] * u[b].T) for a in range(m) for b in range(m)))
        return A1, A2

    def ddf(self, L):
        """Kenward-Roger denominator df for the hypothesis Lβ = 0 (L: q x p or a vector)."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        A1, A2 = self._A(L)
        return kr_df(A1, A2, L.shape[0])

    def ftest(self, L, beta):
        """KR F test of Lβ = 0 (L of full row rank q).

        Returns (F, q, ddf, F_unscaled, scale): the Wald statistic with Φ_A
        divided by q, scaled by λ = ddf (1 - A2/q) / (ddf - 2) (Kenward &
        Roger 1997, eq. 10; λ = 1 when ddf is within 0.01 of 2, as pbkrtest).
        """
        L = np.atleast_2d(np.asarray(L, dtype=float))
        q = np.linalg.matrix_rank(L)
        A1, A2 = self._A(L)
        ddf = kr_df(A1, A2, q)
        lam = 1.0 if abs(ddf - 2) < 0.01 else ddf * (1 - A2 / q) / (ddf - 2)
        Lb = L @ beta
        F_unscaled = float(Lb @ np.linalg.solve(L @ self.vcov_adj @ L.T, Lb)) / q
        return lam * F_unscaled, q, ddf, F_unscaled, lam


def kr_df(A1, A2, q):
    """pbkrtest's Lb_ddf: the KR df from A1, A2 (Kenward & Roger 1997, eq. 7-10)."""
    B = (A1 + 6 * A2) / (2 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    den = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    V0 = 1 + c1 * B
    V1 = 1 - c2 * B
    V2 = 1 - c3 * B
    V0 = 0.0 if abs(V0) < 1e-10 else V0
    x = 1 - A2 / q
    ratio = 1.0 if (abs(x) < 1e-14 and abs(V1) < 1e-14) else x / V1
    rho = ratio ** 2 * V0 / V2 / q
    return 4 + (q + 2) / (q * rho - 1)
