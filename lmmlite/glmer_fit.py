"""The fitted generalized linear mixed model (lme4's glmerMod), with lme4's accessors.

At the optimum (θ̂, β̂) and the conditional mode û (glmm.py):

* ``loglik`` = -f(θ̂, β̂)/2 (the Laplace objective, or AGQ's), ``aic`` with
  p + length(θ) parameters, ``bic`` with log(number of rows);
* ``deviance`` is R's ``deviance()`` for glmer: the sum of squared deviance
  residuals at μ̂ (not -2 logLik, which the summary prints as "deviance");
* ``vcov``: as lme4 1.1-31's ``vcov.merMod`` with ``use.hessian = NULL``:
  2 (H⁻¹)_ββ, H the finite-difference Hessian (``deriv12``, step 1e-4) of the
  objective over (θ, β), when the Hessian was computed (fewer than 10,000
  rows) and gives a positive-definite matrix; otherwise (and with
  ``use_hessian=False``) the inverse of the X block of the PIRLS system,
  (R_X'R_X)⁻¹ at (θ̂, β̂, û) (lme4: σ² ``unsc()``, σ = 1);
* ``ranef`` with conditional variances T_k (L L')⁻¹_ll T_k' (σ = 1).
"""

import numpy as np
import pandas as pd

from .deviance import Zb
from .fit import FitBase
from .predict import predict_lmer
from .results import LmerFit, NamedVector
from .errors import LmmError
from .confint import confint
from .glmer_summary import GlmerSummary
from .glmer_summary import format_glmer_short


