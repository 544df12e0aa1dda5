"""Stage 6: denominator degrees of freedom for t and F tests of fixed effects.

Satterthwaite (as lmerTest; Kuznetsova, Brockhoff & Christensen 2017,
"lmerTest Package: Tests in Linear Mixed Effects Models", J. Stat. Softw.
82(13), sections 3.1-3.2).  The variance parameters are φ = (θ, σ) with σ
explicit, and the deviance (-2 log-likelihood, REML or ML) in φ is::

    d(θ, σ) = log|L_Z|² [+ log|R_X|²] + k log(2πσ²) + r²(θ)/σ²,
    k = n - p (REML) or n (ML),

with L_Z, R_X and the penalized residual sum of squares r² from the blocked
Cholesky factor (deviance.py).  With H the Hessian of d at φ̂, the
asymptotic covariance of φ̂ is A = 2 H⁻¹, and Cov(β̂) = C(φ) = σ² M(θ),
M = (R_X'R_X)⁻¹.  For a contrast L, ν = 2 (L'CL)² / (g'Ag), g_i = L'(∂C/∂φ_i)L
(eq. 6 of the paper).

Derivatives: everything in σ is analytic (∂d/∂σ, ∂²d/∂σ², ∂²d/∂σ∂θ,
∂C/∂σ = 2σM); the θ derivatives of log|L_Z|²+log|R_X|², r²(θ) and M(θ) are
central differences refined by Richardson extrapolation (four step sizes),
accurate to ~1e-9 relative.  H is inverted on its positive eigenvalues
(> 1e-8), as lmerTest does for singular fits.

Kenward-Roger (Kenward & Roger 1997, Biometrics 53, 983-997; as pbkrtest,
Halekoh & Højsgaard 2014, J. Stat. Softw. 59(9)): REML fits only.  The
covariance Σ = Σ_r γ_r G_r is linear in the variance/covariance parameters γ
(one per element of each term's covariance matrix, plus σ²), so the second
derivatives of Σ vanish and Φ_A = Φ + 2 Φ U Φ (eq. 2-5 of Kenward & Roger
with R_ij = 0).  Computed with a dense n x n Σ⁻¹: fine for n up to a few
thousand observations (memory ~ 8 n² bytes).
"""

import numpy as np
import pandas as pd
from scipy import stats

from .covariance import tril_index
from .errors import LmmError

_RICH_LEVELS = 4


# --------------------------------------------------------------------------
# numerical derivatives with Richardson extrapolation
def _richardson(vals):
    """Extrapolate estimates at steps h, h/2, h/4, ... with errors in even powers of h."""
    vals = [np.asarray(v, dtype=float) for v in vals]
    m = 1
    while len(vals) > 1:
        f = 4.0 ** m
        vals = [(f * vals[i + 1] - vals[i]) / (f - 1) for i in range(len(vals) - 1)]
        m += 1
    return vals[0]


def grad_hess(f, x, h0):
    """Gradient and Hessian of a vector-valued ``f`` (returns a 1-D array) at ``x``.

    Central differences with steps ``h0 / 2**k``, k = 0..3, Richardson-
    extrapolated.  Returns (f(x), G, H) with G[i] = ∂f/∂x_i and
    H[i, j] = ∂²f/∂x_i∂x_j (each an array shaped like f(x)).
    """
    x = np.asarray(x, dtype=float)
    k = len(x)
    f0 = np.asarray(f(x), dtype=float)
    G = [[None] * _RICH_LEVELS for _ in range(k)]
    H = [[[None] * _RICH_LEVELS for _ in range(k)] for _ in range(k)]
    for lev in range(_RICH_LEVELS):
        h = h0 / 2 ** lev
        fp, fm = [], []
        for i in range(k):
            e = np.zeros(k)
            e[i] = h[i]
            fp.append(np.asarray(f(x + e)))
            fm.append(np.asarray(f(x - e)))
            G[i][lev] = (fp[i] - fm[i]) / (2 * h[i])
            H[i][i][lev] = (fp[i] - 2 * f0 + fm[i]) / h[i] ** 2
        for i in range(k):
            for j in range(i + 1, k):
                ei, ej = np.zeros(k), np.zeros(k)
                ei[i], ej[j] = h[i], h[j]
                v = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) \
                    / (4 * h[i] * h[j])
                H[i][j][lev] = np.asarray(v)
    grad = np.array([_richardson(G[i]) for i in range(k)])
    hess = np.empty((k, k) + f0.shape)
    for i in range(k):
        hess[i, i] = _richardson(H[i][i])
        for j in range(i + 1, k):
            hess[i, j] = hess[j, i] = _richardson(H[i][j])
    return f0, grad, hess


