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
  (increments below 1e-10, or the next increment extrapolated from the last two
  below 1e-14: far tighter than lme4's default tolPwrss). From a previous mode
  the steps are Newton's (the observed information, family.py ``working``).
* Laplace: with L L' = U'WU + I at û (W at the converged μ),

      f(θ, β) = log|L|² + ‖û‖² + aic(y, n, μ̂, wt)

  where aic is -2 log-likelihood of the family (binomial coefficients
  included); logLik = -f/2 (lme4's ``glmerLaplace``).
* The nAGQ = 0 objective f0(θ) is the same expression with β and u
  solved jointly by PIRLS (lme4's first stage).

U'WU + I is factored blockwise (glmm_system.py): the first term (most levels)
gives a block-diagonal part (p_1 x p_1 per level), the other terms (and X in the
joint case) a dense Schur complement, as in deviance.py.
"""

from dataclasses import dataclass

import numpy as np

from .covariance import CovarianceParameters
from .errors import LmmError
from .glmm_system import PirlsFactor, SystemPattern

PIRLS_TOL = 1e-10      # convergence: largest change of (u, β) in one step
PIRLS_NEXT = 1e-14     # or: the next step, extrapolated from the last two, below this
PIRLS_MAXIT = 200


@dataclass
class PirlsState:
    """The conditional mode at one θ: û (and β), η, μ, the factor and the objective's parts."""

    u: np.ndarray
    beta: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    factor: PirlsFactor
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
        self._aic = family.aic_terms(y, n, wt)
        self.X = design.X
        self.nobs, self.p = self.X.shape
        self.offset = np.zeros(self.nobs) if design.offset is None else design.offset
        self.blocks = design.blocks
        self.covariance = CovarianceParameters.of_blocks(self.blocks)
        self.lower = self.covariance.lower
        b1 = self.blocks[0]
        self.codes1, self.l1, self.p1 = b1.codes, b1.nlevels, b1.p
        self.q1 = self.l1 * self.p1
        # the columns of U_rest each row touches (fixed; only the values change with θ)
        cols, start = [], 0
        for b in self.blocks[1:]:
            cols.append(start + b.codes[:, None] * b.p + np.arange(b.p)[None, :])
            start += b.nlevels * b.p
        self.k_rest = start
        self.rest_cols = np.hstack(cols) if cols else np.zeros((self.nobs, 0), dtype=np.int64)
        self.q = self.q1 + self.k_rest
        self._patterns = {}    # SystemPattern without / with X (β fixed / jointly)
        self._warm = {}        # last converged (u, β) per stage: warm starts for PIRLS
        self._warm_x = None    # the x of objective's last call

    @property
    def ntheta(self):
        return self.covariance.size

    def pattern(self, joint=False):
        """The fixed index structure of the PIRLS system (glmm_system.py)."""
        if joint not in self._patterns:
            self._patterns[joint] = SystemPattern([b.codes for b in self.blocks],
                                                  [(b.nlevels, b.p) for b in self.blocks],
                                                  self.X if joint else None)
        return self._patterns[joint]

    # -- U = ZΛ at θ
    def _parts(self, theta):
        """U's row values at θ: (n, p1) for the first term, (n, wr) for the others
        (in the columns ``rest_cols``)."""
        Ts = self.covariance.factors(theta)
        V1 = self.blocks[0].X @ Ts[0]
        if not self.k_rest:
            return V1, np.zeros((self.nobs, 0))
        return V1, np.hstack([b.X @ T for b, T in zip(self.blocks[1:], Ts[1:])])

    def _values(self, V1, Vr, joint=False):
        """Each row's values in its columns of [U X] (joint) or U (glmm_system.py)."""
        return np.hstack([V1, Vr, self.X] if joint else [V1, Vr])

    def factor(self, theta, w, joint=False):
        """The factor of U'WU + I (or of the joint system with X) at θ and weights w."""
        V1, Vr = self._parts(np.asarray(theta, dtype=float))
        return self.pattern(joint).factor(self._values(V1, Vr, joint), w)

    def _linear(self, V1, Vr, u, beta=None, base=None):
        """o + Xβ + ZΛu (``base`` = o + Xβ when known)."""
        eta = self.offset + self.X @ beta if base is None else base
        if self.p1 == 1:
            eta = eta + V1[:, 0] * u[self.codes1]
        else:
            eta = eta + np.einsum("ij,ij->i", V1, u[:self.q1].reshape(self.l1, self.p1)[self.codes1])
        if self.k_rest:
            eta = eta + np.einsum("ij,ij->i", Vr, u[self.q1:][self.rest_cols])
        return eta

    def _pdev(self, mu, u):
        return float(np.sum(self.family.dev_resids(self.y, mu, self.wt)) + u @ u)

    def pirls(self, theta, beta=None, u=None, joint=False):
        """The conditional mode at θ: û for fixed β, or (û, β̂) jointly (``joint=True``).

        Raises ``np.linalg.LinAlgError`` or ``FloatingPointError`` where it cannot converge.
        """
        fam = self.family
        V1, Vr = self._parts(np.asarray(theta, dtype=float))
        if u is None or beta is None:
            # no previous mode: Fisher scoring from R's starting μ, as glm does
            eta = fam.linkfun(fam.mu_start(self.y, self.wt))
            coef = None
            beta = np.zeros(self.p) if beta is None else beta
            u = np.zeros(self.q)
        else:
            eta = self._linear(V1, Vr, u, beta)
            coef = np.concatenate([u, beta]) if joint else u.copy()
        mu = fam.valid_mu(fam.linkinv(eta))
        pdev = self._pdev(mu, u) if coef is not None else np.inf
        base = None if joint else self.offset + self.X @ beta     # o + Xβ, β fixed
        pattern, values = self.pattern(joint), self._values(V1, Vr, joint)
        last = None                      # the previous full step's size
        for it in range(1, PIRLS_MAXIT + 1):
            # Newton steps from a previous mode; from R's start μ the first is Fisher's
            w, r = fam.working(self.y, mu, eta, self.wt, newton=coef is not None)
            z = eta - (self.offset if joint else base) + r
            fac = pattern.factor(values, w)
            rhs = pattern.rhs(values, w * z)
            target = fac.solve(rhs)
            if coef is None:
                coef, step = target, None
            else:
                step = target - coef
            for halving in range(30):    # step halving on the penalized deviance
                new = coef if step is None else coef + step
                nu, nb = (new[:self.q], new[self.q:]) if joint else (new, beta)
                eta_new = self._linear(V1, Vr, nu, nb, base)
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
            # the next step's size, extrapolated from the last two (c_k = C c_{k-1}^2 when
            # convergence is quadratic, r c_{k-1} when linear: both give c_k^2 / c_{k-1}):
            # when that is at round-off the mode is reached without another factorization
            if last is not None and halving == 0 and change * change < PIRLS_NEXT * last:
                break
            last = change if halving == 0 and np.isfinite(change) else None
        # the Laplace factor at the converged μ, with Fisher's weights (lme4's)
        w, _ = fam.working(self.y, mu, eta, self.wt)
        fac = self.pattern().factor(values[:, :values.shape[1] - self.p] if joint else values, w)
        return PirlsState(u=u, beta=beta, eta=eta, mu=mu, factor=fac,
                          ldL2=fac.logdet(), sqrL=float(u @ u),
                          aic=self._aic(mu), iterations=it)

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
        self._warm_x = x.copy()
        theta, beta = x[:self.ntheta], x[self.ntheta:]
        state = self._safe(1, lambda warm: self.pirls(theta, beta, warm[0] if warm else None))
        return np.inf if state is None else state.laplace

    def warm_start(self, x=None, state=None):
        """The PIRLS warm start of ``objective``: the mode at (θ, β) = x (computed if
        not the last one), or set it to ``state`` (a value this method returned)."""
        if state is not None:
            self._warm[1] = state
        elif self._warm_x is None or not np.array_equal(self._warm_x, x):
            self.objective(x)
        return self._warm.get(1)

    def state(self, theta, beta=None):
        """The PIRLS state at θ (and β; jointly over β when ``beta`` is None)."""
        warm = self._warm.get(1 if beta is not None else 0)
        if beta is None:
            return self.pirls(theta, *(warm[::-1] if warm else (None, None)), joint=True)
        return self.pirls(theta, beta, warm[0] if warm else None)


def deriv12(fun, x, delta=1e-4, fx=None, lower=None, rule="lme4", memo=None):
    """lme4's ``deriv12``: central-difference gradient and Hessian with step ``delta``,
    one-sided steps shortened to the lower bound where x - delta would cross it.

    Cross terms by lme4's rule, f(+,+) - f(+,-) - f(-,+) + f(-,-) over the squared
    steps; or with ``rule="pairs"``, where both steps are symmetric, from f(x ± (h e_i +
    h e_j)) and the diagonal evaluations (2 evaluations per pair instead of 4, exact for
    a quadratic too; the round-off in each cross term is about 2.6 times lme4's rule's,
    which moves glmer's standard errors by ~1e-6 relative). ``memo`` (a dict) keeps
    the evaluations for another call at the same x.
    """
    x = np.asarray(x, dtype=float)
    k = len(x)
    fx = fun(x) if fx is None else fx
    lo = np.full(k, -np.inf) if lower is None else np.asarray(lower, dtype=float)
    ld = np.where(x - delta < lo, x - lo, delta)
    ud = np.full(k, delta)
    memo = {} if memo is None else memo

    def at(*moves):
        key = tuple(moves)
        if key not in memo:
            y = x.copy()
            for i, v in moves:
                y[i] += v
            memo[key] = fun(y)
        return memo[key]

    g, H = np.zeros(k), np.zeros((k, k))
    fadd, fsub = np.zeros(k), np.zeros(k)
    for j in range(k):
        fadd[j], fsub[j] = at((j, ud[j])), at((j, -ld[j]))
        H[j, j] = fadd[j] / ud[j] ** 2 - 2 * fx / (ud[j] * ld[j]) + fsub[j] / ld[j] ** 2
        g[j] = (fadd[j] - fsub[j]) / (ud[j] + ld[j])
        for i in range(j):
            if rule == "pairs" and ld[i] == ud[i] and ld[j] == ud[j]:
                # f(x+a) + f(x-a) - 2f(x) = a'Ha for a = h_i e_i + h_j e_j
                hi, hj = ud[i], ud[j]
                both = at((i, hi), (j, hj)) + at((i, -hi), (j, -hj))
                H[i, j] = (both - fadd[i] - fsub[i] - fadd[j] - fsub[j] + 2 * fx) / (2 * hi * hj)
            else:
                H[i, j] = (at((i, ud[i]), (j, ud[j])) / (ud[i] + ud[j]) ** 2
                           - at((i, ud[i]), (j, -ld[j])) / (ud[i] + ld[j]) ** 2
                           - at((i, -ld[i]), (j, ud[j])) / (ld[i] + ud[j]) ** 2
                           + at((i, -ld[i]), (j, -ld[j])) / (ld[i] + ld[j]) ** 2)
            H[j, i] = H[i, j]
    return g, H


def check_model(design):
    if not design.blocks:
        raise LmmError("no random effects terms specified in the formula; "
                       "use a GLM (statsmodels) for a model without random effects")
    if design.X.shape[1] >= design.nobs:
        raise LmmError(f"{design.X.shape[1]} fixed effects for {design.nobs} observations: "
                       "the model has too many fixed effects for the data")
