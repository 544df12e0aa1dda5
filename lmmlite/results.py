"""Stage 5: the fitted model, with lme4's accessors.

All quantities derive from the optimum θ̂ through one blocked Cholesky
factor (see deviance.py): β̂ and u from L'[u; β] = ℓ, b = Λu, σ̂² = r²/(n-p)
for REML or r²/n for ML, Cov(β̂) = σ̂² (R_X'R_X)^{-1}, and the conditional
variances of b as σ̂² Λ (Λ'Z'ZΛ + I)^{-1} Λ' (lme4's condVar).
"""


import numpy as np
import pandas as pd

from .confint import confint as _confint
from .design import model_matrix
from .fit import FitBase
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

    def __init__(self, spec, frame, dev, xnames, dropped, opt, data_name="data", data=None):
        self.spec = spec
        self.data = data            # the data as given, for refits (anova, profiles)
        self.formula = spec.formula
        self.frame = frame
        self.devfun = dev
        self.covariance = dev.covariance
        self.blocks = dev.blocks
        self.REML = dev.REML
        self.aliased = list(dropped)
        self.opt = opt
        self.data_name = data_name
        self.theta = opt.theta
        self.singular = opt.singular
        self.messages = opt.messages
        self.nobs = dev.n
        fac = dev.factor(self.theta)
        self._fac = fac
        beta, u = dev.solve(fac)
        n, p = dev.n, dev.p
        self.sigma = float(np.sqrt(dev.pwrss(fac) / (n - p if self.REML else n)))
        self.fixef = NamedVector(beta, index=xnames)
        RXinv = np.linalg.inv(fac.RX())
        self.vcov = pd.DataFrame(self.sigma ** 2 * RXinv @ RXinv.T, index=xnames, columns=xnames)
        self._u = u
        self._b = dev.random_effects(u, fac.Ts)   # b = Λu, one (levels x p) array per term
        crit = float(dev.criterion(fac))
        self.reml_criterion = crit if self.REML else None
        self.deviance = crit if not self.REML else float(dev.criterion(fac, REML=False))
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
        return self.devfun.Zb(self._b)

    def fitted(self):
        """Fitted values Xβ̂ + Zb̂, indexed as the rows used."""
        return pd.Series(self.devfun.X @ self.fixef.to_numpy() + self._Zb(),
                         index=self.frame.row_index)

    def residuals(self, scaled=False):
        """Response minus fitted values (divided by σ̂ with ``scaled=True``)."""
        r = self.devfun.y - self.fitted().to_numpy()
        if scaled:
            r = r / self.sigma
        return pd.Series(r, index=self.frame.row_index)

    def predict(self, newdata=None, re_form=None):
        """Predictions; ``re_form="~0"`` (or NA) gives the fixed part only.

        New levels of a grouping factor get random effect 0, as lme4's
        ``allow.new.levels = TRUE``.
        """
        fixed_only = re_form is not None and str(re_form).replace(" ", "") in ("~0", "NA", "nan")
        if newdata is None:
            if fixed_only:
                return pd.Series(self._dev.X @ self.fixef.to_numpy(), index=self.frame.row_index)
            return self.fitted()
        spec = self.spec
        # fixed part with the training factor levels
        frame = _new_frame(self.frame, newdata, [v for t in spec.terms for v in t])
        X, names = model_matrix(spec.intercept, spec.terms, frame)
        X = pd.DataFrame(X, columns=names)[list(self.fixef.index)].to_numpy()
        pred = X @ self.fixef.to_numpy()
        if not fixed_only:
            for b, bk in zip(self.blocks, self._b):
                rt = next(r for r in spec.random if r.group_name == b.group)
                vars_ = [v for t in rt.terms for v in t]
                fr = _new_frame(self.frame, newdata, vars_)
                Xb, _ = model_matrix(rt.intercept, list(rt.terms), fr)
                key = newdata[list(rt.group)].astype(str).agg(":".join, axis=1).to_numpy()
                lookup = {str(lev): i for i, lev in enumerate(b.levels)}
                idx = np.array([lookup.get(k, -1) for k in key])
                known = idx >= 0
                pred[known] += np.einsum("ij,ij->i", Xb[known], bk[idx[known]])
        return pd.Series(pred, index=newdata.index)

    # -- printing
    def refit(self, REML=None, data=None):
        """The same model fitted again, e.g. by ML (``REML=False``) or to new data."""
        from .lmer import lmer
        fit = lmer(self.spec.formula, self.data if data is None else data,
                   REML=self.REML if REML is None else REML, optimizer=self.opt.method)
        fit.data_name = self.data_name
        return fit

    def summary(self, ddf=None):
        """lme4's ``summary`` (lmerTest's with ``ddf="Satterthwaite"`` or ``"Kenward-Roger"``)."""
        return LmerSummary(self, ddf=ddf)

    def confint(self, parm=None, level=0.95, method="profile", **kwargs):
        """lme4's ``confint``: see :func:`lmmlite.confint.confint`."""
        return _confint(self, parm=parm, level=level, method=method, **kwargs)

    def __repr__(self):
        return format_lmer_short(self)


def _new_frame(train, newdata, names):
    """A Frame of new data with the training levels of every factor."""
    from .frame import Frame
    from .errors import LmmError
    cols = {}
    for name in dict.fromkeys(names):
        if name not in newdata:
            raise LmmError(f"newdata has no column '{name}' needed for prediction")
        old = train.columns[name]
        if isinstance(old, pd.Categorical):
            vals = newdata[name]
            cat = pd.Categorical(vals, categories=old.categories)
            if np.any(cat.codes < 0):
                bad = sorted(set(map(str, vals[cat.codes < 0])))
                raise LmmError(f"factor '{name}' has new levels {', '.join(bad)}")
            cols[name] = cat
        else:
            cols[name] = newdata[name].to_numpy(dtype=float)
    return Frame(columns=cols, nobs=len(newdata), n_dropped=0, row_index=newdata.index)
