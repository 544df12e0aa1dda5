#!/usr/bin/env python
"""R's golden values for the inference a course teaches next (issue 12): tests/golden/infer_ref.json.

    ./.venv/bin/python tests/r_infer_ref.py

Needs R with lme4, lmerTest 3.1-3, pbkrtest, emmeans and performance, and rpy2.
For every model of ``MODELS`` (fitted at tight tolerances with the Newton
polish of ``r_design_ref.py``, so the numbers are the exact optimum's) it records

* lmerTest's ``ranova``, ``drop1`` and ``anova`` of type 1, 2 and 3 with
  Satterthwaite's and (REML fits) Kenward-Roger's df, ``ls_means`` and
  ``difflsmeans`` (Satterthwaite), each with R's printed text;
* emmeans's ``emmeans(fit, ~ f, lmer.df = "satterthwaite")`` and its
  Tukey-adjusted ``pairs``, and the same with emmeans's default df
  (Kenward-Roger), with the printed text;
* performance's ``icc`` and ``r2_nakagawa``;
* emmeans's mean and SE at covariate values (``POPULATION_SE``): the population
  prediction x'β̂ and its standard error sqrt(x' V(β̂) x);

and for every pair of ``PBMODCOMP`` pbkrtest's ``PBmodcomp`` (the LRT row,
and the parametric-bootstrap p-value with its nsim, for a comparison within
Monte Carlo error).  Data: lmmlite's ``load("sleepstudy")``, ``clinics_nested``,
``clinics_crossed`` and the CSV files of tests/golden/data/ (cake, Penicillin,
Pastes, sleep), read exactly as the tests read them.
"""

from __future__ import annotations

import datetime as _dt
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
OUT = HERE / "golden" / "infer_ref.json"

_R_INFER = r"""
suppressPackageStartupMessages({library(lmerTest); library(pbkrtest); library(emmeans);
                                library(performance)})
.inf_txt <- function(x) paste(capture.output(print(x)), collapse = "\n")
.inf_tab <- function(a) {
  a <- as.data.frame(a)
  c(list(rownames = rownames(a), colnames = colnames(a)),
    setNames(lapply(seq_along(a), function(j) unname(as.numeric(a[[j]]))), colnames(a)))
}
.inf_fit <- function(formula, data, REML) {
  cl <- bquote(lmerTest::lmer(.(as.formula(formula)), data = data, REML = .(REML),
                              control = .dref_ctl))
  suppressWarnings(suppressMessages(eval(cl)))
}
.inf_model <- function(formula, data, REML, emm) {
  m <- .inf_fit(formula, data, REML)
  out <- list(theta = unname(getME(m, "theta")), fixef = unname(fixef(m)),
              fixef_names = names(fixef(m)), sigma = sigma(m))
  r <- suppressWarnings(ranova(m))
  out$ranova <- c(.inf_tab(r), list(text = .inf_txt(r)))
  has_terms <- length(attr(terms(m), "term.labels")) > 0
  if (has_terms) {
    d <- drop1(m)
    out$drop1 <- c(.inf_tab(d), list(text = .inf_txt(d)))
    ddfs <- if (REML) c("Satterthwaite", "Kenward-Roger") else "Satterthwaite"
    for (ty in 1:3) for (dd in ddfs) {
      a <- anova(m, type = ty, ddf = dd)
      out[[sprintf("anova_%d_%s", ty, dd)]] <- c(.inf_tab(a), list(text = .inf_txt(a)))
    }
    lsm <- ls_means(m)
    if (nrow(lsm)) {
      out$ls_means <- c(.inf_tab(lsm), list(text = .inf_txt(lsm)))
      dl <- difflsmeans(m)
      out$difflsmeans <- c(.inf_tab(dl), list(text = .inf_txt(dl)))
      if (REML) {
        lk <- ls_means(m, ddf = "Kenward-Roger")
        out$ls_means_KR <- c(.inf_tab(lk), list(text = .inf_txt(lk)))
      }
    }
  }
  for (f in emm) {
    for (dfm in c("satterthwaite", if (REML) "kenward-roger")) {
      e <- suppressMessages(emmeans(m, as.formula(paste("~", f)), lmer.df = dfm))
      pr <- pairs(e)
      key <- paste0("emmeans_", f, "_", dfm)
      out[[key]] <- list(emm = c(.inf_tab(summary(e)), list(text = .inf_txt(e))),
                         pairs = c(.inf_tab(summary(pr)), list(text = .inf_txt(pr))))
    }
  }
  ic <- suppressWarnings(icc(m))
  r2 <- suppressWarnings(r2_nakagawa(m))
  out$icc <- if (is.list(ic)) list(adjusted = ic$ICC_adjusted, unadjusted = ic$ICC_unadjusted) else NULL
  out$r2 <- if (is.list(r2)) list(conditional = unname(r2$R2_conditional),
                                 marginal = unname(r2$R2_marginal)) else NULL
  out
}
.inf_pb <- function(large, small, data, nsim, seed) {
  m1 <- .inf_fit(large, data, FALSE); m0 <- .inf_fit(small, data, FALSE)
  pb <- suppressWarnings(PBmodcomp(m1, m0, nsim = nsim, seed = seed))
  t <- pb$test
  list(lrt_stat = t["LRT", "stat"], lrt_df = t["LRT", "df"], lrt_p = t["LRT", "p.value"],
       pb_p = t["PBtest", "p.value"], nsim = nsim, n_used = length(pb$ref),
       n_positive = sum(pb$ref > 0), n_tiny = sum(pb$ref > 0 & pb$ref < 1e-6),
       n_extreme = sum(pb$ref > t["LRT", "stat"]), text = .inf_txt(pb))
}
# population predictions X β with their standard errors sqrt(x' V(β) x), through emmeans
.inf_popse <- function(formula, data, var, at) {
  m <- .inf_fit(formula, data, TRUE)
  e <- summary(emmeans(m, as.formula(paste("~", var)), at = setNames(list(at), var),
                       lmer.df = "satterthwaite"))
  list(at = at, fit = e$emmean, se = e$SE, df = e$df, lower = e$lower.CL, upper = e$upper.CL)
}
"""

