"""lme4's ``summary(glmer)`` and ``print(glmer)``, laid out as ``print.summary.merMod``.

Blocks: the method title (wrapped as lme4's ``.prt.methTit``), family and link,
the call (Formula, Data, Weights, Offset), AIC BIC logLik deviance df.resid
("deviance" here is -2 logLik), the Pearson residuals' quantiles ("Scaled
residuals"), the random effects without a residual line, the z table with
Pr(>|z|) and the correlation of the fixed effects; the number formats come
from printing.py.
"""

import numpy as np
import pandas as pd
from scipy import stats

from . import printing as P
from .deparse_lines import formula_line
from .summary import DIGITS, cat_fill, effects_lines, gap_vector, groups_line


def method_title(fit):
    how = "Laplace Approximation" if fit.nAGQ == 1 else (
        f"Adaptive Gauss-Hermite Quadrature, nAGQ = {fit.nAGQ}" if fit.nAGQ > 1 else
        "Adaptive Gauss-Hermite Quadrature, nAGQ = 0")
    title = f"Generalized linear mixed model fit by maximum likelihood ({how})"
    cls = "glmerMod"
    if len(title) + 5 + len(cls) <= 80:
        return f"{title} ['{cls}']"
    # strwrap(width = 78, exdent = 2), then cat(..., " [", class, "]", sep = "", fill = TRUE)
    words, lines, cur = title.split(" "), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > 77:
            lines.append(cur)
            cur = "  " + w
        else:
            cur = w if not cur else cur + " " + w
    lines.append(cur)
    return cat_fill(lines + [" [", cls, "]"], sep="")


def _call_lines(fit):
    out = [formula_line("Formula:", fit.formula), cat_fill(["   Data:", fit.data_name])]
    if fit.weights_arg:
        out.append(cat_fill(["Weights:", fit.weights_arg]))
    if fit.offset_arg:
        out.append(cat_fill([" Offset:", fit.offset_arg]))
    return out


def _aic_block(fit, digits=1):
    """lme4's ``.prt.aictab`` for glmer: AIC BIC logLik deviance (= -2 logLik) df.resid."""
    vals = [fit.aic, fit.bic, fit.loglik, -2 * fit.loglik]
    names = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    txt = P.format_num([P.r_round(v, digits) for v in vals], digits=7) + [str(int(fit.df_residual))]
    w = max(len(s) for s in txt + names)
    return "".join(n.rjust(w) + " " for n in names) + "\n" + \
        "".join(s.strip().rjust(w) + " " for s in txt)


def _varcorr_rows(fit):
    return fit.covariance.summary_rows(fit.theta, 1.0)[:-1]


def coef_table(fit):
    est = fit.fixef
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    z = est.to_numpy() / se
    return pd.DataFrame({"Estimate": est.to_numpy(), "Std. Error": se, "z value": z,
                         "Pr(>|z|)": 2 * stats.norm.sf(np.abs(z))}, index=est.index)


class GlmerSummary:
    """``summary(fit)``; ``.coefficients`` is the z table."""

    def __init__(self, fit):
        self.fit = fit
        self.coefficients = coef_table(fit)

    def __str__(self):
        fit = self.fit
        out = [method_title(fit), f" Family: {fit.family.name}  ( {fit.family.link.name} )"]
        out += _call_lines(fit) + [""]
        if fit.n_dropped:
            out[-1:] = [f"  ({fit.n_dropped} observation{'s' if fit.n_dropped > 1 else ''} "
                        "deleted due to missingness)", ""]
        out += [_aic_block(fit), ""]
        out += ["Scaled residuals: ",
                P.format_quantiles(fit.residuals(type="pearson").to_numpy(), DIGITS), ""]
        out += effects_lines(fit, _varcorr_rows(fit), self.coefficients)
        if fit.messages:
            out += [f"optimizer ({fit.opt.method}) convergence code: 0 (OK)"] + list(fit.messages)
        return "\n".join(out) + "\n"

    def __repr__(self):
        return str(self)


def format_glmer_short(fit):
    """``print(fit)``: lme4's short display."""
    out = [method_title(fit), f" Family: {fit.family.name}  ( {fit.family.link.name} )"]
    out += _call_lines(fit)
    out.append(_aic_block(fit, digits=4))
    rows = [{k: v for k, v in r.items() if k != "variance"} for r in _varcorr_rows(fit)]
    out += ["Random effects:", P.format_varcorr(rows, 4, comp=("Std.Dev.",)), groups_line(fit),
            "Fixed Effects:", gap_vector(fit.fixef, DIGITS)]
    if fit.messages:
        # lme4's .prt.warn(summary = TRUE): counts only
        out.append(f"optimizer ({fit.opt.method}) convergence code: 0 (OK) ; 0 optimizer "
                   f"warnings; {len(fit.messages)} lme4 warnings ")
    return "\n".join(out)
