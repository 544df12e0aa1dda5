#!/usr/bin/env python
"""R's golden values for the design stage (issue 10), written to tests/golden/design_ref.json.

    ./.venv/bin/python tests/r_design_ref.py

Needs R with lme4 and rpy2 (the ``r`` extra). It

1. exports the data sets (R's mtcars, warpbreaks, ToothGrowth, airquality,
   lme4's cake, Penicillin, Pastes, Dyestuff, a simulated Part x Operator
   study, and lmmlite's own ``load("sleepstudy")`` with a few derived columns)
   and the new-data frames used for ``predict`` to small CSV files under
   ``tests/golden/data/``; the JSON's ``data`` table records each file and, for
   every factor column, its levels and orderedness (``design_data.load_golden``
   rebuilds them);
2. sends exactly those data (read back from the CSVs) to R and records

   a. ``model.matrix``: column names, values, rows kept, ``assign`` and the
      formula's deparse for every formula of ``MODEL_MATRIX``;
   b. ``lmer`` fits at tight tolerances (the exact optimum, not lme4's default
      stop): θ, fixef, REML criterion or deviance, σ, logLik, the rows of
      ``as.data.frame(VarCorr())`` and ``predict`` with ``re.form`` NULL, NA and
      each partial formula, on the training data and on new data with
      ``allow.new.levels = TRUE`` (plus lme4's error without it);
   c. weighted and offset ``lmer`` and ``lm`` fits;
   d. ``predict.lm`` with confidence and prediction intervals and ``confint``;
   e. lme4's cake example.

The tests (``tests/test_design_ref.py``) read the JSON and the CSVs and need no R.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
DATA_DIR = GOLDEN / "data"
OUT = GOLDEN / "design_ref.json"

# lme4 fits converged far past lme4's default stop, so the stored numbers are the optimum
_R_SETUP = r"""
suppressPackageStartupMessages(library(lme4))
# BOBYQA (nloptwrap) at tight tolerances, then Newton steps on the free θ with central
# differences (gradient step 1e-5, Hessian step 1e-4): function values alone pin θ only to
# about 1e-7, the polished θ is good to about 1e-9, so predictions are the optimum's to 1e-8
.dref_newton <- function(fn, par, lower, upper, control = list(), ...) {
  opt <- nloptwrap(par, fn, lower, upper, control = control)
  x <- opt$par
  free <- which(!(is.finite(lower) & x - lower < 1e-3))
  at <- function(i, h, j = NULL, k = 0) { y <- x; y[i] <- y[i] + h; if (!is.null(j)) y[j] <- y[j] + k; fn(y) }
  for (iter in 1:4) {
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
    if (max(abs(step)) < 1e-11) break
  }
  fval <- fn(x)                      # leave the model's environment at the returned θ
  list(par = x, fval = fval, feval = opt$feval, conv = 0L,
       message = sprintf("nloptwrap + Newton; moved %.2e", max(abs(x - opt$par))))
}
.dref_ctl <- lmerControl(optimizer = ".dref_newton",
                         optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, xtol_rel = 0,
                                        ftol_rel = 0, maxeval = 1e5))
