"""lmerTest / pbkrtest / lme4 reference values for the inference cross-check (through rpy2).

Reuses the data conversion and the R-availability check of r_reference.py.
"""

import functools

import numpy as np
import pandas as pd

from r_reference import _r, _to_r

_R_CODE = r"""
suppressPackageStartupMessages({library(lme4); library(lmerTest); library(pbkrtest)})
.inf_coef <- function(formula, data, REML) {
  m <- lmerTest::lmer(as.formula(formula), data = data, REML = REML)
  s <- coef(summary(m, ddf = "Satterthwaite"))
  out <- list(satt_df = unname(s[, "df"]), satt_p = unname(s[, "Pr(>|t|)"]),
              theta = unname(getME(m, "theta")))
  if (REML) {
    k <- coef(summary(m, ddf = "Kenward-Roger"))
    out$kr_df <- unname(k[, "df"]); out$kr_p <- unname(k[, "Pr(>|t|)"])
    out$kr_se <- unname(k[, "Std. Error"])
  }
  out
}
.inf_anova3 <- function(formula, data, REML, ddf, type) {
  m <- lmerTest::lmer(as.formula(formula), data = data, REML = REML)
  a <- suppressMessages(anova(m, type = type, ddf = ddf))
  list(theta = unname(getME(m, "theta")), terms = rownames(a), ss = a[["Sum Sq"]], ndf = a[["NumDF"]], ddf = a[["DenDF"]],
       F = a[["F value"]], p = a[["Pr(>F)"]], text = paste(capture.output(print(a)), collapse = "\n"))
}
.inf_lrt <- function(f1, f2, data, REML, refit) {
  m1 <- lme4::lmer(as.formula(f1), data = data, REML = REML)
  m2 <- lme4::lmer(as.formula(f2), data = data, REML = REML)
  a <- suppressMessages(anova(m1, m2, refit = refit))
  list(npar = a$npar, AIC = a$AIC, BIC = a$BIC, logLik = a$logLik, Chisq = a$Chisq,
       Df = a$Df, p = a[["Pr(>Chisq)"]])
}
.inf_confint <- function(formula, data, REML, method) {
  m <- lme4::lmer(as.formula(formula), data = data, REML = REML)
  ci <- suppressWarnings(suppressMessages(confint(m, method = method, quiet = TRUE)))
  list(names = rownames(ci), lower = unname(ci[, 1]), upper = unname(ci[, 2]))
}
"""


@functools.lru_cache(maxsize=1)
def _ri():
    ro = _r()
    ro.r(_R_CODE)
    return ro


def _lst(res):
    out = {}
    for name in res.names:
        v = list(res.rx2(name))
        if name in ("terms", "names", "text"):
            out[name] = [str(a) for a in v]
        else:
            out[name] = np.array([np.nan if a is None else a for a in v], dtype=float)
    return out


def coef_ddf(formula, df, REML=True):
    """lmerTest's Satterthwaite (and, for REML, Kenward-Roger) df and p-values."""
    return _lst(_ri().r[".inf_coef"](formula, _to_r(df), REML))


def anova_ftable(formula, df, REML=True, ddf="Satterthwaite", type=3):
    """lmerTest's anova(fit, type, ddf): terms, Sum Sq, NumDF, DenDF, F, p, printed text."""
    out = _lst(_ri().r[".inf_anova3"](formula, _to_r(df), REML, ddf, type))
    out["text"] = out["text"][0]
    return out


def anova_lrt(f1, f2, df, REML=True, refit=True):
    """lme4's anova(m1, m2, refit=refit) columns."""
    return _lst(_ri().r[".inf_lrt"](f1, f2, _to_r(df), REML, refit))


def confint_ref(formula, df, REML=True, method="profile"):
    """lme4's confint(fit, method): row names, lower and upper bounds."""
    return _lst(_ri().r[".inf_confint"](formula, _to_r(df), REML, method))


def lme4_dataset(name):
    """One of lme4's data sets (numeric columns as float, factors as strings)."""
    ro = _ri()
    d = ro.r(f"lme4::{name}")
    out = {}
    for col in d.names:
        v = d.rx2(col)
        if ro.r["is.factor"](v)[0]:
            out[col] = [str(x) for x in ro.r["as.character"](v)]
        else:
            out[col] = np.array(list(v), dtype=float)
    return pd.DataFrame(out)
