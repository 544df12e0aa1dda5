"""Tiny dense linear-mixed-model helpers used by the reconstruction scripts.

Only numpy/scipy.  Models are y = X beta + sum_k Z_k b_k + e with
independent random-effect terms; each term k is a list of columns per level
(intercept or intercept+slope) with lme4's relative Cholesky factor
parametrisation (theta).  Good enough for n of a few hundred.
"""
import numpy as np
from scipy.optimize import minimize


def quantile7(v, probs=(0, .25, .5, .75, 1)):
    """R's default (type 7) quantiles, as used by summary() of lm/lmer."""
    return np.quantile(np.asarray(v, float), probs)


class LMM:
    """terms: list of (groups, Zcols) where groups is an integer array (0..q-1)
    and Zcols an (n, r) array of the raw covariates of the term (e.g. ones)."""

    def __init__(self, y, X, terms):
        self.y, self.X = np.asarray(y, float), np.asarray(X, float)
        self.n, self.p = self.X.shape
        blocks, self.tsizes = [], []
        for g, Zc in terms:
            Zc = np.asarray(Zc, float).reshape(self.n, -1)
            q, r = g.max() + 1, Zc.shape[1]
            Z = np.zeros((self.n, q * r))
            for j in range(r):                        # level-major ordering
                Z[np.arange(self.n), g * r + j] = Zc[:, j]
            blocks.append((Z, q, r))
            self.tsizes.append(r * (r + 1) // 2)
        self.blocks = blocks
        self.Z = np.hstack([b[0] for b in blocks])

    def Lambda(self, theta):
        mats, k = [], 0
        for (_, q, r), s in zip(self.blocks, self.tsizes):
            L = np.zeros((r, r))
            L[np.tril_indices(r)] = theta[k:k + s]    # column-major like lme4 for r<=2
            if r == 2:
                L = np.array([[theta[k], 0], [theta[k + 1], theta[k + 2]]])
            k += s
            mats.append(np.kron(np.eye(q), L))
        from scipy.linalg import block_diag
        return block_diag(*mats)

    def solve(self, theta, reml=True):
        y, X, Z, n, p = self.y, self.X, self.Z, self.n, self.p
        Lam = self.Lambda(theta)
        ZL = Z @ Lam
        A = ZL.T @ ZL + np.eye(ZL.shape[1])
        Lc = np.linalg.cholesky(A)
        # profiled: solve augmented system for u and beta
        M = np.block([[A, ZL.T @ X], [X.T @ ZL, X.T @ X]])
        rhs = np.concatenate([ZL.T @ y, X.T @ y])
        sol = np.linalg.solve(M, rhs)
        u, beta = sol[:A.shape[0]], sol[A.shape[0]:]
        resid = y - X @ beta - ZL @ u
        pwrss = resid @ resid + u @ u
        # R_X'R_X = X'X - X'ZL A^-1 ZL'X
        RX2 = X.T @ X - X.T @ ZL @ np.linalg.solve(A, ZL.T @ X)
        ldL = 2 * np.log(np.diag(Lc)).sum()
        if reml:
            sig2 = pwrss / (n - p)
            crit = ldL + np.linalg.slogdet(RX2)[1] + (n - p) * (1 + np.log(2 * np.pi * pwrss / (n - p)))
        else:
            sig2 = pwrss / n
            crit = ldL + n * (1 + np.log(2 * np.pi * pwrss / n))
        return dict(crit=crit, beta=beta, b=Lam @ u, u=u, sigma2=sig2, resid=resid,
                    vcov=sig2 * np.linalg.inv(RX2), theta=np.asarray(theta, float))

    def fit(self, theta0, lower, reml=True):
        f = lambda t: self.solve(t, reml)["crit"]
        r = minimize(f, theta0, method="L-BFGS-B", bounds=[(lo, None) for lo in lower],
                     options=dict(ftol=1e-15, gtol=1e-10, maxiter=5000))
        r = minimize(f, r.x, method="Nelder-Mead",
                     options=dict(xatol=1e-10, fatol=1e-12, maxiter=20000, maxfev=20000))
        return self.solve(r.x, reml)


def fmt_ok(pub, ach):
    return "OK" if pub == ach else "MISMATCH"


class Grouped:
    """y = X β + Z_g b_g + ε with X = [1, x] in every group and Z_g the columns
    ``zcols`` of [1, x] ((1 | g): [0]; (1 + x | g): [0, 1]), from per-group
    sufficient statistics only: n_g, the means of x and y, and the within sums
    wxx_g, wxy_g (the pooled Wyy is all that enters from y'y).

    The REML criterion (Bates et al. 2015, JSS 67(1), eq. 41) in closed form:
    with A_g = Λ'Z_g'Z_gΛ + I (r x r, Woodbury per group),
    X'V⁻¹X = Σ_g X_g'X_g - (X_g'Z_gΛ) A_g⁻¹ (Λ'Z_g'X_g), likewise X'V⁻¹y, y'V⁻¹y;
    d = Σ log|A_g| + log|X'V⁻¹X| + ν(1 + log(2π r²/ν)), r² = y'V⁻¹y - β̂'X'V⁻¹y.
    Written with plain arithmetic so that it accepts complex θ: the gradient
    by complex step, Im d(θ + ih e_i)/h (Squire & Trapp 1998), is exact to
    round-off, and Newton on it solves the score equations.  x and y are centred
    at their overall means (no cancellation); Λ is mapped to that basis.
    """

    def __init__(self, n, xm, ym, wxx, wxy, Wyy, zcols):
        self.n = np.asarray(n, float)
        self.xm, self.ym = np.asarray(xm, float), np.asarray(ym, float)
        self.wxx, self.wxy = np.asarray(wxx, float), np.asarray(wxy, float)
        self.zcols = list(zcols)
        self.N = self.n.sum()
        self.cx = (self.n * self.xm).sum() / self.N
        self.cy = (self.n * self.ym).sum() / self.N
        x, y = self.xm - self.cx, self.ym - self.cy
        # per group [1, x]'[1, x] and [1, x]'y in the centred basis
        self.XX = np.array([[[m, m * a], [m * a, w + m * a * a]]
                            for m, a, w in zip(self.n, x, self.wxx)])
        self.Xy = np.array([[m * b, w + m * a * b] for m, a, b, w in zip(self.n, x, y, self.wxy)])
        self.yy = Wyy + (self.n * y * y).sum()
        # raw coefficients from centred ones: (b0, b1)_raw = T (b0, b1)_centred
        self.T = np.array([[1.0, -self.cx], [0.0, 1.0]])
        r = len(self.zcols)
        self.ntheta = r * (r + 1) // 2

    def lam(self, theta):
        """Λ in the centred basis (r x r lower triangular, lme4's column-major θ)."""
        r = len(self.zcols)
        L = np.zeros((r, r), dtype=np.result_type(theta, float))
        L[np.tril_indices(r)] = [theta[k] for k in _colmajor(r)]
        if r == 2:   # a random (intercept, x) pair: centring x moves the intercept
            L = np.linalg.inv(self.T) @ L
        return L

    def parts(self, theta):
        z = self.zcols
        L = self.lam(theta)
        XVX = np.zeros((2, 2), dtype=L.dtype)
        XVy = np.zeros(2, dtype=L.dtype)
        yVy, logdet, us = self.yy + 0j * L[0, 0], 0.0 + 0j * L[0, 0], []
        for XX, Xy in zip(self.XX, self.Xy):
            C = XX[:, z] @ L                        # X_g'Z_gΛ
            c = L.T @ Xy[z]                         # Λ'Z_g'y
            A = L.T @ XX[np.ix_(z, z)] @ L + np.eye(len(z))
            logdet = logdet + np.log(np.linalg.det(A))
            XVX = XVX + XX - C @ np.linalg.solve(A, C.T)
            XVy = XVy + Xy - C @ np.linalg.solve(A, c)
            yVy = yVy - c @ np.linalg.solve(A, c)
            us.append((A, C, c))
        beta = np.linalg.solve(XVX, XVy)
        r2 = yVy - XVy @ beta
        return L, XVX, beta, r2, logdet, us

    def deviance(self, theta):
        L, XVX, beta, r2, logdet, _ = self.parts(theta)
        nu = self.N - 2
        return logdet + np.log(np.linalg.det(XVX)) + nu * (1 + np.log(2 * np.pi * r2 / nu))

    def gradient(self, theta, h=1e-30):
        """Exact gradient of the REML criterion by complex step."""
        theta = np.asarray(theta, float)
        g = np.empty(len(theta))
        for i in range(len(theta)):
            t = theta.astype(complex)
            t[i] += 1j * h
            g[i] = self.deviance(t).imag / h
        return g

    def hessian(self, theta):
        """Differences of the exact gradient (only steers Newton's steps)."""
        return _derivative(self.gradient, np.asarray(theta, float))

    def optimum(self, theta0, tol=1e-13, maxit=30):
        """The root of the score equations ∇d(θ) = 0 near θ0, by Newton's method.

        The root is fixed by the exact gradient alone; the Hessian is refreshed
        only while the steps are large (the last steps reuse it)."""
        theta = np.asarray(theta0, float).copy()
        H = None
        for _ in range(maxit):
            g = self.gradient(theta)
            if H is None or np.max(np.abs(g)) > 1e-6:
                H = self.hessian(theta)
            step = np.linalg.solve(H, g)
            theta = theta - step
            if np.max(np.abs(step) / (1e-3 + np.abs(theta))) < tol:
                break
        return theta

    def satterthwaite(self, theta):
        """lmerTest's Satterthwaite df of each fixed effect at the REML optimum θ.

        φ = (θ, σ) with σ explicit: d(φ) = Σ log|A_g| + log|X'V⁻¹X| + r²(θ)/σ²
        + ν log(2πσ²); A = 2 H⁻¹ (H the Hessian of d in φ) and, for the unit
        contrast of coefficient j, ν_j = 2 C_jj² / (g'Ag), g_i = ∂C_jj/∂φ_i,
        C = σ² T (X'V⁻¹X)⁻¹ T'.  Derivatives by complex step (exact) in θ, and
        fourth-order differences of complex-step gradients for H.
        """
        theta = np.asarray(theta, float)
        _, _, _, r2, _, _ = self.parts(theta)
        nu = self.N - 2
        phi = np.r_[theta, np.sqrt(r2.real / nu)]

        def dev(ph):
            _, XVX, _, r2, logdet, _ = self.parts(ph[:-1])
            s2 = ph[-1] ** 2
            return logdet + np.log(np.linalg.det(XVX)) + r2 / s2 + nu * np.log(2 * np.pi * s2)

        def cov(ph):
            _, XVX, _, _, _, _ = self.parts(ph[:-1])
            return ph[-1] ** 2 * self.T @ np.linalg.inv(XVX) @ self.T.T

        def cstep(f, ph, i, h=1e-30):
            z = ph.astype(complex)
            z[i] += 1j * h
            return np.imag(f(z)) / h

        k = len(phi)
        grad = lambda ph: np.array([cstep(dev, ph, i) for i in range(k)])  # noqa: E731
        A = 2 * np.linalg.inv(_derivative(grad, phi))
        C = cov(phi).real
        dC = [cstep(cov, phi, i) for i in range(k)]
        out = []
        for j in range(2):
            g = np.array([d[j, j] for d in dC])
            out.append(2 * C[j, j] ** 2 / (g @ A @ g))
        return np.array(out)

    def fit(self, theta):
        """Everything summary() prints, at θ (raw, uncentred coefficients)."""
        theta = np.asarray(theta, float)
        L, XVX, beta, r2, logdet, us = self.parts(theta)
        L, XVX, beta, r2 = L.real, XVX.real, beta.real, float(r2.real)
        nu = self.N - 2
        s2 = r2 / nu
        V = s2 * self.T @ np.linalg.inv(XVX) @ self.T.T
        se = np.sqrt(np.diag(V))
        Lr = self.T[np.ix_(self.zcols, self.zcols)] @ L   # Λ for the raw columns
        S = s2 * Lr @ Lr.T
        ranef = np.array([Lr @ np.linalg.solve(A.real, c.real - C.real.T @ beta)
                          for A, C, c in us])
        b = self.T @ beta + np.array([self.cy, 0.0])
        sd = np.sqrt(np.diag(S))
        return dict(theta=theta, beta=b, se=se, t=b / se, s2=s2, sigma=np.sqrt(s2),
                    vcov_re=S, sd_re=sd, corr_re=S[0, -1] / sd[0] / sd[-1],
                    corr=V[0, 1] / se[0] / se[1], ranef=ranef,
                    crit=float(self.deviance(theta).real))


def _colmajor(r):
    """Positions in θ (column-major lower triangle) of np.tril_indices(r) (row-major)."""
    rows, cols = np.tril_indices(r)
    order = sorted(range(len(rows)), key=lambda k: (cols[k], rows[k]))
    pos = np.empty(len(rows), int)
    pos[order] = np.arange(len(rows))
    return pos


def _derivative(grad, x, rel=1e-4):
    """Symmetrized Jacobian of the exact gradient ``grad`` at x: the fourth-order central
    difference (g(x-2e) - 8g(x-e) + 8g(x+e) - g(x+2e)) / 12e, e = rel * max(|x_i|, 1e-3);
    truncation O(e^4) and round-off ~eps/e are both ~1e-12 relative at this step."""
    k = len(x)
    H = np.empty((k, k))
    for i in range(k):
        e = np.zeros(k)
        e[i] = rel * max(abs(x[i]), 1e-3)
        H[:, i] = (grad(x - 2 * e) - 8 * grad(x - e) + 8 * grad(x + e) - grad(x + 2 * e)) / (12 * e[i])
    return 0.5 * (H + H.T)
