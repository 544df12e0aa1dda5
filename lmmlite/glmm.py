"""Stage 4 for glmer: the Laplace objective by penalized iteratively reweighted least squares.

Notation of Bates, Mächler, Bolker & Walker (2015), JSS 67(1), and lme4's glmer
vignette / MixedModels.jl (``pirls!``, ``laplace``): with spherical random
effects u, b = Λθ u, the linear predictor is η = o + Xβ + ZΛu and μ = g⁻¹(η).

* PIRLS: for fixed θ (and β, or jointly with β), the conditional mode û
  minimizes the penalized deviance Σ d_i(y_i, μ_i) + ‖u‖². Each iteration is a
  Fisher-scoring step: with working weights w_i = wt_i μ'(η_i)²/V(μ_i) and
  working response z = η - o + (y - μ)/μ'(η) (minus Xβ when β is fixed), it
  solves the penalized weighted least-squares system

      (U'WU + I) u = U'Wz,   U = ZΛ        (β fixed; [U X] with no penalty on β
                                             when β is updated too)

  with step halving when the penalized deviance would rise, to convergence
  (increments below 1e-10, far tighter than lme4's default tolPwrss).
* Laplace: with L L' = U'WU + I at û (W at the converged μ),

      f(θ, β) = log|L|² + ‖û‖² + aic(y, n, μ̂, wt)

  where aic is -2 log-likelihood of the family (binomial coefficients
  included); logLik = -f/2 (lme4's ``glmerLaplace``).
* The nAGQ = 0 objective f0(θ) is the same expression with β and u
  solved jointly by PIRLS (lme4's first stage).

U'WU + I is factored blockwise: the first term (most levels) gives a
block-diagonal part (p_1 x p_1 per level), the other terms (and X in the joint
case) a dense Schur complement, as in deviance.py.
"""

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .covariance import CovarianceParameters
from .errors import LmmError

PIRLS_TOL = 1e-10      # convergence: largest change of (u, β) in one step
PIRLS_MAXIT = 200


class BlockedCholesky:
    """L L' = [[D, B'], [B, C]] with D block diagonal (l1 blocks p1 x p1), C dense m x m."""

    def __init__(self, D, B, C):
        self.l1, self.p1 = D.shape[0], D.shape[1]
        self.q1 = self.l1 * self.p1
        self.m = C.shape[0]
        if self.p1 == 1:        # scalar first term: D is diagonal
            if np.any(D[:, 0, 0] <= 0):
                raise np.linalg.LinAlgError("not positive definite")
            self.L1 = np.sqrt(D)
            self.L1inv = 1.0 / self.L1
        else:
            self.L1 = np.linalg.cholesky(D)
            self.L1inv = np.linalg.inv(self.L1)
        if self.m:
            if self.p1 == 1:
                self.L21 = B * self.L1inv[:, 0, 0][None, :]
            else:
                Bb = B.reshape(self.m, self.l1, self.p1)
                self.L21 = np.einsum("mlj,lkj->mlk", Bb, self.L1inv).reshape(self.m, self.q1)
            self.L22 = np.linalg.cholesky(C - self.L21 @ self.L21.T)

    def logdet(self, k):
        """log|L|² over the first block and the first k rows of the Schur part."""
        out = 2.0 * np.sum(np.log(np.diagonal(self.L1, axis1=1, axis2=2)))
        if k:
            out += 2.0 * np.sum(np.log(np.diag(self.L22)[:k]))
        return float(out)

    def solve(self, r):
        """(L L')⁻¹ r."""
        y1 = np.einsum("lij,lj->li", self.L1inv, r[:self.q1].reshape(self.l1, self.p1)).ravel()
        if self.m:
            y2 = sla.solve_triangular(self.L22, r[self.q1:] - self.L21 @ y1, lower=True)
            x2 = sla.solve_triangular(self.L22.T, y2, lower=False)
            y1 = y1 - self.L21.T @ x2
        else:
            x2 = np.zeros(0)
        x1 = np.einsum("lji,lj->li", self.L1inv, y1.reshape(self.l1, self.p1)).ravel()
        return np.concatenate([x1, x2])

    def inverse(self):
        """(L L')⁻¹ as a dense matrix (conditional variances; models of modest size)."""
        n = self.q1 + self.m
        return np.column_stack([self.solve(e) for e in np.eye(n)])


