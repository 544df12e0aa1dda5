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
∂C/∂σ = 2σM).  The θ derivatives of log|L_Z|²+log|R_X|², r²(θ) and M(θ) are,
as lmerTest takes them, central differences refined by Richardson
extrapolation (four step sizes, 73 factorizations for three θ; accurate to
~1e-9 relative), each on the criterion-only factor of solvers.py; for models
of 20,000 rows or more (``use_exact``) they are exact, in q x q algebra
(satterthwaite_exact.py; the two agree to ~1e-9).  H is inverted on its
positive eigenvalues (> 1e-8), as lmerTest does for singular fits.

Kenward-Roger (Kenward & Roger 1997, Biometrics 53, 983-997; as pbkrtest):
REML fits only, computed in kenward_roger.py with q x q matrices (never n x n).
"""

import numpy as np
import pandas as pd
from scipy import stats

from .errors import LmmError
from .kenward_roger import KenwardRoger
from .threads import blas_single_thread
from .satterthwaite_exact import varpar_derivatives

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
EXACT_MIN_N = 20_000   # exact derivatives (q x q algebra) from this many rows ...
EXACT_MAX_Q = 8_000    # ... while q x q dense arrays stay below 0.5 GB each


def use_exact(dev):
    """Whether Satterthwaite's derivatives are taken exactly (large models) rather than by
    Richardson-extrapolated differences of the deviance (lmerTest's way; 73 evaluations)."""
    q = sum(b.nlevels * b.p for b in dev.blocks)
    return dev.n >= EXACT_MIN_N and q <= EXACT_MAX_Q


def _richardson_derivatives(dev, theta, sigma, REML):
    """(H, jac) as varpar_derivatives, the θ derivatives by Richardson-extrapolated differences."""
    p = dev.p
    kdf = dev.n - p if REML else dev.n

    def parts(th):
        fac = dev.factor(th, full=False)   # the criterion-only path (solvers.py)
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
    jac = [sigma ** 2 * G[i, 2:].reshape(p, p) for i in range(nt)]
    jac.append(2.0 * sigma * M)
    return H, jac


class SatterthwaiteModel:
    """The pieces lmerTest keeps: Cov(β̂), A = Cov(φ̂) and ∂Cov(β̂)/∂φ_i.

    Attributes
    ----------
    vcov_beta : (p, p) array, σ² M(θ̂)
    vcov_varpar : (k+1, k+1) array, A = 2 H⁻¹ (pseudo-inverse on H's positive eigenvalues)
    jac : list of (p, p) arrays, ∂C/∂θ_1 .. ∂C/∂θ_k, ∂C/∂σ
    hessian : the Hessian H of the deviance in φ = (θ, σ)
    """

    def __init__(self, fit, tol=1e-8, method="auto"):
        dev = fit.devfun
        theta = np.asarray(fit.theta, dtype=float)
        sigma = float(fit.sigma)
        if method == "auto":
            method = "exact" if use_exact(dev) else "richardson"
        if method not in ("exact", "richardson"):
            raise LmmError(f"method must be 'auto', 'exact' or 'richardson', not {method!r}")
        derivs = varpar_derivatives if method == "exact" else _richardson_derivatives
        with blas_single_thread():      # as lmer: threads only thrash on these sizes
            H, self.jac = derivs(dev, theta, sigma, fit.REML)
        self.method = method
        self.hessian = H
        w, V = np.linalg.eigh(H)
        self.eigenvalues = w
        pos = w > tol
        self.vcov_varpar = 2.0 * (V[:, pos] / w[pos]) @ V[:, pos].T
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
# Kenward-Roger (kenward_roger.py)
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
