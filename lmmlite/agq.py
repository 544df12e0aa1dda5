"""Adaptive Gauss-Hermite quadrature (nAGQ > 1) for a single scalar random-effects term.

With one scalar term the groups' spherical random effects u_j are independent
given (θ, β), and the integral over each u_j is one-dimensional (Pinheiro &
Bates 1995, J. Comput. Graph. Stat. 4(1); lme4's glmer vignette, "adaptive
Gauss-Hermite quadrature"). Centre each integral at the conditional mode û_j
(PIRLS, glmm.py) and scale it by the conditional sd σ_j = 1/L_jj (L_jj² =
Σ_{i in j} w_i (∂η_i/∂u_j)² + 1, the Laplace factor). With the per-group
penalized deviance dc_j(u) = Σ_{i in j} d_i(y_i, μ_i(u)) + u² and the
Gauss-Hermite rule (z_k, w_k) for the standard normal density,

    ∫ exp(-dc_j(u)/2) du/√(2π) = σ_j ∫ exp(-dc_j(û_j + σ_j z)/2) dz/√(2π)
        ≈ σ_j exp(-dc_j(û_j)/2) Σ_k w_k exp(z_k²/2 - (dc_j(û_j + σ_j z_k) - dc_j(û_j))/2).

lme4's objective is -2 log of that product over groups (the deviance
residuals' sum, not the family's aic: no saturated-model term):

    f(θ, β) = Σ_j [dc_j(û_j) + log L_jj² - 2 log Σ_k w_k exp(z_k²/2 - Δ_jk/2)].

With one node (z = 0, w = 1) this is the Laplace objective without the
saturated-model term.
"""

import numpy as np

from .glmm import GlmerModel


def gauss_hermite(n):
    """Nodes and weights of the n-point Gauss-Hermite rule for the standard normal density."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    return z, w / np.sqrt(2 * np.pi)


class AGQModel(GlmerModel):
    """A GlmerModel whose stage-2 objective is the AGQ approximation with ``nAGQ`` nodes."""

    def __init__(self, design, family, y, n, wt, nAGQ):
        super().__init__(design, family, y, n, wt)
        self.nAGQ = nAGQ
        self.nodes, self.weights = gauss_hermite(nAGQ)

    def _group_deviance(self, V1, beta, u):
        """dc_j(u) for every group j at the spherical random effects u: (groups,), or
        (nodes, groups) for a stack of u's (one row per node)."""
        u = np.asarray(u)
        eta = (self.offset + self.X @ beta) + V1[:, 0] * u[..., self.codes1]
        mu = self.family.valid_mu(self.family.linkinv(eta))
        d = self.family.dev_resids(self.y, mu, self.wt)
        if u.ndim == 1:
            return np.bincount(self.codes1, weights=d, minlength=self.l1) + u ** 2
        k = u.shape[0]
        index = (np.arange(k)[:, None] * self.l1 + self.codes1).ravel()
        sums = np.bincount(index, weights=d.ravel(), minlength=k * self.l1).reshape(k, self.l1)
        return sums + u ** 2

    def agq(self, state, theta):
        """The AGQ objective from the conditional modes in ``state``."""
        V1, _ = self._parts(np.asarray(theta, dtype=float))
        Ljj = self._state_diag(state)
        sd = 1.0 / Ljj
        dc0 = self._group_deviance(V1, state.beta, state.u)
        # all nodes at once: u_j + z_k σ_j, Δ_jk = dc_j(that) - dc_j(û_j) (0 at z = 0)
        dc = self._group_deviance(V1, state.beta, state.u + self.nodes[:, None] * sd)
        delta = np.where(self.nodes[:, None] == 0, 0.0, dc - dc0)
        terms = self.weights[:, None] * np.exp(self.nodes[:, None] ** 2 / 2 - delta / 2)
        total = np.zeros(self.l1)
        for t in terms:          # summed node by node, in the rule's order
            total += t
        return float(np.sum(dc0 + 2 * np.log(Ljj) - 2 * np.log(total)))

    @staticmethod
    def _state_diag(state):
        return state.factor.L1[:, 0, 0]

    def objective(self, x):
        """f(θ, β) by AGQ (u by PIRLS); +inf where undefined."""
        x = np.asarray(x, dtype=float)
        self._warm_x = x.copy()
        theta, beta = x[:self.ntheta], x[self.ntheta:]
        state = self._safe(1, lambda warm: self.pirls(theta, beta, warm[0] if warm else None))
        if state is None:
            return np.inf
        with np.errstate(all="ignore"):
            value = self.agq(state, theta)
        return value if np.isfinite(value) else np.inf
