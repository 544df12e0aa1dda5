"""Fit the same model in R's lme4 (through rpy2) to get reference values.

``lme4_fit`` returns lme4's own optimum; ``lme4_at_theta`` builds lme4's
merMod at a given θ (lFormula -> mkLmerDevfun -> mkMerMod, lme4's modular
stages) so that every θ-derived quantity can be compared at the same θ,
free of the two optimizers' tolerances.
"""

import functools
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

# the R-availability check and the DataFrame conversion are the book's (the book
# must not import from tests/, so the tests import from scripts/)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from lme4_reference import _to_r, r_status  # noqa: E402

_R_CODE = r"""
suppressPackageStartupMessages({library(lme4); library(lmerTest)})
options(useFancyQuotes = FALSE, width = 80)
.lmm_extract <- function(m) {
  vc <- as.data.frame(VarCorr(m))
  re <- as.data.frame(ranef(m, condVar = TRUE))
  list(theta = unname(getME(m, "theta")),
       fixef = fixef(m),
       se = unname(sqrt(diag(as.matrix(vcov(m))))),
       sigma = sigma(m),
       crit = if (isREML(m)) REMLcrit(m) else deviance(m),
       loglik = as.numeric(logLik(m)),
       vc_vcov = vc$vcov, vc_sdcor = vc$sdcor,
       re_condval = re$condval, re_condsd = re$condsd,
       re_grp = as.character(re$grp), re_term = as.character(re$term),
       re_grpvar = as.character(re$grpvar),
       singular = isSingular(m),
       fitted = unname(fitted(m)))
}
.lmm_fit <- function(formula, data, REML) {
  m <- lme4::lmer(as.formula(formula), data = data, REML = REML)
  .lmm_extract(m)
}
.lmm_at_theta <- function(formula, data, REML, theta) {
  lf <- lFormula(as.formula(formula), data = data, REML = REML)
  devf <- do.call(mkLmerDevfun, lf)
  val <- devf(theta)
  opt <- list(par = theta, fval = val, conv = 0, message = "")
  m <- mkMerMod(environment(devf), opt, lf$reTrms, fr = lf$fr)
  .lmm_extract(m)
}
.lmm_print_at_theta <- function(formula, data, REML, theta) {
  lf <- lFormula(as.formula(formula), data = data, REML = REML)
  devf <- do.call(mkLmerDevfun, lf)
  opt <- list(par = theta, fval = devf(theta), conv = 0, message = "")
  m <- mkMerMod(environment(devf), opt, lf$reTrms, fr = lf$fr)
  paste(capture.output(print(summary(m))), collapse = "\n")
}
.lmm_predict_at_theta <- function(formula, data, REML, theta, newdata) {
  lf <- lFormula(as.formula(formula), data = data, REML = REML)
  devf <- do.call(mkLmerDevfun, lf)
  opt <- list(par = theta, fval = devf(theta), conv = 0, message = "")
  m <- mkMerMod(environment(devf), opt, lf$reTrms, fr = lf$fr)
  list(full = unname(predict(m, newdata = newdata, allow.new.levels = TRUE)),
       fixed = unname(predict(m, newdata = newdata, re.form = NA)))
}
.lmm_satt <- function(formula, data, REML) {
  m <- lmerTest::lmer(as.formula(formula), data = data, REML = REML)
  co <- coef(summary(m, ddf = "Satterthwaite"))
  list(df = unname(co[, "df"]), p = unname(co[, "Pr(>|t|)"]))
}
"""


@functools.lru_cache(maxsize=1)
def _r():
    import rpy2.robjects as ro
    ro.r(_R_CODE)
    return ro


def _to_py(res):
    out = {}
    for name in res.names:
        v = res.rx2(name)
        arr = list(v)
        if name in ("re_grp", "re_term", "re_grpvar"):
            out[name] = [str(a) for a in arr]
        elif name == "fixef":
            out[name] = pd.Series(np.array(arr, dtype=float), index=list(v.names))
        elif name == "singular":
            out[name] = bool(arr[0])
        else:
            a = np.array(arr, dtype=float)
            out[name] = a if a.size != 1 or name in ("theta", "se", "fitted") else float(a[0])
    return out


def lme4_fit(formula, df, REML=True):
    """lme4's fit: a dict of theta, fixef, se, sigma, crit, varcorr, ranef, ..."""
    ro = _r()
    return _to_py(ro.r[".lmm_fit"](formula, _to_r(df), REML))


def lme4_at_theta(formula, df, theta, REML=True):
    """lme4's merMod at a given θ (no optimization), extracted like lme4_fit."""
    import rpy2.robjects as ro
    r = _r()
    return _to_py(r.r[".lmm_at_theta"](formula, _to_r(df), REML, ro.FloatVector(theta)))


def lme4_summary_at_theta(formula, df, theta, REML=True):
    """lme4's printed ``summary()`` of its merMod built at the given θ."""
    import rpy2.robjects as ro
    r = _r()
    out = r.r[".lmm_print_at_theta"](formula, _to_r(df), REML, ro.FloatVector(theta))
    return str(out[0])


def lme4_predict_at_theta(formula, df, theta, newdata, REML=True):
    """lme4's predict() with and without random effects, new levels allowed."""
    import rpy2.robjects as ro
    r = _r()
    res = r.r[".lmm_predict_at_theta"](formula, _to_r(df), REML, ro.FloatVector(theta),
                                       _to_r(newdata))
    return np.array(res.rx2("full"), dtype=float), np.array(res.rx2("fixed"), dtype=float)


def lmertest_satterthwaite(formula, df, REML=True):
    """lmerTest's Satterthwaite df and p-values of the fixed effects."""
    r = _r()
    res = r.r[".lmm_satt"](formula, _to_r(df), REML)
    return np.array(res.rx2("df"), dtype=float), np.array(res.rx2("p"), dtype=float)


@functools.lru_cache(maxsize=1)
def _cached_status():
    return r_status()


def require_r():
    """Skip the calling test when R is missing, unless CI demands R (then fail)."""
    import pytest
    ok, reason = _cached_status()
    if not ok:
        if os.environ.get("LMMLITE_REQUIRE_R") == "1":
            pytest.fail(f"LMMLITE_REQUIRE_R=1 but the lme4 cross-check cannot run: {reason}",
                        pytrace=False)
        pytest.skip(f"lme4 cross-check skipped: {reason}; install R with lme4 and lmerTest "
                    "(apt-get install r-base-core r-cran-lme4 r-cran-lmertest) and "
                    "pip install 'rpy2<3.6'")