def _steps(theta):
    return np.maximum(0.1 * np.abs(theta), 0.005)


# --------------------------------------------------------------------------
# Satterthwaite
class SatterthwaiteModel:
    """The pieces lmerTest keeps: Cov(β̂), A = Cov(φ̂) and ∂Cov(β̂)/∂φ_i.

    Attributes
    ----------
    vcov_beta : (p, p) array, σ² M(θ̂)
    vcov_varpar : (k+1, k+1) array, A = 2 H⁻¹ (pseudo-inverse on H's positive eigenvalues)
    jac : list of (p, p) arrays, ∂C/∂θ_1 .. ∂C/∂θ_k, ∂C/∂σ
    hessian : the Hessian H of the deviance in φ = (θ, σ)
    """

    def __init__(self, fit, tol=1e-8):
        dev = fit.devfun
        theta = np.asarray(fit.theta, dtype=float)
        sigma = float(fit.sigma)
        REML = fit.REML
        p = dev.p
        kdf = dev.n - p if REML else dev.n

        def parts(th):
            fac = dev.factor(th)
            a = fac.logdet_Z() + (fac.logdet_X() if REML else 0.0)
            Ri = np.linalg.inv(fac.RX())
            return np.concatenate([[a, dev.pwrss(fac)], (Ri @ Ri.T).ravel()])

        f0, G, Hh = grad_hess(parts, theta, _steps(theta))
        r2 = f0[1]
        M = f0[2:].reshape(p, p)
        nt = len(theta)
        H = np.empty((nt + 1, nt + 1))
        H[:nt, :nt] = Hh[:, :, 0] + Hh[:, :, 1] / sigma ** 2
        H[:nt, nt] = H[nt, :nt] = -2.0 * G[:, 1] / sigma ** 3
        H[nt, nt] = -2.0 * kdf / sigma ** 2 + 6.0 * r2 / sigma ** 4
        self.hessian = H
        w, V = np.linalg.eigh(H)
        self.eigenvalues = w
        pos = w > tol
        self.vcov_varpar = 2.0 * (V[:, pos] / w[pos]) @ V[:, pos].T
        self.jac = [sigma ** 2 * G[i, 2:].reshape(p, p) for i in range(nt)]
        self.jac.append(2.0 * sigma * M)
        self.vcov_beta = fit.vcov.to_numpy()
        self.sigma = sigma

    def ddf(self, L):
        """Satterthwaite df of the 1-D contrast L'β."""
        L = np.asarray(L, dtype=float)
        var = L @ self.vcov_beta @ L
        g = np.array([L @ J @ L for J in self.jac])
        return 2.0 * var ** 2 / (g @ self.vcov_varpar @ g)


def satterthwaite(fit):
    """The :class:`SatterthwaiteModel` of a fit (built once, kept by the fit: the derivatives are costly)."""
    return fit.cached("satterthwaite", SatterthwaiteModel)