@dataclass
class PirlsState:
    """The conditional mode at one θ: û (and β), η, μ, the factor and the objective's parts."""

    u: np.ndarray
    beta: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    factor: BlockedCholesky
    ldL2: float
    sqrL: float
    aic: float
    iterations: int

    @property
    def laplace(self):
        return self.ldL2 + self.sqrL + self.aic


class GlmerModel:
    """A generalized linear mixed model before fitting: the Laplace objective and PIRLS.

    Parameters
    ----------
    design : Design
        From :func:`lmmlite.design.build_design` (with ``glm_response=True``).
    family : Family
    y, n, wt : arrays
        The response as the family takes it (a proportion for the binomial),
        the binomial trials and the prior weights (see ``glmer.glm_response``).
    """

    def __init__(self, design, family, y, n, wt):
        self.design = design
        self.family = family
        self.y, self.n, self.wt = y, n, wt
        self.X = design.X
        self.nobs, self.p = self.X.shape
        self.offset = np.zeros(self.nobs) if design.offset is None else design.offset
        self.blocks = design.blocks
        self.covariance = CovarianceParameters.of_blocks(self.blocks)
        self.lower = self.covariance.lower
        b1 = self.blocks[0]
        self.codes1, self.l1, self.p1 = b1.codes, b1.nlevels, b1.p
        self.q1 = self.l1 * self.p1
        # fixed sparsity patterns (CSR, columns ascending within a row) of U's two parts;
        # only the values change with θ and with the weights
        cols, start = [], 0
        for b in self.blocks[1:]:
            cols.append(start + b.codes[:, None] * b.p + np.arange(b.p)[None, :])
            start += b.nlevels * b.p
        self.k_rest = start
        width = sum(b.p for b in self.blocks[1:])
        self._rest_pattern = (np.hstack(cols).ravel() if cols else np.zeros(0, dtype=np.int64),
                              np.arange(self.nobs + 1) * width)
        # E1' (levels x rows): sums over the rows of each level of the first term
        self._E1T = sp.csr_matrix((np.ones(self.nobs), (self.codes1, np.arange(self.nobs))),
                                  shape=(self.l1, self.nobs))
        self.q = self.q1 + self.k_rest
        self._warm = {}        # last converged (u, β) per stage: warm starts for PIRLS

    @property
    def ntheta(self):
        return self.covariance.size

    # -- U = ZΛ at θ
    def _parts(self, theta):
        Ts = self.covariance.factors(theta)
        V1 = self.blocks[0].X @ Ts[0]                     # rows of U's first term
        if not self.k_rest:
            return V1, sp.csr_matrix((self.nobs, 0))
        vals = np.hstack([b.X @ T for b, T in zip(self.blocks[1:], Ts[1:])]).ravel()
        return V1, sp.csr_matrix((vals, *self._rest_pattern), shape=(self.nobs, self.k_rest))

    def _linear(self, V1, Ur, u, beta):
        """o + Xβ + ZΛu."""
        u1 = u[:self.q1].reshape(self.l1, self.p1)
        eta = self.offset + self.X @ beta + np.einsum("ij,ij->i", V1, u1[self.codes1])
        if self.k_rest:
            eta = eta + Ur @ u[self.q1:]
        return eta

    def _grouped(self, wV1, M):
        """U1'W M (q1 x c) for an n x c matrix M (dense or sparse); wV1 = W U1's row values."""
        parts = []
        for j in range(self.p1):
            col = wV1[:, j:j + 1]
            P = self._E1T @ (M.multiply(col).tocsr() if sp.issparse(M) else col * M)
            parts.append(P.toarray() if sp.issparse(P) else np.asarray(P))
        return np.stack(parts, axis=1).reshape(self.q1, -1)

    def _system(self, V1, Ur, w, z, joint=False):
        """The factor of [U1 R]'W[U1 R] + diag(I_q, 0) and the right side [U1 R]'Wz,
        R = U_rest, or [U_rest X] when ``joint``."""
        p1 = self.p1
        wV1 = w[:, None] * V1
        outer = (wV1[:, :, None] * V1[:, None, :]).reshape(self.nobs, p1 * p1)
        D = np.asarray(self._E1T @ outer).reshape(self.l1, p1, p1) + np.eye(p1)
        r1 = np.asarray(self._E1T @ (wV1 * z[:, None])).ravel()
        Bs, rs = [], []
        if self.k_rest:
            Bs.append(self._grouped(wV1, Ur).T)
            rs.append(np.asarray(Ur.T @ (w * z)).ravel())
        if joint:
            Bs.append(self._grouped(wV1, self.X).T)
            rs.append(self.X.T @ (w * z))
        if not Bs:
            return BlockedCholesky(D, np.zeros((0, self.q1)), np.zeros((0, 0))), r1
        if self.k_rest:
            Urw = Ur.multiply(w[:, None]).tocsr()
            UU = (Urw.T @ Ur).toarray()
        if joint and self.k_rest:
            RX = np.asarray(Urw.T @ self.X)
            C = np.block([[UU, RX], [RX.T, self.X.T @ (w[:, None] * self.X)]])
        elif joint:
            C = self.X.T @ (w[:, None] * self.X)
        else:
            C = UU
        C[np.arange(self.k_rest), np.arange(self.k_rest)] += 1.0
        return BlockedCholesky(D, np.vstack(Bs), C), np.concatenate([r1] + rs)

    def _pdev(self, mu, u):
        return float(np.sum(self.family.dev_resids(self.y, mu, self.wt)) + u @ u)

    def pirls(self, theta, beta=None, u=None, joint=False):
        """The conditional mode at θ: û for fixed β, or (û, β̂) jointly (``joint=True``).

        Raises ``np.linalg.LinAlgError`` or ``FloatingPointError`` where it cannot converge.
        """
        fam = self.family
        V1, Ur = self._parts(np.asarray(theta, dtype=float))
        if u is None or beta is None:
            # no previous mode: Fisher scoring from R's starting μ, as glm does
            eta = fam.linkfun(fam.mu_start(self.y, self.wt))
            coef = None
            beta = np.zeros(self.p) if beta is None else beta
            u = np.zeros(self.q)
        else:
            eta = self._linear(V1, Ur, u, beta)
            coef = np.concatenate([u, beta]) if joint else u.copy()
        mu = fam.valid_mu(fam.linkinv(eta))
        pdev = self._pdev(mu, u) if coef is not None else np.inf
        fixed = 0.0 if joint else self.X @ beta
        for it in range(1, PIRLS_MAXIT + 1):
            d = fam.mu_eta(eta)
            w = self.wt * d ** 2 / fam.variance(mu)
            z = eta - self.offset - fixed + (self.y - mu) / d
            fac, rhs = self._system(V1, Ur, w, z, joint)
            target = fac.solve(rhs)
            if coef is None:
                coef, step = target, None
            else:
                step = target - coef
            for _ in range(30):          # step halving on the penalized deviance
                new = coef if step is None else coef + step
                nu, nb = (new[:self.q], new[self.q:]) if joint else (new, beta)
                eta_new = self._linear(V1, Ur, nu, nb)
                mu_new = fam.valid_mu(fam.linkinv(eta_new))
                pdev_new = self._pdev(mu_new, nu)
                if step is None or pdev_new <= pdev * (1 + 1e-13) + 1e-13:
                    break
                step = step / 2
            else:
                raise FloatingPointError("PIRLS step halving failed")
            change = np.inf if step is None else float(np.max(np.abs(step))) if len(step) else 0.0
            coef, eta, mu, pdev = new, eta_new, mu_new, pdev_new
            u, beta = nu, nb
            if not np.isfinite(pdev):
                raise FloatingPointError("PIRLS: penalized deviance not finite")
            if change < PIRLS_TOL:
                break
        # the Laplace factor at the converged μ
        d = fam.mu_eta(eta)
        w = self.wt * d ** 2 / fam.variance(mu)
        fac, _ = self._system(V1, Ur, w, np.zeros(self.nobs))
        return PirlsState(u=u, beta=beta, eta=eta, mu=mu, factor=fac,
                          ldL2=fac.logdet(self.k_rest), sqrL=float(u @ u),
                          aic=fam.aic(self.y, self.n, mu, self.wt), iterations=it)

    # -- objectives for the optimizer
    def _safe(self, key, compute):
        try:
            with np.errstate(all="ignore"):
                state = compute(self._warm.get(key))
        except (np.linalg.LinAlgError, FloatingPointError, ValueError):
            return None
        if not np.isfinite(state.laplace):
            return None
        self._warm[key] = (state.u, state.beta)
        return state

    def objective0(self, theta):
        """lme4's nAGQ = 0 objective at θ (β and u by PIRLS); +inf where undefined."""
        state = self._safe(0, lambda warm: self.pirls(theta, *(warm[::-1] if warm else (None, None)),
                                                      joint=True))
        return np.inf if state is None else state.laplace

    def objective(self, x):
        """The Laplace objective f(θ, β) (u by PIRLS); +inf where undefined."""
        x = np.asarray(x, dtype=float)
        theta, beta = x[:self.ntheta], x[self.ntheta:]
        state = self._safe(1, lambda warm: self.pirls(theta, beta, warm[0] if warm else None))
        return np.inf if state is None else state.laplace

    def state(self, theta, beta=None):
        """The PIRLS state at θ (and β; jointly over β when ``beta`` is None)."""
        warm = self._warm.get(1 if beta is not None else 0)
        if beta is None:
            return self.pirls(theta, *(warm[::-1] if warm else (None, None)), joint=True)
        return self.pirls(theta, beta, warm[0] if warm else None)


