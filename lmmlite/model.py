"""Stage 4: the unfitted linear mixed model (lme4's lFormula + mkLmerDevfun).

An :class:`LmerModel` is built from a :class:`~lmmlite.design.Design`: it owns the
profiled deviance d(θ) (:class:`~lmmlite.deviance.Deviance`) of the weighted
problem and fits it. Prior weights w enter as Var(y_i | b) = σ²/w_i: every row of
[Z X y - offset] is multiplied by sqrt(w_i), and the criterion gains the Jacobian
term -Σ log w_i (as lme4's REML criterion and deviance do). Anova refits,
profiles, the bootstrap and simulation use :meth:`refit`; nothing re-parses the
formula.
"""

import numpy as np

from .deviance import Deviance
from .errors import LmmError
from .optimize import optimize_theta
from .start import is_intercepts_only, moment_start

BOBYQA_TOL = 1e-6   # BOBYQA's tolerances before the exact Newton steps (lme4: 1e-8)


class LmerModel:
    """A linear mixed model before fitting: ``deviance(θ)``, ``fit()``, ``refit()``.

    Parameters
    ----------
    design : Design
    REML : bool
    solver : {"auto", "dense", "blocked", "pairs"}
        How the penalized least-squares system is factored (solvers.py); every
        choice gives the same criterion, "auto" the fastest for the model's size.
    """

    def __init__(self, design, REML=True, solver="auto"):
        self.design = design
        self.REML = REML
        y = design.y if design.offset is None else design.y - design.offset
        if design.weights is None:
            self.sqrt_w, self.log_w = None, 0.0
            blocks, X = design.blocks, design.X
        else:
            s = np.sqrt(design.weights)
            self.sqrt_w, self.log_w = s, float(np.sum(np.log(design.weights)))
            blocks = [b.scaled(s) for b in design.blocks]
            X, y = design.X * s[:, None], y * s
        if design.X.shape[1] >= design.nobs:
            raise LmmError(f"{design.X.shape[1]} fixed effects for {design.nobs} observations: "
                           "the model has too many fixed effects for the data")
        self.solver = solver
        self.dev = Deviance(blocks, X, y, REML=REML, solver=solver)

    @property
    def lower(self):
        return self.dev.lower

    def theta_start(self):
        """lme4's start: every T_k the identity."""
        return self.dev.covariance.start

    def deviance(self, theta, REML=None):
        """The profiled REML criterion (REML) or deviance (ML) at θ, with -Σ log w."""
        fac = self.dev.factor(np.asarray(theta, dtype=float))
        return float(self.dev.criterion(fac, REML=REML)) - self.log_w

    def optimize(self, optimizer="auto", theta0=None, checks=True):
        """Minimize d(θ); returns the optimizer's result (OptResult).

        ``checks=False`` skips lme4's convergence checks (bootstrap refits)."""
        newton = (theta0 is None and optimizer != "nloptwrap" and self.is_large()
                  and is_intercepts_only(self.dev.blocks))
        if newton:   # an expensive criterion: start near the optimum, Newton steps first
            start = moment_start(self.dev.blocks, self.dev.X, self.dev.y)
        else:
            start = self.theta_start() if theta0 is None else theta0
        # the default optimizers finish with exact Newton steps on ∇d = 0 (when the model is
        # small enough for them), so BOBYQA need only get near: tolerances 1e-6 instead of
        # lme4's 1e-8 save 10-20 % of the evaluations and end at the same optimum
        # ("nloptwrap", lme4's own stop, keeps 1e-8)
        tol = BOBYQA_TOL if optimizer != "nloptwrap" and not self.is_large() else None
        return optimize_theta(self.dev, start, self.dev.lower, method=optimizer,
                              below=self.dev.below, grad_hess=self.dev.grad_hess,
                              checks=checks, scale=self.theta_scale(), newton_first=newton,
                              bobyqa_tol=tol)

    def is_large(self):
        """Too many random effects for the exact derivatives (deviance.ProfiledDerivatives):
        each evaluation factors a large dense matrix, so evaluations are to be saved."""
        return self.dev.too_large_for_derivatives()

    def theta_scale(self):
        """θ's natural sizes: for θ in row i of T_k, 1 / the RMS of column i of Z_k
        (a covariate measured in micro-units has θ a million times larger)."""
        out = []
        for b in self.design.blocks:
            rms = np.sqrt(np.mean(b.X ** 2, axis=0))
            rms[rms == 0] = 1.0
            out += [1.0 / rms[i] for j in range(b.p) for i in range(j, b.p)]
        return np.array(out)

    def refit(self, y=None, REML=None):
        """The same model with another response and/or criterion (unfitted)."""
        design = self.design if y is None else self.design.with_response(y)
        return LmerModel(design, self.REML if REML is None else REML, self.solver)
