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
