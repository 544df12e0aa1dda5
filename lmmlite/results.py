"""Stage 5: the fitted model, with lme4's accessors.

All quantities derive from the optimum θ̂ through one blocked Cholesky
factor (see deviance.py): β̂ and u from L'[u; β] = ℓ, b = Λu, σ̂² = r²/(n-p)
for REML or r²/n for ML, Cov(β̂) = σ̂² (R_X'R_X)^{-1}, and the conditional
variances of b as σ̂² Λ (Λ'Z'ZΛ + I)^{-1} Λ' (lme4's condVar).
"""


import dataclasses

import numpy as np
import pandas as pd

from .confint import confint as _confint
from .call import Call
from .design import build_design
from .deviance import Zb
from .errors import LmmError
from .fit import FitBase
from .model import LmerModel
from .predict import predict_lmer
from .printing import format_matrix, format_num, print_named_vector
from .summary import LmerSummary, format_lmer_short


class NamedVector(pd.Series):
    """A pandas Series that prints as R prints a named numeric vector (7 digits)."""

    @property
    def _constructor(self):
        return pd.Series  # arithmetic gives a plain Series

    def __repr__(self):
        return print_named_vector(self, digits=7)


class Ranef(dict):
    """Conditional modes of the random effects: grouping factor -> DataFrame.

    ``condsd`` holds the conditional standard deviations in the same shape,
    ``postvar`` the conditional covariance matrices (levels x p x p).
    """

    def __init__(self, frames, condsd=None, postvar=None):
        super().__init__(frames)
        self.condsd = condsd
        self.postvar = postvar

    def to_frame(self):
        """Long format as R's ``as.data.frame(ranef(fit))``: grpvar, term, grp, condval, condsd."""
        rows = []
        for g, df in self.items():
            for term in df.columns:
                for lev in df.index:
                    sd = self.condsd[g].loc[lev, term] if self.condsd else np.nan
                    rows.append((g, term, lev, df.loc[lev, term], sd))
        return pd.DataFrame(rows, columns=["grpvar", "term", "grp", "condval", "condsd"])

    def __repr__(self):
        out = []
        for g, df in self.items():
            # print.data.frame: each column formatted on its own with 7 digits
            cells = pd.DataFrame({c: format_num(df[c].to_numpy(), 7) for c in df.columns},
                                 index=[str(i) for i in df.index])
            out += [f"${g}", format_matrix(cells, right=True), ""]
        if self.condsd is not None:
            out.append("with conditional variances for "
                       + " ".join(f'"{g}"' for g in self) + " ")
        return "\n".join(out)


