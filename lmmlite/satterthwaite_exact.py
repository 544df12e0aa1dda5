"""Exact derivatives for Satterthwaite's df: the Hessian of the deviance in φ = (θ, σ)
and the Jacobian of Cov(β̂) = σ²M(θ), in q x q algebra (woodbury.py).

With V = I + ZΛΛ'Z', Λ = Σ_i θ_i E_i (E_i = I ⊗ e_r e_c' on term k's columns),

    V_i  = ∂V/∂θ_i      = Z D_i Z',   D_i  = I ⊗ (e_r e_c'T_k' + T_k e_c e_r'),
    V_ij = ∂²V/∂θ_i∂θ_j = Z D_ij Z',  D_ij = I ⊗ δ(c_i = c_j)(e_ri e_rj' + e_rj e_ri')
                                              (terms alike, else 0),

P = V⁻¹ - V⁻¹X(X'V⁻¹X)⁻¹X'V⁻¹, W = Z'PZ, C = Z'V⁻¹Z, s = Z'Py and r² = y'Py
(the penalized residual sum of squares), the deviance
d(θ, σ) = ℓ(θ) + k log(2πσ²) + r²(θ)/σ² (ℓ = log|V| + log|X'V⁻¹X| and k = n - p
for REML, ℓ = log|V| and k = n for ML; Harville 1977, JASA 72, eq. 4.4-4.6) has

    ∂²ℓ/∂θ_i∂θ_j = tr(W̃ D_ij) - tr(W̃ D_j W̃ D_i)      (W̃ = W for REML, C for ML)
    ∂r²/∂θ_i = -s'D_i s,   ∂²r²/∂θ_i∂θ_j = 2 (D_j s)'W(D_i s) - s'D_ij s
    ∂²d/∂θ_i∂θ_j = ∂²ℓ + ∂²r²/σ²,  ∂²d/∂θ_i∂σ = -2 ∂r²/∂θ_i / σ³,
    ∂²d/∂σ² = -2k/σ² + 6r²/σ⁴,

and, with M = (X'V⁻¹X)⁻¹, ∂M/∂θ_i = M (X'V⁻¹Z D_i Z'V⁻¹X) M and ∂C/∂σ = 2σM.
lmerTest takes the same derivatives by Richardson-extrapolated differences
(inference.grad_hess reproduces that for small models); these are exact.
"""

import numpy as np

from .woodbury import LevelBlocks, Marginal, term_columns


def _theta_blocks(blocks, Ts):
    """For every θ_i: (term index, r, c, D_i) with D_i a :class:`LevelBlocks`."""
    out = []
    for k, (b, cols, T) in enumerate(zip(blocks, term_columns(blocks), Ts)):
        for j in range(b.ntheta):
            unit = np.zeros(b.ntheta)
            unit[j] = 1.0
            r, c = (int(x[0]) for x in np.nonzero(b.T(unit)))
            Er = np.zeros((b.p, b.p))
            Er[r, c] = 1.0
            out.append((k, r, c, LevelBlocks(cols, b.nlevels, b.p, Er @ T.T + T @ Er.T)))
    return out


def varpar_derivatives(dev, theta, sigma, REML):
    """(H, jac): the Hessian of d in (θ, σ) and [∂C/∂θ_1, ..., ∂C/∂θ_k, ∂C/∂σ]."""
    theta = np.asarray(theta, dtype=float)
    V = Marginal(dev, theta)
    y = dev.y
    Zy = np.asarray(V.Z.T @ y).ravel()
    ZVy, yVy = V.vinv_z(Zy, float(y @ y))
    XVy = dev.X.T @ y - V.ZX.T @ (V.M @ Zy)
    Minv = np.linalg.inv(V.XVX)
    beta = Minv @ XVy
    s = ZVy - V.ZVX @ beta                                   # Z'Py
    r2 = yVy - XVy @ beta                                    # y'Py
    F = V.ZVX @ Minv                                         # W = C - F X'V⁻¹Z
    if REML:                                                  # W̃ = W, formed in C's place
        Wt = V.C
        Wt -= F @ V.ZVX.T

        def Wv(v):
            return Wt @ v
    else:
        Wt = V.C

        def Wv(v):
            return Wt @ v - F @ (V.ZVX.T @ v)
    Ts = dev.split(theta)
    items = _theta_blocks(dev.blocks, Ts)
    nt = len(items)
    Ds = [D.embed(s) for (_, _, _, D) in items]              # D_i s
    WDs = [Wv(v) for v in Ds]
    dr = np.array([-(s @ v) for v in Ds])
    H = np.empty((nt + 1, nt + 1))
    for i, (ki, ri, ci, Di) in enumerate(items):
        for j in range(i + 1):
            kj, rj, cj, Dj = items[j]
            h = -Di.trace2(Dj, Wt)
            d2r = 2.0 * (Ds[j] @ WDs[i])
            if ki == kj and ci == cj:
                p = dev.blocks[ki].p
                E = np.zeros((p, p))
                E[ri, rj] += 1.0
                E[rj, ri] += 1.0
                Dij = LevelBlocks(Di.cols, Di.nlevels, p, E)
                h += Dij.trace(Wt)
                d2r -= Dij.quad(s, s)
            H[i, j] = H[j, i] = h + d2r / sigma ** 2
    kdf = dev.n - dev.p if REML else dev.n
    H[:nt, nt] = H[nt, :nt] = -2.0 * dr / sigma ** 3
    H[nt, nt] = -2.0 * kdf / sigma ** 2 + 6.0 * r2 / sigma ** 4
    jac = []
    for (_, _, _, D) in items:
        U = V.ZVX[D.cols]
        jac.append(sigma ** 2 * Minv @ (U.T @ D.apply(U)) @ Minv)
    jac.append(2.0 * sigma * Minv)
    return H, jac
