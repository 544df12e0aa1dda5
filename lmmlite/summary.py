"""Stage 7 (model summaries): lme4's ``summary(lmer)``, lmerTest's and R's ``summary.lm``.

The number formats themselves live in printing.py; this module lays out the
blocks exactly as lme4's ``print.summary.merMod`` and R's
``print.summary.lm`` do (digits = max(3, getOption("digits") - 3) = 4).
"""

import numpy as np
import pandas as pd
from scipy import stats

from . import printing as P
from .deparse_lines import cat_fill
from .errors import LmmError
from .inference import fixef_ddf

DIGITS = 4  # max(3, getOption("digits") - 3) with R's default digits = 7


def _g(x, digits):
    """R's ``formatC(x, digits = digits)``: C's %.<digits>g."""
    return f"{x:.{digits}g}"


def _cat_num(x):
    """How ``cat()`` prints a number: up to 7 significant digits."""
    return P.format_scalar(x, digits=7).strip()


def method_title(fit, ddf=None):
    """lme4's ``.prt.methTit``: the title, wrapped as R wraps it past 80 columns."""
    title = "Linear mixed model fit by " + ("REML" if fit.REML else "maximum likelihood ")
    cls = "lmerMod"
    if ddf is not None:
        title += f". t-tests use {ddf}'s method"
        cls = "lmerModLmerTest"
    if len(title) + 5 + len(cls) > 80:
        return cat_fill([title, " [", cls, "]"], sep="")
    return f"{title} ['{cls}']"


def _aic_block(fit, digits=1):
    """lme4's ``.prt.aictab``: values rounded to ``digits`` decimals."""
    if fit.REML:
        return f"REML criterion at convergence: {_cat_num(P.r_round(fit.reml_criterion, digits))}"
    vals = [fit.aic, fit.bic, fit.loglik, fit.deviance, fit.nobs - fit.npar]
    names = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    txt = P.format_num([P.r_round(v, digits) for v in vals], digits=7)
    txt[-1] = str(int(fit.nobs - fit.npar))
    w = max(len(s) for s in txt + names)
    return "".join(n.rjust(w) + " " for n in names) + "\n" + "".join(s.strip().rjust(w) + " " for s in txt)


def _varcorr_rows(fit):
    return fit.covariance.summary_rows(fit.theta, fit.sigma)


def groups_line(fit):
    groups = "; ".join(f"{g}, {n}" for g, n in fit.ngrps.items())
    return cat_fill([f"Number of obs: {fit.nobs}, groups: ", groups])


def fixef_corr(fit):
    V = fit.vcov.to_numpy()
    sd = np.sqrt(np.diag(V))
    return V / np.outer(sd, sd)


def effects_lines(fit, varcorr_rows, coefficients):
    """The Random effects, Fixed effects and Correlation blocks of lme4's summary
    (lmer and glmer alike): the correlations for 2 to 12 fixed effects, as lme4."""
    out = ["Random effects:", P.format_varcorr(varcorr_rows, DIGITS), groups_line(fit)]
    if len(fit.fixef):
        out += ["", "Fixed effects:", P.print_coefmat(coefficients, digits=DIGITS)]
        p = len(fit.fixef)
        if 1 < p <= 12:
            out += ["", "Correlation of Fixed Effects:",
                    P.format_fixef_corr(fixef_corr(fit), list(fit.fixef.index))]
        elif p > 12:
            out += ["", f"Correlation matrix not shown by default, as p = {p} > 12."]
    return out


class LmerSummary:
    """``summary(fit)``: printed like lme4 (or lmerTest with ``ddf``); ``.coefficients`` is the table."""

    def __init__(self, fit, ddf=None):
        if ddf not in (None, "Satterthwaite", "Kenward-Roger", "lme4"):
            raise LmmError(f"ddf must be None, 'Satterthwaite', 'Kenward-Roger' or 'lme4', not {ddf!r}")
        self.fit = fit
        self.ddf = None if ddf == "lme4" else ddf
        est = fit.fixef
        se = np.sqrt(np.diag(fit.vcov.to_numpy()))
        table = pd.DataFrame({"Estimate": est, "Std. Error": se}, index=est.index)
        if self.ddf is None:
            table["t value"] = est / se
        else:
            df, se_adj = fixef_ddf(fit, self.ddf)
            table["Std. Error"] = se_adj
            table["df"] = df
            table["t value"] = est / se_adj
            table["Pr(>|t|)"] = 2 * stats.t.sf(np.abs(table["t value"]), df)
        self.coefficients = table

    def __str__(self):
        fit = self.fit
        out = [method_title(fit, self.ddf),
               cat_fill(["Formula:", fit.formula]),
               cat_fill(["   Data:", fit.data_name]),
               *_weights_offset_lines(fit),
               ""]
        if fit.n_dropped:
            out[-1:] = [f"  ({fit.n_dropped} observation{'s' if fit.n_dropped > 1 else ''} "
                        "deleted due to missingness)", ""]
        out += [_aic_block(fit), ""]
        out += ["Scaled residuals: ", P.format_quantiles(fit.residuals(scaled=True, type="pearson"), DIGITS), ""]
        out += effects_lines(fit, _varcorr_rows(fit), self.coefficients)
        if fit.messages:
            out += [f"optimizer ({fit.opt.method}) convergence code: 0 (OK)"] + list(fit.messages) + [""]
        return "\n".join(out) + "\n"

    def __repr__(self):
        return str(self)