# id, data set, formula, REML, factors for emmeans
MODELS = [
    ("sleep_slope", "sleep", "Reaction ~ Days + (Days | Subject)", True, []),
    ("sleep_slope_ML", "sleep", "Reaction ~ Days + (Days | Subject)", False, []),
    ("sleep_uncorr", "sleep", "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", True, []),
    ("sleep_phase", "sleep", "Reaction ~ Days * phase + (Days | Subject)", True, ["phase"]),
    ("cake_interaction", "cake", "angle ~ recipe * temperature + (1 | recipe:replicate)", True,
     ["recipe", "temperature"]),
    ("cake_crossed", "cake", "angle ~ recipe + temperature + (1 | replicate) + (1 | recipe:replicate)",
     True, ["recipe"]),
    ("penicillin", "Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", True, []),
    ("pastes_nested", "Pastes", "strength ~ 1 + (1 | batch/cask)", True, []),
    ("clinics_nested", "clinics_nested", "y ~ x + region + (1 | region:clinic)", True, ["region"]),
    ("clinics_crossed", "clinics_crossed", "y ~ x + (1 | clinic) + (1 | doctor)", True, []),
]

# id, data set, large, small, nsim, seed
PBMODCOMP = [
    ("pastes_batch", "Pastes", "strength ~ 1 + (1 | batch) + (1 | batch:cask)",
     "strength ~ 1 + (1 | batch:cask)", 1000, 20261201),
    ("clinics_doctor", "clinics_crossed", "y ~ x + (1 | clinic) + (1 | doctor)",
     "y ~ x + (1 | clinic)", 1000, 20261202),
    ("sleep_slope", "sleep", "Reaction ~ Days + (Days | Subject)",
     "Reaction ~ Days + (1 | Subject)", 200, 20261203),
]

