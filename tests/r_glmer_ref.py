#!/usr/bin/env python
"""R's golden values for glmer (issue 15), written to tests/golden/glmer_ref.json.

    ./.venv/bin/python tests/r_glmer_ref.py

Needs R with lme4 and jsonlite, and rpy2. It

1. exports the data: lme4's ``cbpp`` and ``grouseticks``, and three data sets
   simulated in R with ``set.seed`` (``contra``: a binary outcome of women in
   districts, shaped like mlmRev's Contraception, which Debian does not package;
   ``counts``: Poisson counts with an exposure; ``crossed``: a binary outcome of
   subjects crossed with items) to CSV files under ``tests/golden/data/``
   (``glmer_<name>.csv``); the JSON's ``data`` entry records each factor
   column's levels;
2. reads those CSVs back in R and fits every model of ``MODELS`` with lme4's
   ``glmer`` at tight tolerances (NLopt BOBYQA then Newton steps, in both stages,
   ``tolPwrss = 1e-12``), so the stored numbers are lme4's optimum and not its
   default early stop, and records θ, fixef, vcov (lme4's default: from the
   finite-difference Hessian over (θ, β)), logLik, AIC, BIC, ``deviance()``,
   df.resid, the printed ``summary()`` (without its "Control:" line, which
   names the tight control object) and ``print()``, ranef with conditional SDs, fitted values,
   deviance/Pearson/response residuals, predictions on new rows and Wald
   intervals; and lme4's *default* fit's logLik and fixef for comparison;
3. an ``anova()`` of two nested cbpp fits.

The tests (``tests/test_glmer_ref.py``) read the JSON and the CSVs and need no R.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
DATA_DIR = GOLDEN / "data"
OUT = GOLDEN / "glmer_ref.json"

# key: (data, formula, family expression, nAGQ, weights column, offset column)
MODELS = {
    "cbpp_logit": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                   "binomial", 1, "", ""),
    "cbpp_prop_weights": ("cbpp", "prop ~ period + (1 | herd)", "binomial", 1, "size", ""),
    "cbpp_probit": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                    "binomial(link = \"probit\")", 1, "", ""),
    "cbpp_cloglog": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                     "binomial(link = \"cloglog\")", 1, "", ""),
    "cbpp_null": ("cbpp", "cbind(incidence, size - incidence) ~ 1 + (1 | herd)",
                  "binomial", 1, "", ""),
    "cbpp_agq9": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                  "binomial", 9, "", ""),
    "cbpp_olre": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | obs)",
                  "binomial", 1, "", ""),
    "cbpp_agq0": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                  "binomial", 0, "", ""),
    "grouse_nested": ("grouse", "TICKS ~ YEAR + cHEIGHT + (1 | LOCATION/BROOD)",
                      "poisson", 1, "", ""),
    "grouse_olre": ("grouse", "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
                    "poisson", 1, "", ""),
    "contra_factor": ("contra", "use ~ age + I(age^2) + urban + livch + (1 | district)",
                      "binomial", 1, "", ""),
    "contra_slope": ("contra", "use01 ~ age + urban + (urban | district)", "binomial", 1, "", ""),
    "contra_logical": ("contra", "uselgl ~ age + urban + (1 | district)",
                       "binomial(link = \"probit\")", 1, "", ""),
    "counts_offset": ("counts", "y ~ x + offset(log(expo)) + (1 | g)", "poisson", 1, "", ""),
    "counts_offset_arg": ("counts", "y ~ x + (1 | g)", "poisson", 1, "", "logexpo"),
    "counts_agq5": ("counts", "y ~ x + offset(log(expo)) + (1 | g)", "poisson", 5, "", ""),
    "crossed": ("crossed", "y ~ trt + (1 | subj) + (1 | item)", "binomial", 1, "", ""),
}

R_DATA = r"""
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
options(useFancyQuotes = FALSE)
cbpp <- lme4::cbpp
cbpp$prop <- cbpp$incidence / cbpp$size
cbpp$obs <- factor(seq_len(nrow(cbpp)))
grouse <- lme4::grouseticks
# a Contraception-like data set: 60 districts, women aged -14 .. 19 (centred), urban or
# rural, number of living children
set.seed(15001)
nd <- 60; nw <- sample(8:50, nd, replace = TRUE)
district <- factor(rep(seq_len(nd), nw))
n <- length(district)
age <- round(runif(n, -14, 19), 2)
urban <- factor(ifelse(runif(n) < 0.3, "Y", "N"), levels = c("N", "Y"))
livch <- factor(sample(c("0", "1", "2", "3+"), n, replace = TRUE, prob = c(.27, .18, .18, .37)))
b0 <- rnorm(nd, sd = 0.5); b1 <- rnorm(nd, sd = 0.6)
eta <- -1.2 + 0.01 * age - 0.005 * age^2 + 0.7 * (urban == "Y") +
  c(0, 0.8, 0.9, 0.8)[as.integer(livch)] + b0[district] + b1[district] * (urban == "Y")