# evaluate an expression, collecting its warnings and messages instead of printing them
.dref_quiet <- function(expr) {
  notes <- character(0)
  value <- withCallingHandlers(expr,
    warning = function(w) { notes <<- c(notes, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(m) { notes <<- c(notes, conditionMessage(m)); invokeRestart("muffleMessage") })
  list(value = value, notes = notes)
}
.dref_reform <- function(s) if (s == "NULL") NULL else if (s == "NA") NA else as.formula(s)
"""

# ------------------------------------------------------------------ data


def _r_dataset(ro, expr):
    """An R data frame (the value of ``expr``) as pandas, factors as Categoricals."""
    ro.r(f".dref_tmp <- as.data.frame({expr}); rownames(.dref_tmp) <- NULL")
    out = {}
    for col in ro.r("names(.dref_tmp)"):
        v = ro.r(f".dref_tmp[[{json.dumps(col)}]]")
        if ro.r("is.factor")(v)[0]:
            levels = list(ro.r("levels")(v))
            codes = np.array(ro.r("as.integer")(v), dtype=float)
            vals = [None if math.isnan(c) else levels[int(c) - 1] for c in codes]
            out[col] = pd.Categorical(vals, categories=levels,
                                      ordered=bool(ro.r("is.ordered")(v)[0]))
        else:
            out[col] = np.array(list(ro.r("as.numeric")(v)), dtype=float)   # NA -> NaN
    return pd.DataFrame(out)


def _with_levels(df, col, extra):
    """``df`` with the categories ``extra`` appended to factor ``col`` (new levels)."""
    df[col] = df[col].cat.add_categories([e for e in extra if e not in df[col].cat.categories])
    return df


def _sleep():
    """lmmlite's sleepstudy, with derived columns used by the models below."""
    from lmmlite import load
    d = load("sleepstudy")
    d = d[["Reaction", "Days", "Subject"]].copy()
    d["Subject"] = pd.Categorical(d["Subject"].astype(str),
                                  categories=[str(c) for c in d["Subject"].cat.categories])
    d["Days"] = d["Days"].astype(float)
    d["Dgrp"] = np.floor(d["Days"] / 4)                       # 0, 1, 2: factor(Dgrp) in a random term
    d["phase"] = pd.Categorical(np.where(d["Days"] < 5, "early", "late"))
    d["w"] = 1 + d["Days"] / 9                                 # prior weights, 1 .. 2
    d["off"] = 3 * (d["Days"] % 3)                             # an offset, not collinear with Days
    return d


def _sleep_new(sleep):
    """New data for sleepstudy models: a subset, shifted Days, NA Days, new and NA Subjects."""
    nd = sleep.iloc[::9].copy().reset_index(drop=True)        # 20 training rows
    nd.loc[1::2, "Days"] += 0.5                               # covariates off the training grid
    nd.loc[5, "Days"] = 11.0                                  # outside the training range
    nd["Dgrp"] = np.floor(nd["Days"] / 4).clip(upper=2)
    nd.loc[7, "Days"] = np.nan                                # NA predictor -> NA prediction
    nd = _with_levels(nd, "Subject", ["999"])
    nd.loc[9, "Subject"] = "999"                              # a new subject
    nd.loc[11, "Subject"] = np.nan                            # NA group counts as new
    nd["w"] = 1 + nd["Days"].fillna(0) / 9
    nd["off"] = 3 * (nd["Days"].fillna(0) % 3)
    return nd


def _partop(ro):
    """A gauge study: 5 Parts x 5 Operators x 3 repeats, simulated with set.seed."""
    ro.r("""
      set.seed(20261201)
      .dref_po <- expand.grid(rep = 1:3, Operator = paste0("O", 1:5), Part = paste0("P", 1:5))
      pe <- rnorm(5, sd = 2); oe <- rnorm(5, sd = 1); ie <- rnorm(25, sd = 0.7)
      p <- as.integer(factor(.dref_po$Part)); o <- as.integer(factor(.dref_po$Operator))
      .dref_po$y <- round(10 + pe[p] + oe[o] + ie[(p - 1) * 5 + o] + rnorm(75, sd = 0.4), 3)
      .dref_po$rep <- NULL
    """)
    return _r_dataset(ro, ".dref_po")


def _new_rows(df, step, group=None, new_levels=(), na_col=None, shift=None):
    """Every ``step``-th row of ``df``; new levels of factor ``group`` appended as rows.

    ``new_levels`` are dicts of column -> value for rows added at the end (their other
    columns copied from the first row); ``na_col`` gets NA in the second row; ``shift``
    = (column, amount) is added to every other row.
    """
    nd = df.iloc[::step].copy().reset_index(drop=True)
    if shift is not None:
        nd.loc[1::2, shift[0]] += shift[1]
    if na_col is not None:
        nd.loc[1, na_col] = np.nan
    for row in new_levels:
        add = nd.iloc[[0]].copy()
        for col, val in row.items():
            if isinstance(add[col].dtype, pd.CategoricalDtype):
                nd = _with_levels(nd, col, [val])
                add = _with_levels(add, col, [val])
            add.loc[:, col] = val
        nd = pd.concat([nd, add], ignore_index=True)
    return nd


def build_data(ro):
    """Every data set of the golden values: name -> pandas DataFrame."""
    mtcars = _r_dataset(ro, "mtcars")
    mtcars["w"] = mtcars["cyl"] / 4                           # lm prior weights: 1, 1.5, 2
    mtcars["off"] = mtcars["disp"] / 100                      # an lm offset
    air = _r_dataset(ro, "airquality")                        # has NAs: na.omit in model.matrix
    cake = _r_dataset(ro, "lme4::cake")
    pen = _r_dataset(ro, "lme4::Penicillin")
    pen["w"] = 1 + (np.arange(len(pen)) % 4) / 4              # weights 1, 1.25, 1.5, 1.75
    pastes = _r_dataset(ro, "lme4::Pastes")
    dye = _r_dataset(ro, "lme4::Dyestuff")
    partop = _partop(ro)
    sleep = _sleep()
    data = {
        "mtcars": mtcars,
        "warpbreaks": _r_dataset(ro, "warpbreaks"),
        "ToothGrowth": _r_dataset(ro, "ToothGrowth"),
        "airquality": air,
        "cake": cake,
        "Penicillin": pen,
        "Pastes": pastes,
        "Dyestuff": dye,
        "partop": partop,
        "sleep": sleep,
        "sleep_new": _sleep_new(sleep),
        "mtcars_new": _new_rows(mtcars, 4, na_col="hp", shift=("wt", 0.25)),
        "cake_new": _new_rows(cake, 13, new_levels=[{"replicate": "16"}],
                              shift=("temp", 5.0)),
        "Penicillin_new": _new_rows(pen, 11, new_levels=[{"plate": "zz"}, {"sample": "G"},
                                                         {"plate": "zz", "sample": "G"}]),
        # a new cask within a known batch keeps the batch effect; a new batch gets none
        "Pastes_new": _new_rows(pastes, 7, new_levels=[{"batch": "A", "cask": "d"},
                                                       {"batch": "Z", "cask": "a"},
                                                       {"batch": "Z", "cask": "d"}]),
        "Dyestuff_new": _new_rows(dye, 6, new_levels=[{"Batch": "G"}]),
        "partop_new": _new_rows(partop, 8, new_levels=[{"Part": "P6"}, {"Operator": "O6"}]),
    }
    return data


def _write_csv(name, df):
    """Write ``df`` to data/<name>.csv; return its entry of the JSON's data table."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    df.to_csv(DATA_DIR / f"{name}.csv", index=False)
    factors = {c: {"levels": [str(x) for x in df[c].cat.categories],
                   "ordered": bool(df[c].cat.ordered)}
               for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)}
    return {"file": f"data/{name}.csv", "nrow": len(df), "factors": factors}


def to_r(df):
    """A pandas DataFrame as an R data.frame: Categoricals as factors (levels, ordered), NaN as NA."""
    import rpy2.robjects as ro
    cols = {}
    for c in df.columns:
        s = df[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            vals = ro.StrVector([ro.NA_Character if pd.isna(v) else str(v) for v in s])
            cols[c] = ro.r["factor"](vals, levels=ro.StrVector([str(x) for x in s.cat.categories]),
                                     ordered=bool(s.cat.ordered))
        else:
            cols[c] = ro.FloatVector([ro.NA_Real if pd.isna(v) else float(v) for v in s])
    return ro.r["data.frame"](**cols, **{"check.names": False, "stringsAsFactors": False})


# ------------------------------------------------------------------ R -> JSON


def _py(x):
    """An R value as plain Python: named lists -> dict, vectors -> lists, NA -> None."""
    import rpy2.rinterface as ri
    import rpy2.robjects as ro
    if x is ri.NULL or x is None:
        return None
    if isinstance(x, ro.vectors.ListVector) or type(x).__name__ == "ListSexpVector":
        names = list(x.names) if x.names is not ri.NULL else None
        vals = [_py(v) for v in x]
        return dict(zip(names, vals)) if names else vals
    out = []
    for v in x:
        if v is ri.NA_Character or v is ri.NA_Logical or v is ri.NA_Integer:
            out.append(None)
        elif isinstance(v, str):
            out.append(v)
        elif isinstance(v, bool):
            out.append(v)
        elif isinstance(v, int):
            out.append(int(v))
        else:
            f = float(v)
            out.append(None if math.isnan(f) else f)
    return out


def _one(d, *keys):
    """Unwrap the length-1 vectors ``keys`` of dict ``d`` to scalars."""
    for k in keys:
        if k in d and isinstance(d[k], list) and len(d[k]) == 1:
            d[k] = d[k][0]
    return d


# ------------------------------------------------------------------ a. model.matrix

_R_MODEL_MATRIX = r"""
.dref_mm <- function(formula, data, contrasts) {
  f <- as.formula(formula)
  ca <- if (length(contrasts)) as.list(contrasts) else NULL
  X <- model.matrix(f, data, contrasts.arg = ca)
  ctr <- attr(X, "contrasts")
  list(deparse = paste(deparse(f, width.cutoff = 500L), collapse = " "),
       term_labels = attr(terms(f), "term.labels"),
       colnames = colnames(X),
       assign = attr(X, "assign"),
       rows = as.integer(rownames(X)) - 1L,
       contrasts_used = if (is.null(ctr)) list() else
         lapply(ctr, function(v) if (is.character(v)) v else "matrix"),
       values = lapply(seq_len(ncol(X)), function(j) unname(X[, j])))
}
"""

# id, data set, formula, contrasts (R's contrasts.arg)
MODEL_MATRIX = [
    ("log_call_arith", "mtcars", "mpg ~ log(hp + 1)", None),
    ("log_exp_sqrt", "mtcars", "mpg ~ log(hp) + exp(wt/5) + sqrt(disp)", None),
    ("abs_sin_cos_pi", "mtcars", "mpg ~ abs(qsec - 18) + sin(2 * pi * wt) + cos(pi * drat/4)", None),
    ("nested_calls", "mtcars", "mpg ~ sqrt(abs(qsec - 18)) + exp(-wt)", None),
    ("I_calls", "mtcars", "mpg ~ I(wt^2) + I(hp/100) + I(pi * wt)", None),
    ("poly2", "mtcars", "mpg ~ poly(hp, 2)", None),
    ("poly3_raw", "mtcars", "mpg ~ poly(wt, 3, raw = TRUE)", None),
    ("scale", "mtcars", "mpg ~ scale(hp) + scale(wt)", None),
    ("factor_call", "mtcars", "mpg ~ factor(cyl)", None),
    ("as_factor_call", "mtcars", "mpg ~ as.factor(gear) + wt", None),
    ("C_sum", "warpbreaks", "breaks ~ C(tension, contr.sum)", None),
    ("C_helmert", "warpbreaks", "breaks ~ C(tension, contr.helmert)", None),
    ("C_poly", "warpbreaks", "breaks ~ C(tension, contr.poly)", None),
    ("C_treatment", "warpbreaks", "breaks ~ C(tension, contr.treatment) + wool", None),
    ("C_sum_interaction", "warpbreaks", "breaks ~ C(tension, contr.sum) * wool", None),
    ("in_operator", "warpbreaks", "breaks ~ tension %in% wool", None),
    ("in_numeric", "mtcars", "mpg ~ wt %in% factor(cyl)", None),
    ("power2_factors", "warpbreaks", "breaks ~ (wool + tension)^2", None),
    ("power3_minus", "mtcars", "mpg ~ (wt + hp + qsec)^3 - wt:hp:qsec", None),
    ("minus_term", "mtcars", "mpg ~ wt * hp - hp", None),
    ("minus_one", "mtcars", "mpg ~ wt + hp - 1", None),
    ("plus_zero_factor", "mtcars", "mpg ~ 0 + factor(cyl) + wt", None),
    ("minus_one_first", "mtcars", "mpg ~ -1 + wt", None),
    ("offset_dropped", "mtcars", "mpg ~ wt + offset(log(hp))", None),
    ("ordered_default", "cake", "angle ~ temperature", None),
    ("ordered_no_intercept", "cake", "angle ~ 0 + temperature", None),
    ("ordered_interaction", "cake", "angle ~ recipe * temperature", None),
    ("ordered_colon_only", "cake", "angle ~ recipe:temperature", None),
    ("C_treatment_ordered", "cake", "angle ~ C(temperature, contr.treatment)", None),
    ("contrasts_arg_sum", "warpbreaks", "breaks ~ wool + tension", {"wool": "contr.sum"}),
    ("contrasts_arg_mixed", "warpbreaks", "breaks ~ wool * tension",
     {"wool": "contr.sum", "tension": "contr.helmert"}),
    ("contrasts_arg_poly", "warpbreaks", "breaks ~ tension", {"tension": "contr.poly"}),
    ("contrasts_arg_ordered_treat", "cake", "angle ~ temperature + recipe",
     {"temperature": "contr.treatment"}),
    ("factor_times_minus1", "warpbreaks", "breaks ~ tension * wool - 1", None),
    ("colon_alone", "warpbreaks", "breaks ~ tension:wool", None),
    ("x_colon_f_no_main", "mtcars", "mpg ~ wt:factor(cyl)", None),
    ("f_slash_x", "mtcars", "mpg ~ factor(cyl)/wt", None),
    ("f_slash_f", "warpbreaks", "breaks ~ wool/tension", None),
    ("three_way_factors", "mtcars", "mpg ~ factor(am) * factor(vs) * factor(gear)", None),
    ("three_way_mixed", "mtcars", "mpg ~ wt * factor(am) * factor(vs)", None),
    ("numeric_times_factor", "ToothGrowth", "len ~ dose * supp", None),
    ("factor_of_numeric", "ToothGrowth", "len ~ supp + factor(dose)", None),
    ("poly_times_factor", "ToothGrowth", "len ~ poly(dose, 2) * supp", None),
    ("scale_times_factor", "mtcars", "mpg ~ scale(wt) * factor(am)", None),
    ("call_colon_factor", "mtcars", "mpg ~ log(hp + 1):factor(am)", None),
    ("numeric_colon", "mtcars", "mpg ~ wt:hp", None),
    ("na_omit_sin", "airquality", "Ozone ~ Temp + log(Solar.R) + sin(2 * pi * Day/31)", None),
    ("na_omit_factor", "airquality", "Ozone ~ factor(Month) + Wind", None),
]


def section_model_matrix(ro, data, specs=MODEL_MATRIX):
    """a. R's model.matrix for every formula of ``specs`` (default MODEL_MATRIX)."""
    ro.r(_R_MODEL_MATRIX)
    out = []
    for key, dname, formula, contrasts in specs:
        ca = ro.StrVector(list(contrasts.values())) if contrasts else ro.StrVector([])
        if contrasts:
            ca.names = ro.StrVector(list(contrasts))
        res = _one(_py(ro.r[".dref_mm"](formula, to_r(data[dname]), ca)), "deparse")
        if not res["term_labels"]:
            res["term_labels"] = []
        out.append(dict(id=key, data=dname, formula=formula, contrasts=contrasts, **res))
    return out


# ------------------------------------------------------------------ b, c, e. lmer

_R_LMER = r"""
.dref_lmer_fit <- function(formula, data, REML, weights, offset) {
  cl <- bquote(lmer(.(as.formula(formula)), data = data, REML = .(REML), control = .dref_ctl))
  if (nzchar(weights)) cl$weights <- as.name(weights)
  if (nzchar(offset)) cl$offset <- as.name(offset)
  .dref_quiet(eval(cl))
}
.dref_lmer <- function(formula, data, REML, weights, offset, newdata, reforms) {
  fit <- .dref_lmer_fit(formula, data, REML, weights, offset)
  m <- fit$value
  vc <- as.data.frame(VarCorr(m))
  pred <- function(nd, rf, allow) {
    r <- tryCatch(if (is.null(nd)) predict(m, re.form = .dref_reform(rf))
                  else predict(m, newdata = nd, re.form = .dref_reform(rf), allow.new.levels = allow),
                  error = function(e) conditionMessage(e))
    if (is.character(r)) list(error = r) else list(values = unname(r))
  }
  list(theta = unname(getME(m, "theta")),
       theta_names = names(getME(m, "theta")),
       fixef_names = names(fixef(m)), fixef = unname(fixef(m)),
       crit = if (REML) REMLcrit(m) else deviance(m),
       REMLcrit_or_deviance = if (REML) "REMLcrit" else "deviance",
       sigma = sigma(m), loglik = as.numeric(logLik(m)), nobs = nobs(m),
       vc_grp = as.character(vc$grp),
       vc_var1 = ifelse(is.na(vc$var1), "", as.character(vc$var1)),
       vc_var2 = ifelse(is.na(vc$var2), "", as.character(vc$var2)),
       vc_vcov = vc$vcov, vc_sdcor = vc$sdcor,
       flist = names(getME(m, "flist")),
       optimizer_message = m@optinfo$message,
       cnms = lapply(getME(m, "cnms"), as.character),
       cnms_grp = names(getME(m, "cnms")),
       notes = fit$notes,
       train = setNames(lapply(reforms, function(rf) pred(NULL, rf, FALSE)), reforms),
       new = setNames(lapply(reforms, function(rf) pred(newdata, rf, TRUE)), reforms),
       new_strict = pred(newdata, "NULL", FALSE))
}
"""

# the random terms' re.form strings: NULL (all), NA (none), then partial ones


def _lmer(key, data, formula, partial=(), REML=True, weights="", offset="", newdata=None):
    return dict(id=key, data=data, formula=formula, REML=REML, weights=weights, offset=offset,
                newdata=newdata or f"{data}_new", reforms=["NULL", "NA", *partial])


LMER_PREDICT = [
    _lmer("sleep_double_bar", "sleep", "Reaction ~ Days + (Days || Subject)",
          ["~(1 | Subject)", "~(0 + Days | Subject)"]),
    _lmer("sleep_two_terms_one_factor", "sleep", "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)",
          ["~(1 | Subject)", "~(0 + Days | Subject)"]),
    _lmer("sleep_corr_slope", "sleep", "Reaction ~ Days + (Days | Subject)"),
    _lmer("sleep_corr_slope_ML", "sleep", "Reaction ~ Days + (Days | Subject)", REML=False),
    _lmer("sleep_log_both", "sleep", "Reaction ~ log(Days + 1) + (log(Days + 1) | Subject)"),
    _lmer("sleep_poly_fixed", "sleep", "Reaction ~ poly(Days, 2) + (1 | Subject)"),
    _lmer("sleep_poly_random", "sleep", "Reaction ~ poly(Days, 2) + (1 | Subject) + (0 + poly(Days, 2) | Subject)",
          ["~(1 | Subject)", "~(0 + poly(Days, 2) | Subject)"]),
    _lmer("sleep_scale_both", "sleep", "Reaction ~ scale(Days) + (scale(Days) | Subject)"),
    _lmer("sleep_I_square", "sleep", "Reaction ~ Days + I(Days^2) + (1 | Subject) + (0 + I(Days^2) | Subject)",
          ["~(1 | Subject)", "~(0 + I(Days^2) | Subject)"]),
    _lmer("sleep_factor_in_random", "sleep", "Reaction ~ Days + (0 + factor(Dgrp) | Subject)"),
    _lmer("sleep_g_colon_f", "sleep", "Reaction ~ Days + phase + (1 | Subject) + (1 | Subject:phase)",
          ["~(1 | Subject)", "~(1 | Subject:phase)"]),
    _lmer("penicillin_crossed", "Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)",
          ["~(1 | plate)", "~(1 | sample)"]),
    _lmer("pastes_nested", "Pastes", "strength ~ 1 + (1 | batch/cask)",
          ["~(1 | batch)", "~(1 | cask:batch)", "~(1 | batch:cask)"]),
    _lmer("pastes_colon", "Pastes", "strength ~ 1 + (1 | batch) + (1 | batch:cask)",
          ["~(1 | batch)", "~(1 | batch:cask)"]),
    _lmer("dyestuff", "Dyestuff", "Yield ~ 1 + (1 | Batch)"),
    _lmer("cake_ordered", "cake", "angle ~ recipe * temperature + (1 | recipe:replicate)"),
    _lmer("cake_temp_numeric", "cake", "angle ~ recipe + poly(temp, 2) + (1 | replicate) + (1 | recipe:replicate)",
          ["~(1 | replicate)", "~(1 | recipe:replicate)"]),
    _lmer("partop_three_terms", "partop", "y ~ 1 + (1 | Part) + (1 | Operator) + (1 | Part:Operator)",
          ["~(1 | Part)", "~(1 | Operator)", "~(1 | Part:Operator)"]),
    _lmer("partop_two_terms", "partop", "y ~ 1 + (1 | Part) + (1 | Operator)",
          ["~(1 | Part)", "~(1 | Operator)"]),
]

WEIGHTED_LMER = [
    _lmer("sleep_weights_REML", "sleep", "Reaction ~ Days + (Days | Subject)", weights="w"),
    _lmer("sleep_weights_ML", "sleep", "Reaction ~ Days + (Days | Subject)", REML=False, weights="w"),
    _lmer("sleep_offset_arg_REML", "sleep", "Reaction ~ Days + (1 | Subject)", offset="off"),
    _lmer("sleep_offset_arg_ML", "sleep", "Reaction ~ Days + (1 | Subject)", REML=False, offset="off"),
    _lmer("sleep_offset_term_REML", "sleep", "Reaction ~ Days + offset(off) + (1 | Subject)"),
    _lmer("sleep_offset_term_ML", "sleep", "Reaction ~ Days + offset(off) + (1 | Subject)", REML=False),
    _lmer("sleep_offset_call_term", "sleep", "Reaction ~ Days + offset(10 * log(Days + 1)) + (Days | Subject)"),
    _lmer("sleep_weights_offset", "sleep", "Reaction ~ Days + (Days | Subject)", weights="w", offset="off"),
    _lmer("penicillin_weights", "Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", weights="w"),
]


def _lmer_section(ro, data, models, verbose=False):
    ro.r(_R_LMER)
    out = []
    for spec in models:
        res = ro.r[".dref_lmer"](spec["formula"], to_r(data[spec["data"]]), spec["REML"],
                                 spec["weights"], spec["offset"], to_r(data[spec["newdata"]]),
                                 ro.StrVector(spec["reforms"]))
        res = _one(_py(res), "crit", "REMLcrit_or_deviance", "sigma", "loglik", "nobs",
                   "optimizer_message")
        for k in ("notes",):
            res[k] = res[k] or []
        out.append(dict(spec, **res))
        if verbose:
            print(f"  {spec['id']}: crit {res['crit']:.6f}, theta {np.round(res['theta'], 5)}, "
                  f"{res['optimizer_message']}")
    return out


def section_lmer_predict(ro, data, specs=LMER_PREDICT):
    """b. lmer fits and predict(re.form = NULL, NA, partial) on training and new data."""
    return _lmer_section(ro, data, specs, verbose=True)


def section_weighted_lmer(ro, data, specs=WEIGHTED_LMER):
    """c. lmer fits with weights=, offset= and offset() terms, ML and REML."""
    return _lmer_section(ro, data, specs)


# ------------------------------------------------------------------ c, d. lm

_R_LM = r"""
.dref_lm <- function(formula, data, weights, offset, newdata) {
  cl <- bquote(lm(.(as.formula(formula)), data = data))
  if (nzchar(weights)) cl$weights <- as.name(weights)
  if (nzchar(offset)) cl$offset <- as.name(offset)
  m <- eval(cl)
  interval <- function(type, level) {
    p <- .dref_quiet(predict(m, newdata = newdata, interval = type, level = level))
    list(fit = unname(p$value[, "fit"]), lwr = unname(p$value[, "lwr"]),
         upr = unname(p$value[, "upr"]), notes = p$notes)
  }
  ci <- function(level) {
    c <- confint(m, level = level)
    list(names = rownames(c), colnames = colnames(c), lower = unname(c[, 1]), upper = unname(c[, 2]))
  }
  list(coef_names = names(coef(m)), coef = unname(coef(m)),
       sigma = sigma(m), loglik = as.numeric(logLik(m)), df_residual = df.residual(m),
       fitted = unname(fitted(m)),
       predict = unname(predict(m, newdata = newdata)),
       confidence_95 = interval("confidence", 0.95), confidence_90 = interval("confidence", 0.9),
       prediction_95 = interval("prediction", 0.95), prediction_90 = interval("prediction", 0.9),
       confint_95 = ci(0.95), confint_90 = ci(0.9))
}
"""


def _lm(key, data, formula, weights="", offset=""):
    return dict(id=key, data=data, formula=formula, weights=weights, offset=offset,
                newdata=f"{data}_new")


WEIGHTED_LM = [
    _lm("lm_weights", "mtcars", "mpg ~ wt + hp", weights="w"),
    _lm("lm_offset_arg", "mtcars", "mpg ~ wt + hp", offset="off"),
    _lm("lm_offset_term", "mtcars", "mpg ~ wt + offset(off)"),
    _lm("lm_weights_offset", "mtcars", "mpg ~ wt + factor(cyl)", weights="w", offset="off"),
]

LM_INTERVALS = [
    _lm("lm_plain", "mtcars", "mpg ~ wt + hp"),
    _lm("lm_poly_factor", "mtcars", "mpg ~ poly(hp, 2) + factor(cyl)"),
    _lm("lm_scale_interaction", "mtcars", "mpg ~ scale(wt) * factor(am)"),
    _lm("lm_log_call", "mtcars", "mpg ~ log(hp + 1) + I(wt^2)"),
    _lm("lm_weighted", "mtcars", "mpg ~ wt + hp", weights="w"),
]


def _lm_section(ro, data, models):
    ro.r(_R_LM)
    out = []
    for spec in models:
        res = ro.r[".dref_lm"](spec["formula"], to_r(data[spec["data"]]), spec["weights"],
                               spec["offset"], to_r(data[spec["newdata"]]))
        out.append(dict(spec, **_one(_py(res), "sigma", "loglik", "df_residual")))
    return out


def section_weighted_lm(ro, data, specs=WEIGHTED_LM):
    """c. lm fits with weights= and offsets (argument and offset() term)."""
    return _lm_section(ro, data, specs)


def section_lm_intervals(ro, data, specs=LM_INTERVALS):
    """d. predict.lm intervals (confidence, prediction; 0.95, 0.9) and confint.lm."""
    return _lm_section(ro, data, specs)


# ------------------------------------------------------------------ e. cake


def section_cake(ro, data):
    """e. lme4's cake example: REML criterion and fixed effects, ordered temperature."""
    [res] = _lmer_section(ro, data, [_lmer("cake", "cake",
                                           "angle ~ recipe * temperature + (1 | recipe:replicate)")])
    return {k: res[k] for k in ("formula", "data", "crit", "fixef_names", "fixef", "theta",
                                "sigma", "vc_grp")}


SUMMARIES = [("sleep_weights_REML", "lmer"), ("sleep_weights_offset", "lmer"),
             ("sleep_offset_term_REML", "lmer"), ("lm_weights", "lm"),
             ("lm_weights_offset", "lm")]

_R_SUMMARY = r"""
.dref_summary_text <- function(m) {
  out <- capture.output(print(summary(m)))
  paste(out[!startsWith(out, "Control:")], collapse = "\n")
}
.dref_lm_summary <- function(formula, data, weights, offset) {
  cl <- bquote(lm(.(as.formula(formula)), data = data))
  if (nzchar(weights)) cl$weights <- as.name(weights)
  if (nzchar(offset)) cl$offset <- as.name(offset)
  .dref_summary_text(eval(cl))
}
"""


def section_summaries(ro, data, ref):
    """f. printed summaries of weighted and offset fits (Weights:/Offset: lines, the
    pearson scaled residuals of lmer, summary.lm's "Weighted Residuals")."""
    ro.r(_R_LMER)
    ro.r(_R_LM)
    ro.r(_R_SUMMARY)
    cases = {c["id"]: c for c in ref["weighted_lmer"] + ref["weighted_lm"]}
    out = []
    for key, kind in SUMMARIES:
        c = cases[key]
        frame = to_r(data[c["data"]])
        if kind == "lmer":
            m = ro.r[".dref_lmer_fit"](c["formula"], frame, c["REML"], c["weights"], c["offset"])
            text = ro.r[".dref_summary_text"](m.rx2("value"))[0]
        else:
            text = ro.r[".dref_lm_summary"](c["formula"], frame, c["weights"], c["offset"])[0]
        out.append(dict(id=key, kind=kind, text=text))
    return out


# ------------------------------------------------------------------ main


def _versions(ro):
    import rpy2
    v = ro.r('c(R = R.version.string, lme4 = as.character(packageVersion("lme4")), '
             'Matrix = as.character(packageVersion("Matrix")))')
    out = dict(zip(list(v.names), [str(x) for x in v]))
    out["rpy2"] = rpy2.__version__
    return out


def _dumps(ref):
    """JSON text with every list of numbers on one line (readable diffs, fewer lines)."""
    text = json.dumps(ref, indent=1)
    numbers = re.compile(r"\[([-+0-9.eE,\s]|null|true|false)+\]")
    return numbers.sub(lambda m: " ".join(m.group(0).split()), text) + "\n"


def r_session():
    """rpy2's robjects with lme4 loaded and this script's R helpers defined."""
    import rpy2.robjects as ro
    ro.r(_R_SETUP)
    return ro


def main():
    ro = r_session()
    data = build_data(ro)
    table = {name: _write_csv(name, df) for name, df in data.items()}
    # R sees the data exactly as the tests will: read back from the CSV files
    from design_data import load_golden
    data = {name: load_golden(name, table) for name in table}
    ref = {
        "about": dict(script="tests/r_design_ref.py", date=_dt.date.today().isoformat(),
                      versions=_versions(ro),
                      control="lmerControl(optimizer = 'nloptwrap', optCtrl = list(xtol_abs = 1e-12, "
                              "ftol_abs = 1e-14, xtol_rel = 0, ftol_rel = 0, maxeval = 1e5)), then "
                              "Newton steps on the free theta (see .dref_newton)"),
        "data": table,
    }
    print("a. model.matrix"); ref["model_matrix"] = section_model_matrix(ro, data)
    print("b. lmer predict"); ref["lmer_predict"] = section_lmer_predict(ro, data)
    print("c. weighted/offset"); ref["weighted_lmer"] = section_weighted_lmer(ro, data)
    ref["weighted_lm"] = section_weighted_lm(ro, data)
    print("d. lm intervals"); ref["lm_intervals"] = section_lm_intervals(ro, data)
    print("e. cake"); ref["cake"] = section_cake(ro, data)
    print("f. summaries"); ref["summaries"] = section_summaries(ro, data, ref)
    OUT.write_text(_dumps(ref))
    print(f"wrote {OUT.relative_to(HERE.parent)} and {len(table)} CSV files under "
          f"{DATA_DIR.relative_to(HERE.parent)}")


if __name__ == "__main__":
    import sys
    sys.path.insert(0, str(HERE))
    main()
