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
gives V⁻¹ = I - ZMZ' (woodbury.py), so with G = Z'Z (sparse), N = M Z'X:

    V⁻¹X = X - ZN,          Z'V⁻¹X = Z'X - GN,       X'V⁻¹X = X'X - X'ZN,
    V⁻¹Z = Z(I - MG),       C = Z'V⁻¹Z = G - GMG,
    V⁻²X = X - ZN₂,         N₂ = N + M Z'V⁻¹X,

from which X'V⁻²X = (V⁻¹X)'(V⁻¹X), X'V⁻³X = (V⁻¹X)'(V⁻²X), Z'V⁻²X = Z'X - GN₂,
tr(V⁻²) = n - 2 tr(MG) + tr(MGMG) and the diagonal blocks of Z'V⁻²Z =
Z'V⁻¹(I - ZMZ')Z = (I - GM)C.  The dense q x q matrices are M, GM and C: about
3 x 8q² bytes (0.4 GB at InstEval's q = 4,114), against 8n² (43 GB at its
n = 73,421) for Σ⁻¹.
"""

import numpy as np

from .covariance import tril_index
from .errors import LmmError
from .threads import blas_single_thread
from .woodbury import LevelBlocks, Marginal, term_columns


def _unit(p, i, j):
    """E_r: the symmetric p x p matrix with ones at (i, j) and (j, i)."""
    E = np.zeros((p, p))
    E[i, j] = E[j, i] = 1.0
    return E


def generators(blocks):
    """D_r = I ⊗ E_r of every random-term γ_r (G_r = Z D_r Z'), in γ's order."""
    return [LevelBlocks(cols, b.nlevels, b.p, _unit(b.p, i, j))
            for b, cols in zip(blocks, term_columns(blocks)) for i, j in tril_index(b.p)]


def kr_pieces(dev, theta, sigma):
    """Φ and the lists P, Q (dict by (r, s)), K of Kenward & Roger at (θ, σ), in the γ
    order of ``CovarianceParameters.gamma`` (every Σ_k's lower triangle, then σ²)."""
    V = Marginal(dev, theta)
    s2 = sigma ** 2
    N, ZVX, G = V.N, V.ZVX, V.G
    N2 = N + V.M @ ZVX                                       # V⁻²X = X - Z N₂
    ZV2X = V.ZX - G @ N2                                     # Z'V⁻²X
    XV2X = V.XX - V.ZX.T @ N - N.T @ V.ZX + N.T @ (G @ N)    # (V⁻¹X)'(V⁻¹X)
    XV3X = V.XX - V.ZX.T @ N2 - N.T @ V.ZX + N.T @ (G @ N2)  # (V⁻¹X)'(V⁻²X)
    XV3X = 0.5 * (XV3X + XV3X.T)
    trV2 = V.n - 2.0 * np.trace(V.GM) + float(np.sum(V.GM * V.GM.T))

    gens = generators(dev.blocks)
    mz = len(gens)                 # the random-term generators; index mz is σ²
    m = mz + 1
    DU = [g.apply(ZVX[g.cols]) for g in gens]                # D_r Z_k'V⁻¹X
    P = [-(ZVX[g.cols].T @ DU[r]) / s2 ** 2 for r, g in enumerate(gens)]
    P.append(-XV2X / s2 ** 2)
    CD = [V.C[:, g.cols] @ DU[r] for r, g in enumerate(gens)]   # C D_s Z_l'V⁻¹X
    Q, K = {}, np.empty((m, m))
    for a, ga in enumerate(gens):
        for b in range(a, mz):
            Q[a, b] = DU[a].T @ CD[b][ga.cols] / s2 ** 3
            Q[b, a] = Q[a, b].T
            K[a, b] = K[b, a] = ga.trace2(gens[b], V.C) / s2 ** 2
        # with σ² (G = I): Q = X'V⁻²Z D_a Z'V⁻¹X, K = tr(D_a Z'V⁻²Z)
        Q[mz, a] = ZV2X[ga.cols].T @ DU[a] / s2 ** 3
        Q[a, mz] = Q[mz, a].T
        K[a, mz] = K[mz, a] = ga.trace(V.C, V.GM) / s2 ** 2
    Q[mz, mz] = XV3X / s2 ** 3
    K[mz, mz] = trV2 / s2 ** 2
    Phi = s2 * np.linalg.inv(V.XVX)
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
        with blas_single_thread():      # as lmer: threads only thrash on these sizes
            Phi, P, Q, K = kr_pieces(fit.devfun, np.asarray(fit.theta, dtype=float),
                                     float(fit.sigma))
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