use01 <- rbinom(n, 1, plogis(eta))
contra <- data.frame(district, age, urban, livch, use01,
                     use = factor(ifelse(use01 == 1, "Y", "N"), levels = c("N", "Y")),
                     uselgl = use01 == 1)
# Poisson counts with an exposure, 30 groups of 6
set.seed(15002)
g <- factor(rep(sprintf("g%02d", 1:30), each = 6))
x <- round(rnorm(180), 3)
expo <- round(runif(180, 0.5, 4), 2)
u <- rnorm(30, sd = 0.4)
counts <- data.frame(g, x, expo, logexpo = log(expo),
                     y = rpois(180, expo * exp(0.3 + 0.5 * x + u[g])))
# binary outcome, 40 subjects crossed with 12 items
set.seed(15003)
crossed <- expand.grid(item = factor(sprintf("i%02d", 1:12)), subj = factor(sprintf("s%02d", 1:40)))
crossed$trt <- factor(ifelse(as.integer(crossed$subj) %% 2 == 0, "B", "A"))
es <- rnorm(40, sd = 0.8); ei <- rnorm(12, sd = 0.5)
crossed$y <- rbinom(nrow(crossed), 1,
                    plogis(-0.3 + 0.6 * (crossed$trt == "B") + es[crossed$subj] + ei[crossed$item]))
.gref_data <- list(cbpp = cbpp, grouse = grouse, contra = contra, counts = counts, crossed = crossed)
"""

R_FIT = r"""
# stage 2 at tight tolerances: NLopt's BOBYQA (xtol_abs 1e-12, ftol_abs 1e-14), then Newton
# steps on the free parameters with central differences (step 1e-4), as tests/r_design_ref.py
.gref_newton <- function(fn, par, lower, upper, control = list(), ...) {
  opt <- nloptwrap(par, fn, lower, upper, control = control)
  x <- opt$par
  free <- which(!(is.finite(lower) & x - lower < 1e-3))
  at <- function(i, h, j = NULL, k = 0) { y <- x; y[i] <- y[i] + h; if (!is.null(j)) y[j] <- y[j] + k; fn(y) }
  for (iter in 1:6) {
    if (!length(free)) break
    g <- sapply(free, function(i) (at(i, 1e-5) - at(i, -1e-5)) / 2e-5)
    h <- 1e-4
    H <- outer(seq_along(free), seq_along(free), Vectorize(function(a, b) {
      i <- free[a]; j <- free[b]
      (at(i, h, j, h) - at(i, h, j, -h) - at(i, -h, j, h) + at(i, -h, j, -h)) / (4 * h^2)
    }))
    step <- -solve(H, g)
    y <- x; y[free] <- y[free] + step
    if (any(y < lower) || fn(y) > fn(x) + 1e-9) break
    x <- y
    if (max(abs(step)) < 1e-10) break
  }
  fval <- fn(x)
  list(par = x, fval = fval, feval = opt$feval, conv = 0L,
       message = sprintf("nloptwrap + Newton; moved %.2e", max(abs(x - opt$par))))
}
.gref_ctl <- glmerControl(optimizer = ".gref_newton", tolPwrss = 1e-12,
                          optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, xtol_rel = 0,
                                         ftol_rel = 0, maxeval = 1e5))