# --------------------------------------------------------------------------
# Kenward-Roger
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
        dev = fit.devfun
        n = dev.n
        X = dev.X
        sigma2 = fit.sigma ** 2
        # covariance parameters γ (covariance.gamma: vech of each Σ_k, then σ²) and the
        # generators (Z_s, D_r): G_r = Z_s D_r Z_s', D_r = I ⊗ E_r, E_r the unit
        # symmetric matrix of γ_r's entry (i, j)
        Zs = [b.Z().toarray() for b in dev.blocks]
        gens = []           # (block index or None for residual, E_r or None)
        for s, b in enumerate(dev.blocks):
            for i, j in tril_index(b.p):
                E = np.zeros((b.p, b.p))
                E[i, j] = E[j, i] = 1.0
                gens.append((s, E))
        gens.append((None, None))
        gamma = fit.covariance.gamma(fit.theta, fit.sigma)
        Sigma = sigma2 * np.eye(n)
        for s, (b, T) in enumerate(zip(dev.blocks, dev.split(fit.theta))):
            ZL = Zs[s] @ np.kron(np.eye(b.nlevels), T)
            Sigma += sigma2 * ZL @ ZL.T
        cf = np.linalg.cholesky(Sigma)
        Winv = np.linalg.inv(cf)
        Sinv = Winv.T @ Winv
        WX = Sinv @ X
        Phi = np.linalg.inv(X.T @ WX)
        m = len(gens)

        def Zof(r):
            s, E = gens[r]
            return None if s is None else Zs[s]

        def Dmul(r, A, left):
            """D_r A (left) or A D_r (right) with D_r = I ⊗ E_r (identity for σ²)."""
            s, E = gens[r]
            if s is None:
                return A
            D = np.kron(np.eye(dev.blocks[s].nlevels), E)
            return D @ A if left else A @ D

        # U_r = Z_r' Σ⁻¹ X, and the cross products Z_a' Σ⁻¹ Z_b
        U = [WX if Zof(r) is None else Zof(r).T @ WX for r in range(m)]
        SZ = {}

        def cross(a, b):
            key = (gens[a][0], gens[b][0])
            if key not in SZ:
                za, zb = Zof(a), Zof(b)
                left = Sinv if za is None else za.T @ Sinv
                SZ[key] = left if zb is None else left @ zb
            return SZ[key]

        P = [-(U[r].T @ Dmul(r, U[r], True)) for r in range(m)]
        Q = {}
        K = np.empty((m, m))
        for a in range(m):
            for b in range(a, m):
                C = cross(a, b)
                DaC = Dmul(a, C, True)
                DaCDb = Dmul(b, DaC, False)
                Q[a, b] = U[a].T @ DaCDb @ U[b]
                Q[b, a] = Q[a, b].T
                # tr(G_a Σ⁻¹ G_b Σ⁻¹) = tr(D_a C_ab D_b C_ba)
                K[a, b] = K[b, a] = np.sum(DaCDb * cross(b, a).T)
        IE2 = np.empty((m, m))
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
        self.vcov = Phi
        self.vcov_adj = Phi + 2 * Phi @ UU @ Phi
        self.P, self.W, self.gamma = P, W, gamma

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
        return _kr_df(A1, A2, L.shape[0])

    def ftest(self, L, beta):
        """KR F test of Lβ = 0 (L of full row rank q).

        Returns (F, q, ddf, F_unscaled, scale): the Wald statistic with Φ_A
        divided by q, scaled by λ = ddf (1 - A2/q) / (ddf - 2) (Kenward &
        Roger 1997, eq. 10; λ = 1 when ddf is within 0.01 of 2, as pbkrtest).
        """
        L = np.atleast_2d(np.asarray(L, dtype=float))
        q = np.linalg.matrix_rank(L)
        A1, A2 = self._A(L)
        ddf = _kr_df(A1, A2, q)
        lam = 1.0 if abs(ddf - 2) < 0.01 else ddf * (1 - A2 / q) / (ddf - 2)
        Lb = L @ beta
        F_unscaled = float(Lb @ np.linalg.solve(L @ self.vcov_adj @ L.T, Lb)) / q
        return lam * F_unscaled, q, ddf, F_unscaled, lam


def _kr_df(A1, A2, q):
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


def kenward_roger(fit):
    """The :class:`KenwardRoger` of a REML fit (built once, kept by the fit)."""
    return fit.cached("kenward_roger", KenwardRoger)


# --------------------------------------------------------------------------
# public functions
def _check_ddf(ddf):
    if ddf not in ("Satterthwaite", "Kenward-Roger"):
        raise LmmError(f"ddf must be 'Satterthwaite' or 'Kenward-Roger', not {ddf!r}")


def fixef_ddf(fit, ddf="Satterthwaite"):
    """Denominator df and standard errors of each fixed effect.

    Parameters
    ----------
    fit : LmerFit
    ddf : {"Satterthwaite", "Kenward-Roger"}

    Returns
    -------
    df, se : arrays of length p (``se`` is the KR-adjusted standard error
    for Kenward-Roger, the usual one for Satterthwaite).
    """
    _check_ddf(ddf)
    p = len(fit.fixef)
    eye = np.eye(p)
    if ddf == "Satterthwaite":
        sm = satterthwaite(fit)
        df = np.array([sm.ddf(eye[i]) for i in range(p)])
        se = np.sqrt(np.diag(sm.vcov_beta))
    else:
        kr = kenward_roger(fit)
        df = np.array([kr.ddf(eye[i]) for i in range(p)])
        se = np.sqrt(np.diag(kr.vcov_adj))
    return df, se