# id, data set, formula, covariate, values: emmeans's mean and SE at those covariate values
# (the population prediction and its standard error)
POPULATION_SE = [
    ("sleep_slope", "sleep", "Reaction ~ Days + (Days | Subject)", "Days", [0.0, 2.5, 4.5, 9.0, 12.0]),
    ("clinics_crossed", "clinics_crossed", "y ~ x + (1 | clinic) + (1 | doctor)", "x",
     [0.0, 5.0, 10.0]),
]


def load_data():
    """The data sets by name, exactly as the tests load them."""
    from design_data import load_golden
    from lmmlite import load
    data = {name: load_golden(name) for name in ("sleep", "cake", "Penicillin", "Pastes")}
    for name in ("clinics_nested", "clinics_crossed"):
        d = load(name)
        for c in d.columns:
            if c in ("clinic", "doctor", "region", "clinic_id"):
                d[c] = pd.Categorical(d[c].astype(str),
                                      categories=sorted(d[c].astype(str).unique(), key=_natural))
        data[name] = d
    return data


def _texts(d):
    """Unwrap every length-1 ``text`` entry of the nested result to a string."""
    if isinstance(d, dict):
        for k, v in d.items():
            if k == "text" and isinstance(v, list) and len(v) == 1:
                d[k] = v[0]
            else:
                _texts(v)
    return d


def _natural(s):
    return (len(s), s)


def r_session():
    """rpy2's robjects with lme4 and this script's R helpers (and r_design_ref's) defined."""
    from r_design_ref import r_session as design_session
    ro = design_session()
    ro.r(_R_INFER)
    return ro


def model_entry(ro, data, spec):
    """The JSON entry of one model of MODELS."""
    from r_design_ref import _one, _py, to_r
    key, dname, formula, REML, emm = spec
    res = _py(ro.r[".inf_model"](formula, to_r(data[dname]), REML, ro.StrVector(emm)))
    _one(_texts(res), "sigma")
    return dict(id=key, data=dname, formula=formula, REML=REML, emmeans=emm, **res)


def pb_entry(ro, data, spec):
    """The JSON entry of one comparison of PBMODCOMP."""
    from r_design_ref import _one, _py, to_r
    key, dname, large, small, nsim, seed = spec
    res = _py(ro.r[".inf_pb"](large, small, to_r(data[dname]), nsim, seed))
    _one(res, *res.keys())
    return dict(id=key, data=dname, large=large, small=small, seed=seed, **res)


def popse_entry(ro, data, spec):
    """The JSON entry of one case of POPULATION_SE."""
    from r_design_ref import _py, to_r
    key, dname, formula, var, at = spec
    res = _py(ro.r[".inf_popse"](formula, to_r(data[dname]), var, ro.FloatVector(at)))
    return dict(id=key, data=dname, formula=formula, var=var, **res)


def main():
    from r_design_ref import _dumps
    ro = r_session()
    data = load_data()
    v = ro.r('sapply(c("lme4", "lmerTest", "pbkrtest", "emmeans", "performance"), '
             'function(p) as.character(packageVersion(p)))')
    ref = {"about": dict(script="tests/r_infer_ref.py", date=_dt.date.today().isoformat(),
                         versions=dict(zip(list(v.names), [str(x) for x in v])),
                         control="as tests/r_design_ref.py (.dref_ctl: nloptwrap at tight "
                                 "tolerances, then Newton steps)")}
    ref["models"] = []
    for spec in MODELS:
        print(spec[0], flush=True)
        ref["models"].append(model_entry(ro, data, spec))
    ref["pbmodcomp"] = []
    for spec in PBMODCOMP:
        print("PBmodcomp", spec[0], flush=True)
        ref["pbmodcomp"].append(pb_entry(ro, data, spec))
    print("population predictions", flush=True)
    ref["population_se"] = [popse_entry(ro, data, spec) for spec in POPULATION_SE]
    OUT.write_text(_dumps(ref))
    print(f"wrote {OUT.relative_to(HERE.parent)}")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