class GlmerFit(FitBase):
    """A fitted GLMM: fixef, vcov, theta, loglik, aic, bic, deviance, ranef, predict, summary."""

    mixed = True
    REML = False
    weights_arg = None
    offset_arg = None

    def __init__(self, model, stage1, opt, hessian, nAGQ=1, data_name="data", data=None):
        design = model.design
        self.model = model
        self.family = model.family
        self.design = design
        self.spec = design.spec
        self.formula = self.spec.formula
        self.frame = design.frame
        self.blocks = design.blocks
        self.covariance = model.covariance
        self.aliased = list(design.dropped)
        self.data, self.data_name = data, data_name
        self.nAGQ = nAGQ
        self.opt, self.stage1 = opt, stage1
        self.theta = np.asarray(opt.theta, dtype=float)
        self.singular = opt.singular
        self.messages = opt.messages
        self.nobs = model.nobs
        self.sigma = 1.0
        beta = np.asarray(opt.beta, dtype=float)
        self.fixef = NamedVector(beta, index=design.xnames)
        state = model.state(self.theta, None if nAGQ == 0 else beta)
        self._state = state
        self._u = state.u
        Ts = self.covariance.factors(self.theta)
        self._b, start = [], 0
        for b, T in zip(self.blocks, Ts):
            size = b.nlevels * b.p
            self._b.append(state.u[start:start + size].reshape(b.nlevels, b.p) @ T.T)
            start += size
        self.hessian = hessian
        self.vcov = self._vcov()
        self.objective = float(opt.value)
        self.loglik = -self.objective / 2
        self.npar = len(beta) + len(self.theta)
        self.aic = self.objective + 2 * self.npar
        self.bic = self.objective + np.log(self.nobs) * self.npar
        mu = state.mu
        self.deviance = float(np.sum(self.family.dev_resids(model.y, mu, model.wt)))
        self.ngrps = {}
        for b in self.blocks:
            self.ngrps.setdefault(b.group, b.nlevels)

    @property
    def df_residual(self):
        """lme4's ``df.residual``: rows - npar."""
        return self.nobs - self.npar

    @property
    def b_blocks(self):
        return self._b

    # -- covariance of β̂
    def _vcov_rx(self):
        """(R_X'R_X)⁻¹: the β block of the inverse of the joint PIRLS system at the optimum."""
        m = self.model
        V1, Ur = m._parts(self.theta)
        state = self._state
        d = m.family.mu_eta(state.eta)
        w = m.wt * d ** 2 / m.family.variance(state.mu)
        fac, _ = m._system(V1, Ur, w, np.zeros(m.nobs), joint=True)
        k = m.q1 + m.k_rest
        cols = np.column_stack([fac.solve(e) for e in np.eye(k + m.p)[k:]])
        return cols[k:, :]

    def _vcov(self, use_hessian=None):
        names = list(self.fixef.index)
        V = self._vcov_rx()
        if use_hessian is not False and self.hessian is not None:
            k = len(self.theta)
            try:
                Vh = np.linalg.inv(self.hessian)[k:, k:]
                Vh = Vh + Vh.T
                if np.all(np.isfinite(Vh)) and np.linalg.eigvalsh(Vh).min() > 0:
                    V = Vh
            except np.linalg.LinAlgError:
                pass
        return pd.DataFrame(V, index=names, columns=names)

    def vcov_rx(self):
        """lme4's ``vcov(fit, use.hessian = FALSE)``: from the PIRLS system's X block."""
        return self._vcov(use_hessian=False)

    # -- random effects (the lmer code, with σ = 1 and the PIRLS factor)
    _term_groups = LmerFit._term_groups
    ranef = LmerFit.ranef
    coef = LmerFit.coef

    def _postvar(self):
        """T_k (L L')⁻¹_ll T_k' per level of each term (lme4's condVar, σ = 1)."""
        inv = self._state.factor.inverse()
        out, start = [], 0
        for b, T in zip(self.blocks, self.covariance.factors(self.theta)):
            idx = start + np.arange(b.nlevels)[:, None] * b.p + np.arange(b.p)
            V = inv[idx[:, :, None], idx[:, None, :]]
            out.append(np.einsum("ij,ljk,hk->lih", T, V, T))
            start += b.nlevels * b.p
        return out

    def varcorr(self):
        """R's ``as.data.frame(VarCorr(fit))`` (no residual row for glmer)."""
        vc = self.covariance.varcorr(self.theta, 1.0)
        return vc[vc["grp"] != "Residual"].reset_index(drop=True)

    # -- fitted values and residuals
    def linear_predictor(self):
        """η̂ = Xβ̂ + Zb̂ + offset on the training rows."""
        return pd.Series(self._state.eta, index=self.frame.row_index)

    def fitted(self):
        """μ̂ = g⁻¹(η̂), as lme4's fitted() (the proportion for a binomial)."""
        return pd.Series(self._state.mu, index=self.frame.row_index)

    def residuals(self, type="deviance", scaled=False):
        """R's residuals(fit, type): "deviance" (default), "pearson", "response" or "working"."""
        m, mu = self.model, self._state.mu
        y = m.y
        if type == "deviance":
            d = m.family.dev_resids(y, mu, m.wt)
            r = np.sign(y - mu) * np.sqrt(np.maximum(d, 0))
        elif type == "pearson":
            r = (y - mu) * np.sqrt(m.wt) / np.sqrt(m.family.variance(mu))
        elif type == "response":
            r = y - mu
        elif type == "working":
            r = (y - mu) / m.family.mu_eta(self._state.eta)
        else:
            raise LmmError(f"type must be 'deviance', 'pearson', 'response' or 'working', "
                           f"not {type!r}")
        return pd.Series(r, index=self.frame.row_index)

    def predict(self, newdata=None, re_form=None, type="link", allow_new_levels=False):
        """lme4's ``predict``: on the link scale (``type="link"``) or the response scale."""
        if type not in ("link", "response"):
            raise LmmError(f"type must be 'link' or 'response', not {type!r}")
        eta = predict_lmer(self, newdata, re_form, allow_new_levels)
        if type == "response":
            return pd.Series(self.family.linkinv(eta.to_numpy()), index=eta.index)
        return eta

    def _Zb(self):
        return Zb(self.blocks, self._b)

    def summary(self):
        """lme4's ``summary(glmer)``, printed as lme4 prints it."""
        return GlmerSummary(self)

    def confint(self, parm=None, level=0.95, method="profile", quiet=False):
        """lme4's ``confint``: profile (default) or Wald intervals; rows .sig01, ...
        and the fixed effects. See :func:`lmmlite.confint.confint`."""
        return confint(self, parm=parm, level=level, method=method, quiet=quiet)

    def __repr__(self):
        return format_glmer_short(self)