def contest1d(fit, L, rhs=0.0, ddf="Satterthwaite"):
    """t test of L'β = rhs: a one-row DataFrame as lmerTest's ``contest1D``."""
    _check_ddf(ddf)
    L = np.asarray(L, dtype=float).ravel()
    if L.size != len(fit.fixef):
        raise LmmError(f"contrast has {L.size} elements; the model has {len(fit.fixef)} fixed effects")
    est = float(L @ fit.fixef.to_numpy())
    if ddf == "Satterthwaite":
        sm = satterthwaite(fit)
        var, df = float(L @ sm.vcov_beta @ L), sm.ddf(L)
    else:
        kr = kenward_roger(fit)
        var, df = float(L @ kr.vcov_adj @ L), kr.ddf(L)
    se = np.sqrt(var)
    t = (est - rhs) / se
    return pd.DataFrame({"Estimate": [est], "Std. Error": [se], "df": [df], "t value": [t],
                         "Pr(>|t|)": [2 * stats.t.sf(abs(t), df)]})


def _fstat_ddf(nu, tol=1e-8):
    """Df of an F statistic from the df of its q orthogonal t statistics (lmerTest, eq. 9)."""
    nu = np.asarray(nu, dtype=float)
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(nu.mean())
    if np.any(nu <= 2):
        return 2.0
    E = np.sum(nu / (nu - 2))
    return float(2 * E / (E - nu.size))


def contestMD(fit, L, rhs=0.0, ddf="Satterthwaite", eps=np.sqrt(np.finfo(float).eps)):
    """F test of Lβ = rhs (L: q x p) as lmerTest's ``contestMD``.

    Returns a dict with ``Sum Sq``, ``Mean Sq``, ``NumDF``, ``DenDF``,
    ``F value``, ``Pr(>F)``.  Satterthwaite: L is rotated to the eigenvectors
    of L Cov(β̂) L' (dropping null directions); F is the mean of the q squared
    t statistics, with the df of eq. 9 of Kuznetsova et al. (2017).
    """
    _check_ddf(ddf)
    L = np.atleast_2d(np.asarray(L, dtype=float))
    beta = fit.fixef.to_numpy()
    if L.shape[1] != beta.size:
        raise LmmError(f"contrast matrix has {L.shape[1]} columns; the model has {beta.size} fixed effects")
    rhs = np.broadcast_to(np.asarray(rhs, dtype=float), (L.shape[0],))
    if np.any(rhs != 0):
        beta = beta - np.linalg.pinv(L) @ rhs
    sigma = fit.sigma

    def table(F, ndf, ddf_, scale=1.0):
        ms = F * sigma ** 2
        Fs = F * scale
        return {"Sum Sq": ms * ndf, "Mean Sq": ms, "NumDF": ndf, "DenDF": ddf_,
                "F value": Fs, "Pr(>F)": stats.f.sf(Fs, ndf, ddf_)}

    if ddf == "Kenward-Roger":
        kr = kenward_roger(fit)
        Fs, q, d, Fu, lam = kr.ftest(L, beta)
        return table(Fu, q, d, scale=lam)
    sm = satterthwaite(fit)
    if L.shape[0] == 1:
        var = float(L[0] @ sm.vcov_beta @ L[0])
        t = float(L[0] @ beta) / np.sqrt(var)
        return table(t ** 2, 1, sm.ddf(L[0]))
    VL = L @ sm.vcov_beta @ L.T
    d, Pm = np.linalg.eigh(VL)
    order = np.argsort(d)[::-1]
    d, Pm = d[order], Pm[:, order]
    tol = max(eps * d[0], 0)
    q = int(np.sum(d > tol))
    if q == 0:
        return table(np.nan, 0, np.nan)
    PtL = (Pm.T @ L)[:q]
    if q == 1:
        var = float(PtL[0] @ sm.vcov_beta @ PtL[0])
        t = float(PtL[0] @ beta) / np.sqrt(var)
        return table(t ** 2, 1, sm.ddf(PtL[0]))
    t2 = (PtL @ beta) ** 2 / d[:q]
    F = float(t2.sum() / q)
    nu = [sm.ddf(PtL[m]) * 1.0 for m in range(q)]
    # sm.ddf uses L'CL for the numerator; here that equals d[m]
    return table(F, q, _fstat_ddf(nu))


def contest(fit, L, rhs=0.0, ddf="Satterthwaite"):
    """Test a contrast of the fixed effects, as lmerTest's ``contest``.

    A vector ``L`` (length p) gives the t test of L'β = rhs (a DataFrame
    with Estimate, Std. Error, df, t value, Pr(>|t|)); a matrix (q x p) the
    joint F test of Lβ = rhs (Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F)).
    """
    L = np.asarray(L, dtype=float)
    if L.ndim == 1:
        return contest1d(fit, L, rhs, ddf)
    return pd.DataFrame([contestMD(fit, L, rhs, ddf)])
