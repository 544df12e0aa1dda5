"""Kenward-Roger's Φ, P_r, Q_rs and K_rs straight from their definitions, with a dense n x n Σ.

The reference for lmmlite.kenward_roger (which never forms Σ): Kenward & Roger
(1997), Biometrics 53, 983-997, eq. 2-5, with Σ = Σ_r γ_r G_r, G_r = Z_k D_r Z_k'
(D_r = I ⊗ E_r, E_r the unit symmetric matrix of γ_r's entry) and G_σ² = I.
Only for small n (memory ~ 8 n² bytes).
"""

import numpy as np

from lmmlite.covariance import tril_index


def dense_kr_pieces(fit):
    """(Φ, [P_r], {(r, s): Q_rs}, K) of a fit, every product formed with n x n matrices."""
    dev = fit.devfun
    n, X = dev.n, dev.X
    sigma2 = fit.sigma ** 2
    G = []
    Sigma = sigma2 * np.eye(n)
    for b, T in zip(dev.blocks, dev.split(fit.theta)):
        Z = b.Z().toarray()
        ZL = Z @ np.kron(np.eye(b.nlevels), T)
        Sigma += sigma2 * ZL @ ZL.T
        for i, j in tril_index(b.p):
            E = np.zeros((b.p, b.p))
            E[i, j] = E[j, i] = 1.0
            G.append(Z @ np.kron(np.eye(b.nlevels), E) @ Z.T)
    G.append(np.eye(n))
    Sinv = np.linalg.inv(Sigma)
    Phi = np.linalg.inv(X.T @ Sinv @ X)
    SG = [Sinv @ g for g in G]                     # Σ⁻¹G_r
    P = [-(X.T @ sg @ Sinv @ X) for sg in SG]
    m = len(G)
    Q, K = {}, np.empty((m, m))
    for a in range(m):
        for b in range(m):
            Q[a, b] = X.T @ SG[a] @ SG[b] @ Sinv @ X
            K[a, b] = np.trace(SG[a] @ SG[b])
    return Phi, P, Q, K