def deriv12(fun, x, delta=1e-4, fx=None, lower=None):
    """lme4's ``deriv12``: central-difference gradient and Hessian, one-sided steps
    shortened to the lower bound where x - delta would cross it."""
    x = np.asarray(x, dtype=float)
    k = len(x)
    fx = fun(x) if fx is None else fx
    lo = np.full(k, -np.inf) if lower is None else np.asarray(lower, dtype=float)
    ld = np.where(x - delta < lo, x - lo, delta)
    ud = np.full(k, delta)

    def at(**moves):
        y = x.copy()
        for i, v in moves.items():
            y[int(i[1:])] += v
        return fun(y)

    g, H = np.zeros(k), np.zeros((k, k))
    for j in range(k):
        fadd, fsub = at(**{f"i{j}": ud[j]}), at(**{f"i{j}": -ld[j]})
        H[j, j] = fadd / ud[j] ** 2 - 2 * fx / (ud[j] * ld[j]) + fsub / ld[j] ** 2
        g[j] = (fadd - fsub) / (ud[j] + ld[j])
        for i in range(j):
            H[i, j] = H[j, i] = (at(**{f"i{i}": ud[i], f"i{j}": ud[j]}) / (ud[i] + ud[j]) ** 2
                                 - at(**{f"i{i}": ud[i], f"i{j}": -ld[j]}) / (ud[i] + ld[j]) ** 2
                                 - at(**{f"i{i}": -ld[i], f"i{j}": ud[j]}) / (ld[i] + ud[j]) ** 2
                                 + at(**{f"i{i}": -ld[i], f"i{j}": -ld[j]}) / (ld[i] + ld[j]) ** 2)
    return g, H


def check_model(design):
    if not design.blocks:
        raise LmmError("no random effects terms specified in the formula; "
                       "use a GLM (statsmodels) for a model without random effects")
    if design.X.shape[1] >= design.nobs:
        raise LmmError(f"{design.X.shape[1]} fixed effects for {design.nobs} observations: "
                       "the model has too many fixed effects for the data")
