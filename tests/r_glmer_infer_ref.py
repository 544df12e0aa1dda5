#!/usr/bin/env python
"""R's golden values for glmer's profile intervals, written to tests/golden/glmer_infer_ref.json.

    ./.venv/bin/python tests/r_glmer_infer_ref.py [key ...]

Needs R with lme4 and jsonlite, and rpy2. It reuses the data and the tight fits
of ``tests/r_glmer_ref.py`` (the CSVs under ``tests/golden/data/`` and its
``.gref_fit``) and records, for each model of ``PROFILED``:

* ``confint(fit, method = "profile")`` at levels 0.95 and 0.90 and
  ``confint(fit, method = "Wald")``;
* the profile itself, ``as.data.frame(profile(fit))``: for each parameter the
  values where lme4 evaluated the signed root deviance ζ and ζ there.  lme4's
  intervals interpolate these points with a spline (``backSpline`` of
  ``interpSpline``); the points themselves carry no interpolation error, so
  the tests compare lmmlite's ζ with them directly;
* for the models of ``SIMULATED``, the shape and type of ``simulate()``'s
  result (a matrix column per simulation for a ``cbind`` response, a factor
  for a factor response, proportions for a proportion with weights).

The profiles are of the tight fits (so the base deviance is lme4's optimum)
with ``optimizer = "nloptwrap"`` at the fit's tight tolerances (xtol_abs
1e-12, ftol_abs 1e-14).  lme4's profile evaluates the deviance through
``getME(fit, "devfun")``, which runs PIRLS at ``glmerControl()``'s default
``tolPwrss = 1e-7`` whatever the fit's control; that leaves errors of up to
~3e-4 in ζ (cbpp: at period2 = -0.1705 that devfun gives 191.78058, the fit's
own tight devfun 191.77902).  So the reference ``profile`` is computed with
that default set to 1e-12 (lme4's code, tighter PIRLS), and lme4's stock
profile of the same fit is kept as ``profile_stock``.  lme4's default
profile of a default glmer fit (Nelder-Mead at its default tolerances) is
recorded for cbpp as ``default_profile``.  With keys on the command
line only those models are recomputed (the others are kept from the file);
the file is written after each model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from r_glmer_ref import DATA_DIR, GOLDEN, MODELS, R_DATA, R_FIT

OUT = GOLDEN / "glmer_infer_ref.json"

# the cbind binomial, a Poisson with an offset, a binary model with crossed terms,
# an nAGQ > 1 fit, and a binary model with a random slope (a correlation parameter)
PROFILED = ["cbpp_logit", "counts_offset", "crossed", "cbpp_agq9", "contra_slope"]

R_PROFILE = r"""
.ginf_ci <- function(ci) list(rows = rownames(ci), lower = unname(ci[, 1]), upper = unname(ci[, 2]))
# lme4's profile evaluates the deviance through getME(fit, "devfun"), which builds its PIRLS
# with glmerControl()'s default tolPwrss = 1e-7 whatever the fit's control; run with that
# default set to 1e-12 (lme4's own code, tighter PIRLS) when tight = TRUE
.ginf_pirls_default <- function(tol) {
  ns <- asNamespace("lme4")
  if (!exists(".ginf_orig_ctl", envir = globalenv()))
    assign(".ginf_orig_ctl", get("glmerControl", ns), envir = globalenv())
  orig <- get(".ginf_orig_ctl", envir = globalenv())
  ctl <- if (is.null(tol)) orig else {
    env <- new.env(parent = environment(orig))
    env$tol <- tol
    env$orig <- orig
    f <- function(...) { a <- list(...); if (is.null(a$tolPwrss)) a$tolPwrss <- tol; do.call(orig, a) }
    environment(f) <- env
    f
  }
  unlockBinding("glmerControl", ns)
  assign("glmerControl", ctl, envir = ns)
  lockBinding("glmerControl", ns)
}
.ginf_profile <- function(fit, tight) {
  .ginf_pirls_default(if (tight) 1e-12 else NULL)
  on.exit(.ginf_pirls_default(NULL))
  notes <- character(0)
  t0 <- proc.time()[["elapsed"]]
  pr <- withCallingHandlers(profile(fit, optimizer = "nloptwrap"),
    warning = function(w) { notes <<- c(notes, conditionMessage(w)); invokeRestart("muffleWarning") })
  list(pr = pr, notes = unique(notes), seconds = proc.time()[["elapsed"]] - t0)
}
.ginf_one <- function(key, data, formula, family, nAGQ, weights, offset, default = FALSE,
                      stock = TRUE) {
  assign(data, .gref_read(data), envir = globalenv())
  fit <- .gref_fit(data, formula, family, nAGQ, weights, offset)$fit
  tight <- .ginf_profile(fit, TRUE)
  stock <- if (stock) .ginf_profile(fit, FALSE) else list(pr = tight$pr, notes = NULL)
  d <- as.data.frame(tight$pr)
  pars <- levels(d$.par)
  points <- lapply(setNames(pars, pars), function(p) {
    s <- d[d$.par == p, ]
    list(value = s[[p]], zeta = s$.zeta)
  })
  out <- list(key = key, loglik = as.numeric(logLik(fit)), fixef = unname(fixef(fit)),
              theta = unname(getME(fit, "theta")),
              profile = .ginf_ci(confint(tight$pr)),
              profile90 = .ginf_ci(confint(tight$pr, level = 0.9)),
              profile_stock = .ginf_ci(confint(stock$pr)),
              wald = .ginf_ci(confint(fit, method = "Wald")),
              points = points, notes = tight$notes, notes_stock = stock$notes,
              seconds = tight$seconds)
  if (default) {
    f0 <- .gref_fit(data, formula, family, nAGQ, weights, offset, tight = FALSE)$fit
    out$default_profile <- .ginf_ci(suppressMessages(confint(f0)))
  }
  out
}
# the shape and type of simulate()'s result for each response form
.ginf_sim <- function(key, data, formula, family, nAGQ, weights, offset) {
  assign(data, .gref_read(data), envir = globalenv())
  fit <- .gref_fit(data, formula, family, nAGQ, weights, offset)$fit
  s <- simulate(fit, nsim = 2, seed = 1)
  col <- s[[1]]
  wts <- weights(fit)
  list(key = key, names = names(s), nrow = nrow(s), class = class(col)[1],
       storage = storage.mode(col), dim = if (is.null(dim(col))) NULL else dim(col),
       colnames = if (is.matrix(col)) colnames(col) else NULL,
       levels = if (is.factor(col)) levels(col) else NULL,
       rowsum_is_weight = if (is.matrix(col)) isTRUE(all.equal(unname(rowSums(col)), unname(wts))) else NULL,
       prop_times_weight_integer = if (is.numeric(col) && !is.matrix(col))
         isTRUE(all.equal(col * wts, round(col * wts))) else NULL)
}
"""

SIMULATED = ["cbpp_logit", "cbpp_prop_weights", "contra_factor", "contra_logical", "contra_slope",
             "counts_offset"]


def main(keys):
    import rpy2.robjects as ro
    ro.r(R_DATA)
    ro.r(f'.gref_dir <- "{DATA_DIR}"')
    ro.r(R_FIT)
    ro.r(R_PROFILE)
    versions = {"R": ro.r("R.version.string")[0],
                "lme4": ro.r('as.character(packageVersion("lme4"))')[0]}
    old = json.loads(OUT.read_text()) if OUT.exists() else {}
    models = old.get("models", {})
    sims = {}
    for key in SIMULATED:
        data, formula, family, nagq, weights, offset = MODELS[key]
        args = ", ".join(json.dumps(a) for a in (key, data, formula, family)) + \
            f", {nagq}L, {json.dumps(weights)}, {json.dumps(offset)}"
        sims[key] = json.loads(ro.r(f"jsonlite::toJSON(.ginf_sim({args}), digits = NA, "
                                    "auto_unbox = TRUE, null = 'null')")[0])
    for key in PROFILED:
        if keys and key not in keys:
            continue
        data, formula, family, nagq, weights, offset = MODELS[key]
        args = ", ".join(json.dumps(a) for a in (key, data, formula, family)) + \
            f", {nagq}L, {json.dumps(weights)}, {json.dumps(offset)}, " \
            f"default = {'TRUE' if key == 'cbpp_logit' else 'FALSE'}"
        text = ro.r(f"jsonlite::toJSON(.ginf_one({args}), digits = NA, auto_unbox = TRUE)")[0]
        models[key] = json.loads(text)
        print(key, f"{models[key]['seconds']:.1f} s", flush=True)
        # written after each model: the slow profiles can be run one at a time
        ordered = {k: models[k] for k in PROFILED if k in models}
        OUT.write_text(json.dumps({"versions": versions, "models": ordered,
                                   "simulate": sims}, indent=1) + "\n")
    ordered = {k: models[k] for k in PROFILED if k in models}
    OUT.write_text(json.dumps({"versions": versions, "models": ordered, "simulate": sims},
                              indent=1) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main(sys.argv[1:])