class LmerFit(FitBase):
    """A fitted linear mixed model (lme4's merMod); the shared names are in fit.py.

    Attributes
    ----------
    fixef, vcov, theta, sigma, loglik, aic, bic, deviance, reml_criterion,
    nobs, ngrps, singular, REML, formula, aliased (lme4's dropped columns)
    devfun : Deviance
        The model's profiled deviance θ -> d(θ) (lme4's ``getME(fit, "devfun")``),
        with its design (X, y, blocks): the start of profiles, refits and
        simulations.
    covariance : CovarianceParameters
        θ's layout: θ -> T_k -> Σ_k -> sd/cor, lme4's names.
    opt : OptResult
        What the optimizer reported (θ, criterion, evaluations, messages).
    """

    mixed = True

    def __init__(self, model, opt, data_name=None, data=None, call=None):
        design = model.design
        dev = model.dev
        self.model = model          # the unfitted model: refits, profiles, bootstrap
        self.design = design
        self.spec = design.spec
        self.data = data            # the data as given, for refits to other data
        self.formula = self.spec.formula
        self.frame = design.frame
        self.devfun = dev
        self.covariance = dev.covariance
        self.blocks = design.blocks
        self.REML = model.REML
        self.aliased = list(design.dropped)
        self.opt = opt
        self.call = call or Call()      # weights=/offset= as given, and their texts
        self.data_name = data_name or self.call.data_name
        self.theta = opt.theta
        self.singular = opt.singular
        self.messages = opt.messages
        self.nobs = dev.n
        fac = dev.factor(self.theta)
        self._fac = fac
        beta, u = dev.solve(fac)
        n, p = dev.n, dev.p
        self.sigma = float(np.sqrt(dev.pwrss(fac) / (n - p if self.REML else n)))
        xnames = design.xnames
        self.fixef = NamedVector(beta, index=xnames)
        RXinv = np.linalg.inv(fac.RX())
        self.vcov = pd.DataFrame(self.sigma ** 2 * RXinv @ RXinv.T, index=xnames, columns=xnames)
        self._u = u
        self._b = dev.random_effects(u, fac.Ts)   # b = Λu, one (levels x p) array per term
        # the weighted problem's criterion, plus the Jacobian term -sum(log w)
        crit = float(dev.criterion(fac)) - model.log_w
        self.reml_criterion = crit if self.REML else None
        self.deviance = crit if not self.REML else float(dev.criterion(fac, REML=False)) - model.log_w
        self.loglik = -crit / 2
        self.npar = p + len(self.theta) + 1
        self.aic = -2 * self.loglik + 2 * self.npar
        self.bic = -2 * self.loglik + np.log(n) * self.npar
        self.ngrps = {}
        for b in self.blocks:
            self.ngrps.setdefault(b.group, b.nlevels)

    @property
    def _dev(self):
        """Former name of :attr:`devfun`."""
        return self.devfun

    @property
    def b_blocks(self):
        """The conditional modes b̂ = Λû, one (levels x p) array per random term (lme4's order)."""
        return self._b

    @property
    def df_residual(self):
        """lme4's ``df.residual``: nobs - npar."""
        return self.nobs - self.npar

    # -- random effects
    def _term_groups(self):
        """Terms grouped by grouping factor, in lme4's order of first appearance."""
        groups = {}
        for k, b in enumerate(self.blocks):
            groups.setdefault(b.group, []).append(k)
        return groups

    def ranef(self, condvar=True):
        """Conditional modes of the random effects, per grouping factor.

        With ``condvar=True`` the conditional standard deviations
        (sqrt of lme4's postVar diagonal) are attached as ``.condsd``.
        """
        frames, sds, pvs = {}, {}, {}
        blocks_pv = self._postvar() if condvar else None
        for g, ks in self._term_groups().items():
            levels = self.blocks[ks[0]].levels
            cols, data, sd = [], [], []
            for k in ks:
                b = self.blocks[k]
                cols += b.cnames
                data.append(self._b[k])
                if condvar:
                    sd.append(np.sqrt(np.diagonal(blocks_pv[k], axis1=1, axis2=2)))
            frames[g] = pd.DataFrame(np.hstack(data), index=pd.Index(levels), columns=cols)
            if condvar:
                sds[g] = pd.DataFrame(np.hstack(sd), index=pd.Index(levels), columns=cols)
                pvs[g] = [blocks_pv[k] for k in ks]
        return Ranef(frames, sds if condvar else None, pvs if condvar else None)

    def _postvar(self):
        """σ² T (L^{-T}L^{-1})_ll T' per level: lme4's conditional variances."""
        inv = self.devfun.condvar_blocks(self._fac)
        Ts = self.devfun.split(self.theta)
        return [self.sigma ** 2 * np.einsum("ij,ljk,hk->lih", T, V, T)
                for T, V in zip(Ts, inv)]

    def coef(self):
        """Fixed plus random effects per level, as R's ``coef(fit)``."""
        out = {}
        for g, df in self.ranef(condvar=False).items():
            full = pd.DataFrame({name: np.full(len(df), val)
                                 for name, val in self.fixef.items()}, index=df.index)
            for col in df.columns:
                if col in full:
                    full[col] = full[col] + df[col]
                else:
                    full[col] = df[col]
            out[g] = full
        return out

    # -- variance components
    def varcorr(self):
        """Variance components: a table as R's ``as.data.frame(VarCorr(fit))``.

        Columns grp, var1, var2, vcov, sdcor (variances and covariances in
        vcov; standard deviations and correlations in sdcor).
        """
        return self.covariance.varcorr(self.theta, self.sigma)

    def cov_matrices(self):
        """Per term: (name, column names, covariance matrix σ² T T')."""
        cov = self.covariance
        return list(zip(cov.names(), cov.cnames, cov.covariances(self.theta, self.sigma)))

    # -- fitted values
    def _Zb(self):
        """Σ_k Z_k b̂_k on the training rows."""
        return Zb(self.blocks, self._b)

    def _offset(self):
        off = self.design.offset
        return 0.0 if off is None else off

    def fitted(self):
        """Xβ̂ + Zb̂ (+ offset), as lme4's fitted()."""
        return pd.Series(self.design.X @ self.fixef.to_numpy() + self._Zb() + self._offset(),
                         index=self.frame.row_index)

    def residuals(self, scaled=False, type="response"):
        """y - fitted (``type="response"``) or sqrt(w)(y - fitted) (``"pearson"``);
        ``scaled=True`` divides by σ̂, as lme4's residuals(fit, scaled = TRUE)."""
        r = self.design.y - self.fitted().to_numpy()
        if type == "pearson" and self.design.weights is not None:
            r = r * np.sqrt(self.design.weights)
        if scaled:
            r = r / self.sigma
        return pd.Series(r, index=self.frame.row_index)

    def predict(self, newdata=None, re_form=None, allow_new_levels=False):
        """Predictions, as lme4's ``predict``.

        Parameters
        ----------
        newdata : DataFrame, optional
            New data; its variables get the training transforms (scale, poly,
            factor levels). Without it, the fitted values.
        re_form : None, "~0", "NA" or a formula such as "~(1 | Subject)"
            Which random terms to include: all (None), none ("~0", R's
            ``re.form = NA``), or those of the formula.
        allow_new_levels : bool
            Whether a level not seen in training may occur (its random effect is 0,
            term by term); otherwise that is an error naming the levels.
        """
        return predict_lmer(self, newdata, re_form, allow_new_levels)

    def refit(self, REML=None, data=None, y=None):
        """The same model fitted again: by ML (``REML=False``), to a new response ``y``,
        or to new ``data`` (the formula's specification is reused, not re-parsed)."""
        if data is not None:
            call = self.call
            for what, arg in (("weights", call.weights), ("offset", call.offset)):
                if arg is not None and not isinstance(arg, str):
                    raise LmmError(f"the model's {what}= was an array for the original rows; "
                                   f"to refit to new data, give {what}= as a column name")
            design = build_design(self.spec, data, call.weights, call.offset,
                                  self.design.contrasts_arg)
            model = LmerModel(design, self.REML if REML is None else REML, self.model.solver)
        else:
            model = self.model.refit(y=y, REML=REML)
        opt = model.optimize(self.opt.method)
        return LmerFit(model, opt, self.data_name, self.data if data is None else data,
                       self.call)

    def at_theta(self, theta):
        """The same model evaluated at another θ (e.g. lme4's optimum): every
        θ-derived quantity (β̂, σ̂, b̂, predictions) without re-optimizing, so that
        comparisons are free of two optimizers' stopping points."""
        opt = dataclasses.replace(self.opt, theta=np.asarray(theta, dtype=float))
        return LmerFit(self.model, opt, self.data_name, self.data, self.call)

    def summary(self, ddf=None):
        """lme4's ``summary`` (lmerTest's with ``ddf="Satterthwaite"`` or ``"Kenward-Roger"``)."""
        return LmerSummary(self, ddf=ddf)

    def confint(self, parm=None, level=0.95, method="profile", **kwargs):
        """lme4's ``confint``: see :func:`lmmlite.confint.confint`."""
        return _confint(self, parm=parm, level=level, method=method, **kwargs)

    def __repr__(self):
        return format_lmer_short(self)