def gap_vector(values, digits, gap=2, width=80):
    """``print(format(x, digits = digits), print.gap = 2, quote = FALSE)`` of a named vector."""
    vals = P.format_num(np.asarray(values, dtype=float), digits)
    names = [str(n) for n in values.index]
    w = max(len(x) for x in vals + names)
    per = max(1, width // (w + gap))
    lines = []
    for i in range(0, len(vals), per):
        lines.append("".join(n.rjust(w) + " " * gap for n in names[i:i + per]))
        lines.append("".join(v.rjust(w) + " " * gap for v in vals[i:i + per]))
    return "\n".join(lines)


def format_lmer_short(fit):
    """``print(fit)``: lme4's short display."""
    out = [method_title(fit), cat_fill(["Formula:", fit.formula]),
           cat_fill(["   Data:", fit.data_name])]
    out.append(_aic_block(fit, digits=4))
    rows = [{k: v for k, v in r.items() if k != "variance"} for r in _varcorr_rows(fit)]
    out += ["Random effects:", P.format_varcorr(rows, 4, comp=("Std.Dev.",)), groups_line(fit),
            "Fixed Effects:", gap_vector(fit.fixef, DIGITS)]
    if fit.messages:
        out += list(fit.messages)
    return "\n".join(out)


class LmSummary:
    """``summary(lm)`` printed as R's ``print.summary.lm``."""

    def __init__(self, fit):
        self.fit = fit
        self.coefficients = fit.coef_table()

    def __str__(self):
        fit, d = self.fit, DIGITS
        out = ["", "Call:", _lm_call(fit), ""]
        resid = fit.residuals().to_numpy()
        w = fit.design.weights
        if w is not None:   # summary.lm shows sqrt(w) times the residuals
            resid = resid * np.sqrt(w)
        rdf = fit.df_residual
        out.append(("Weighted " if w is not None and np.ptp(w) > 0 else "") + "Residuals:")
        if rdf > 5:
            out.append(P.format_quantiles(resid, d))
        else:
            out.append(P.print_named_vector(pd.Series(resid, index=[str(i + 1) for i in range(len(resid))]), d))
        out.append("")
        n_alias = len(fit.aliased)
        if n_alias:
            out.append(f"Coefficients: ({n_alias} not defined because of singularities)")
        else:
            out.append("Coefficients:")
        table = self.coefficients.reindex(fit.coefficients.index)
        out.append(P.print_coefmat(table, digits=d))
        out.append("")
        out.append(f"Residual standard error: {_cat_num(float(_g(fit.sigma, d)))} "
                   f"on {rdf} degrees of freedom")
        if fit.n_dropped:
            out.append(f"  ({fit.n_dropped} observation{'s' if fit.n_dropped > 1 else ''} "
                       "deleted due to missingness)")
        r2, adj, f, numdf = fit.r_squared()
        if np.isfinite(f):
            out.append(f"Multiple R-squared:  {_g(r2, d)},\tAdjusted R-squared:  {_g(adj, d)} ")
            pval = stats.f.sf(f, numdf, rdf)
            out.append(f"F-statistic: {_g(f, d)} on {numdf} and {rdf} DF,  p-value: "
                       f"{P.format_pval([pval], d)[0]}")
        out.append("")
        return "\n".join(out) + "\n"

    def __repr__(self):
        return str(self)


def format_lm_short(fit):
    out = ["", "Call:", _lm_call(fit), "",
           "Coefficients:", gap_vector(fit.coefficients, DIGITS), ""]
    return "\n".join(out)


def _lm_call(fit, cutoff=60):
    """R's printed call of lm: lm(formula = ..., data = ..., weights = ..., offset = ...).

    As R's deparse: after an argument and its ", ", a line longer than ``cutoff``
    characters ends there and the next one is indented by four spaces.
    """
    args = [f"formula = {fit.formula}", f"data = {fit.data_name}"]
    args += [f"{k} = {v}" for k, v in fit.call.texts.items()]
    lines, line = [], "lm("
    for k, arg in enumerate(args):
        line += arg + (", " if k < len(args) - 1 else ")")
        if k < len(args) - 1 and len(line) > cutoff:
            lines.append(line)
            line = "    "
    return "\n".join(lines + [line])


def _weights_offset_lines(fit):
    """lme4's .prt.call: 'Weights:' and ' Offset:' lines under the data."""
    labels = {"weights": "Weights:", "offset": " Offset:"}
    return [cat_fill([labels[k], v]) for k, v in fit.call.texts.items()]
