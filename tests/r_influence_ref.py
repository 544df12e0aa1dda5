#!/usr/bin/env python
"""lme4's leverage and influence values (issue 13), written to tests/golden/influence_ref.json.

    ./.venv/bin/python tests/r_influence_ref.py

Needs R with lme4 (1.1-31 was used) and rpy2 (the ``r`` extra).  The data are the
CSV files of tests/golden/data/ (written by tests/r_design_ref.py: lme4's
Penicillin and Pastes, lmmlite's sleepstudy with its prior-weight column ``w``),
read with ``design_data.load_golden`` and sent to R as they are.  For every model
of ``MODELS`` it records

* ``hatvalues(fit)`` and ``cooks.distance(fit)`` (lme4's merMod methods);
* ``influence(fit)`` (case deletion) and ``influence(fit, groups = g)`` (group
  deletion): the deleted units, the fixed effects and variance components
  with each deletion, every deleted fit's ``vcov``, ``converged``, and the
  ``cooks.distance`` and ``dfbetas`` of the influence object.

lme4's ``influence.merMod`` refits with ``lmerControl(optCtrl = list(maxfun =
maxfun))`` and so stops where lme4's default BOBYQA stops (about 1e-5 short of
the optimum in relative terms).  The stored values are lme4's own
``influence.merMod`` with that one call replaced by the tight control of
r_design_ref.py (BOBYQA at tolerances 1e-12/1e-14, then Newton steps): the
exact optimum of every deleted fit.  The largest relative difference between
the default run and the tight one is recorded under ``default_vs_tight``.

The tests (``tests/test_influence_ref.py``) read the JSON and the CSVs and need no R.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "golden" / "influence_ref.json"

# id, data set, formula, weights column ("" for none), grouping column for group deletion
MODELS = [
    ("sleep_slope", "sleep", "Reaction ~ Days + (Days | Subject)", "", "Subject"),
    ("penicillin_crossed", "Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", "", "plate"),
    ("pastes_nested", "Pastes", "strength ~ 1 + (1 | batch/cask)", "", "batch"),
    ("sleep_weights", "sleep", "Reaction ~ Days + (Days | Subject)", "w", "Subject"),
]

_R_INFLUENCE = r"""
# lme4's influence.merMod, its refits at the tight control instead of maxfun = 1000
.iref_tight <- local({
  f <- lme4:::influence.merMod
  env <- new.env(parent = environment(f))
  env$lmerControl <- function(...) .dref_ctl
  environment(f) <- env
  f
})
.iref_infl <- function(infl) {
  fx <- infl[[2]]; vc <- infl[[4]]
  list(deleted = as.character(infl$deleted),
       fixed = lapply(seq_len(nrow(fx)), function(i) unname(fx[i, ])),
       vc_names = colnames(vc),
       vc = lapply(seq_len(nrow(vc)), function(i) unname(vc[i, ])),
       vcov = lapply(infl[[6]], function(v) lapply(seq_len(nrow(v)), function(i) unname(v[i, ]))),
       converged = unname(infl$converged),
       cooks = unname(cooks.distance(infl)),
       # lme4 1.1-31's dfbetas fails for a single fixed effect (a vapply result transposed)
       dfbetas = tryCatch({db <- dfbetas(infl); lapply(seq_len(nrow(db)), function(i) unname(db[i, ]))},
                          error = function(e) NULL))
}
.iref_gap <- function(a, b) {
  rel <- function(x, y) max(abs(x - y) / pmax(abs(y), 1e-8))
  c(fixed = rel(a[[2]], b[[2]]), var_cov = rel(a[[4]], b[[4]]))
}
.iref_model <- function(formula, data, weights, groups) {
  cl <- bquote(lme4::lmer(.(as.formula(formula)), data = data, control = .dref_ctl))
  if (nzchar(weights)) cl$weights <- as.name(weights)
  m <- eval(cl)
  case <- .iref_tight(m)
  grp <- .iref_tight(m, groups = groups)
  case0 <- suppressWarnings(influence(m))
  grp0 <- suppressWarnings(influence(m, groups = groups))
  list(theta = unname(getME(m, "theta")), fixef = unname(fixef(m)), fixef_names = names(fixef(m)),
       sigma = sigma(m), vcov = lapply(1:nrow(vcov(m)), function(i) unname(as.matrix(vcov(m))[i, ])),
       var_cov_comps = unname(case[[3]]), var_cov_names = names(case[[3]]),
       hat = unname(hatvalues(m)), cooks_fit = unname(cooks.distance(m)),
       pearson = unname(residuals(m, type = "pearson")),
       case = .iref_infl(case), group = .iref_infl(grp),
       default_vs_tight = list(case = as.list(.iref_gap(case0, case)),
                               group = as.list(.iref_gap(grp0, grp))))
}
# the live cross-check of the tests: one model's leverages and group deletion only
.iref_live <- function(formula, data, weights, groups) {
  cl <- bquote(lme4::lmer(.(as.formula(formula)), data = data, control = .dref_ctl))
  if (nzchar(weights)) cl$weights <- as.name(weights)
  m <- eval(cl)
  list(hat = unname(hatvalues(m)), cooks_fit = unname(cooks.distance(m)),
       group = .iref_infl(.iref_tight(m, groups = groups)))
}
"""


def main():
    from design_data import load_golden
    from r_design_ref import _dumps, _one, _py, _versions, r_session, to_r
    ro = r_session()
    ro.r(_R_INFLUENCE)
    out = {"about": dict(script="tests/r_influence_ref.py", date=_dt.date.today().isoformat(),
                         versions=_versions(ro),
                         control="lme4:::influence.merMod with lmerControl() replaced by "
                                 "r_design_ref.py's .dref_ctl (nloptwrap at xtol_abs 1e-12, "
                                 "ftol_abs 1e-14, then Newton steps)"),
           "models": []}
    for key, dname, formula, weights, groups in MODELS:
        res = _py(ro.r[".iref_model"](formula, to_r(load_golden(dname)), weights, groups))
        _one(res, "sigma")
        for part in ("case", "group"):
            res["default_vs_tight"][part] = {k: v[0] for k, v in res["default_vs_tight"][part].items()}
        out["models"].append(dict(id=key, data=dname, formula=formula, weights=weights,
                                  groups=groups, **res))
        gap = res["default_vs_tight"]
        print(f"  {key}: {len(res['hat'])} rows, {len(res['group']['deleted'])} groups; "
              f"lme4 default vs tight (max rel): case {gap['case']}, group {gap['group']}")
    OUT.write_text(_dumps(out))
    print(f"wrote {OUT.relative_to(HERE.parent)}")


if __name__ == "__main__":
    import sys
    sys.path.insert(0, str(HERE))
    main()