.gref_read <- function(name) {
  d <- read.csv(file.path(.gref_dir, paste0("glmer_", name, ".csv")))
  orig <- .gref_data[[name]]
  for (v in names(orig)) if (is.factor(orig[[v]])) d[[v]] <- factor(d[[v]], levels = levels(orig[[v]]))
  d
}
.gref_fit <- function(data, formula, family, nAGQ, weights, offset, tight = TRUE) {
  call <- sprintf("glmer(%s, data = %s, family = %s, nAGQ = %d%s%s%s)", formula, data, family, nAGQ,
                  if (nzchar(weights)) paste0(", weights = ", weights) else "",
                  if (nzchar(offset)) paste0(", offset = ", offset) else "",
                  if (tight) ", control = .gref_ctl" else "")
  notes <- character(0)
  fit <- withCallingHandlers(eval(parse(text = call)),
    warning = function(w) { notes <<- c(notes, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(m) { notes <<- c(notes, conditionMessage(m)); invokeRestart("muffleMessage") })
  list(fit = fit, notes = notes)
}
.gref_one <- function(key, data, formula, family, nAGQ, weights, offset) {
  assign(data, .gref_read(data), envir = globalenv())
  r <- .gref_fit(data, formula, family, nAGQ, weights, offset)
  fit <- r$fit
  s <- capture.output(print(summary(fit)))
  s <- s[!grepl("^Control:", s)]
  re <- as.data.frame(ranef(fit, condVar = TRUE))
  d <- get(data, envir = globalenv())
  newd <- d[c(1, 2, 3, nrow(d)), , drop = FALSE]
  ci <- confint(fit, method = "Wald")
  default <- .gref_fit(data, formula, family, nAGQ, weights, offset, tight = FALSE)
  list(key = key, data = data, formula = formula, family = family, nAGQ = nAGQ,
       weights = weights, offset = offset,
       theta = unname(getME(fit, "theta")), fixef = as.list(fixef(fit)),
       vcov = unname(as.matrix(vcov(fit))),
       vcov_rx = unname(as.matrix(vcov(fit, use.hessian = FALSE))),
       loglik = as.numeric(logLik(fit)), aic = AIC(fit), bic = BIC(fit),
       deviance = deviance(fit), df_resid = df.residual(fit), nobs = nobs(fit),
       summary = paste(s, collapse = "\n"), notes = r$notes,
       printed = paste(capture.output(print(fit)), collapse = "\n"),
       ranef = list(grpvar = as.character(re$grpvar), term = as.character(re$term),
                    grp = as.character(re$grp), condval = re$condval, condsd = re$condsd),
       fitted = unname(fitted(fit)),
       resid_deviance = unname(residuals(fit, type = "deviance")),
       resid_pearson = unname(residuals(fit, type = "pearson")),
       resid_response = unname(residuals(fit, type = "response")),
       newdata_rows = c(1, 2, 3, nrow(d)),
       pred_link = unname(predict(fit, newdata = newd)),
       pred_response = unname(predict(fit, newdata = newd, type = "response")),
       pred_fixed = unname(predict(fit, newdata = newd, re.form = NA, type = "response")),
       wald = list(rows = rownames(ci), lower = unname(ci[, 1]), upper = unname(ci[, 2])),
       default_loglik = as.numeric(logLik(default$fit)),
       default_fixef = unname(fixef(default$fit)), default_notes = default$notes)
}
"""


def export_data(ro):
    """Write each data set to tests/golden/data/glmer_<name>.csv; factor levels per column."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    levels = {}
    for name in ro.r("names(.gref_data)"):
        path = DATA_DIR / f"glmer_{name}.csv"
        ro.r(f'write.csv(.gref_data[["{name}"]], "{path}", row.names = FALSE)')
        lv = ro.r(f'lapply(Filter(is.factor, .gref_data[["{name}"]]), levels)')
        levels[name] = {k: list(lv.rx2(k)) for k in lv.names} if len(lv) else {}
    return levels


def main():
    import rpy2.robjects as ro
    ro.r(R_DATA)
    levels = export_data(ro)
    ro.r(f'.gref_dir <- "{DATA_DIR}"')
    ro.r(R_FIT)
    models = {}
    for key, (data, formula, family, nagq, weights, offset) in MODELS.items():
        args = ", ".join(json.dumps(a) for a in (key, data, formula, family)) + \
            f", {nagq}L, {json.dumps(weights)}, {json.dumps(offset)}"
        text = ro.r(f"jsonlite::toJSON(.gref_one({args}), digits = NA, auto_unbox = TRUE)")[0]
        models[key] = json.loads(text)
        print(key, models[key]["loglik"], models[key]["default_loglik"])
    anova_text = ro.r("""
      m0 <- .gref_fit("cbpp", "cbind(incidence, size - incidence) ~ 1 + (1 | herd)", "binomial", 1L, "", "")$fit
      m1 <- .gref_fit("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", 1L, "", "")$fit
      a <- anova(m0, m1)
      jsonlite::toJSON(list(text = paste(capture.output(print(a)), collapse = "\n"),
                            chisq = a$Chisq[2], df = a$Df[2], p = a[["Pr(>Chisq)"]][2]),
                       digits = NA, auto_unbox = TRUE)""")[0]
    versions = {"R": ro.r("R.version.string")[0],
                "lme4": ro.r('as.character(packageVersion("lme4"))')[0]}
    ref = {"versions": versions, "data": levels, "models": models,
           "anova_cbpp": json.loads(anova_text)}
    OUT.write_text(json.dumps(ref, indent=1) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
