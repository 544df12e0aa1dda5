#!/usr/bin/env python
"""lme4's numbers for every model of the book, stored for the validation appendix.

    .venv/bin/python scripts/lme4_reference.py          # writes chapters/lme4_reference.json
    .venv/bin/python scripts/lme4_reference.py --print  # only print, write nothing
    .venv/bin/python scripts/lme4_reference.py --data plasma  # refit one data set's models

Fits each model of ``MODELS`` (every ``lmer`` call of the chapters) in R's
lme4 and lmerTest through rpy2, on the course data as ``lmmlite.load`` delivers
them, and writes per model: formula, data set, REML flag, lme4 optimizer settings
(``control``: the default, or ``CONTROLS["tight"]``), fixed effects,
standard errors, variance components (``vcov`` and ``sdcor`` as in
``as.data.frame(VarCorr(m))``), the REML criterion (REML fits) or deviance (ML
fits), logLik, θ and, for REML fits, lmerTest's Satterthwaite df; plus the R,
lme4, lmerTest and rpy2 versions, the date, and a SHA-256 of every data file
used (so the appendix can tell when a data set changed after the reference was
made).

Needs R with lme4 and lmerTest and ``pip install 'rpy2<3.6'`` (the ``r`` extra).
The appendix ``chapters/appendix-validation.md`` imports this module for the
model list and, with ``LMMLITE_BOOK_LIVE_R=1``, for the live R fits.
``r_status`` and the conversion of a pandas DataFrame to R (``_to_r``) are also
used by the tests (``tests/r_reference.py``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import hashlib
import json
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "chapters" / "lme4_reference.json"

# ---------------------------------------------------------------- the models

# data set name -> (description, the lmmlite.load() files it is built from)
DATA = {
    "plasma": ("load('plasma')", ["plasma"]),
    "sleepstudy": ("load('sleepstudy'), all 180 rows", ["sleepstudy"]),
    "sleepall": ("sleepstudy, Days >= 2, Days - 2 (144 rows)", ["sleepstudy"]),
    "sleepall_sex": ("sleepall merged with load('sleepstudy_sex')",
                     ["sleepstudy", "sleepstudy_sex"]),
    "sleepall_weeks": ("sleepall with Weeks = Days / 7", ["sleepstudy"]),
    "clinics_nested": ("load('clinics_nested')", ["clinics_nested"]),
    "clinics_crossed": ("load('clinics_crossed')", ["clinics_crossed"]),
}


def _m(key, chapters, data, formula, REML=True, control=None):
    out = dict(key=key, chapters=chapters, data=data, formula=formula, REML=REML)
    if control:
        out["control"] = control
    return out


# lme4's optimizer settings by name: the default (nloptwrap's BOBYQA with absolute
# tolerances 1e-8 on θ and on the criterion) or a tight stop near the exact optimum
CONTROLS = {"tight": "lmerControl(optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, "
                     "xtol_rel = 0, ftol_rel = 0, maxeval = 100000))"}


# key, chapters (where the model is fitted), data set, formula, REML
MODELS = [
    _m("plasma_intercept", "3, 5, 10", "plasma", "conc ~ age + (1 | group)"),
    _m("plasma_null", "3", "plasma", "conc ~ 1 + (1 | group)"),
    _m("plasma_slope", "4", "plasma", "conc ~ age + (1 + age | group)"),
    _m("plasma_slope_tight", "4", "plasma", "conc ~ age + (1 + age | group)", control="tight"),
    _m("plasma_slope_uncorr", "4", "plasma", "conc ~ age + (1 + age || group)"),
    _m("sleepall_m1", "8", "sleepall", "Reaction ~ Days + (1 | Subject)"),
    _m("sleepall_m1_ML", "8", "sleepall", "Reaction ~ Days + (1 | Subject)", False),
    _m("sleepall_m2", "8, 9", "sleepall", "Reaction ~ Days + (1 + Days | Subject)"),
    _m("sleepall_m2_ML", "8, 9", "sleepall", "Reaction ~ Days + (1 + Days | Subject)", False),
    _m("sleepall_m2_uncorr", "8", "sleepall", "Reaction ~ Days + (1 + Days || Subject)"),
    _m("sleepall_m3", "8", "sleepall_sex", "Reaction ~ Days + sex + (1 + Days | Subject)"),
    _m("sleepall_m3_ML", "8", "sleepall_sex", "Reaction ~ Days + sex + (1 + Days | Subject)",
       False),
    _m("sleepall_m2_weeks", "9", "sleepall_weeks", "Reaction ~ Weeks + (1 + Weeks | Subject)"),
    _m("sleepall_m2_weeks_ML", "9", "sleepall_weeks", "Reaction ~ Weeks + (1 + Weeks | Subject)",
       False),
    _m("sleepstudy_m1", "10", "sleepstudy", "Reaction ~ Days + (1 | Subject)"),
    _m("sleepstudy_m1_ML", "-", "sleepstudy", "Reaction ~ Days + (1 | Subject)", False),
    _m("sleepstudy_m2", "5, 10", "sleepstudy", "Reaction ~ Days + (1 + Days | Subject)"),
    _m("sleepstudy_m2_ML", "-", "sleepstudy", "Reaction ~ Days + (1 + Days | Subject)", False),
    _m("nested", "6, 9, 10", "clinics_nested", "y ~ x + (1 | region/clinic)"),
    _m("nested_ML", "9", "clinics_nested", "y ~ x + (1 | region/clinic)", False),
    _m("nested_colon", "6", "clinics_nested", "y ~ x + (1 | region) + (1 | region:clinic)"),
    _m("nested_clinic_id", "6", "clinics_nested", "y ~ x + (1 | region) + (1 | clinic_id)"),
    _m("nested_wrong", "6", "clinics_nested", "y ~ x + (1 | region) + (1 | clinic)"),
    _m("region_only", "6", "clinics_nested", "y ~ x + (1 | region)"),
    _m("crossed", "7", "clinics_crossed", "y ~ x + (x | clinic) + (x | doctor)"),
    _m("crossed_intercepts", "7", "clinics_crossed", "y ~ x + (1 | clinic) + (1 | doctor)"),
]


def load_data(name):
    """The data set ``name`` of ``DATA``, built exactly as in the chapters."""
    from lmmlite import load
    if name in ("plasma", "sleepstudy", "clinics_nested", "clinics_crossed"):
        return load(name)
    sleepstudy = load("sleepstudy")
    sleepall = sleepstudy[sleepstudy.Days >= 2].copy()
    sleepall["Days"] -= 2
    if name == "sleepall":
        return sleepall
    if name == "sleepall_sex":
        return sleepall.merge(load("sleepstudy_sex"), on="Subject")
    if name == "sleepall_weeks":
        sleepall["Weeks"] = sleepall["Days"] / 7
        return sleepall
    raise KeyError(name)


def data_fingerprints():
    """SHA-256 (first 16 hex digits) of every course CSV that exists."""
    out = {}
    files = sorted({f for _, fs in DATA.values() for f in fs})
    for f in files:
        path = resources.files("lmmlite.data") / f"{f}.csv"
        out[f] = hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None
    return out


# ---------------------------------------------------------------- R side

_R_CODE = r"""
suppressPackageStartupMessages({library(lme4); library(lmerTest)})
.lmmref_fit <- function(formula, data, REML, control = "lmerControl()") {
  m <- lmerTest::lmer(as.formula(formula), data = data, REML = REML,
                      control = eval(parse(text = control)))
  vc <- as.data.frame(VarCorr(m))
  df <- if (REML) unname(coef(summary(m, ddf = "Satterthwaite"))[, "df"]) else numeric(0)
  list(fixef_names = names(fixef(m)),
       fixef = unname(fixef(m)),
       se = unname(sqrt(diag(as.matrix(vcov(m))))),
       vc_grp = as.character(vc$grp),
       vc_var1 = ifelse(is.na(vc$var1), "", as.character(vc$var1)),
       vc_var2 = ifelse(is.na(vc$var2), "", as.character(vc$var2)),
       vc_vcov = vc$vcov, vc_sdcor = vc$sdcor,
       crit = if (REML) REMLcrit(m) else deviance(m),
       loglik = as.numeric(logLik(m)),
       theta = unname(getME(m, "theta")),
       nobs = nobs(m),
       singular = isSingular(m),
       messages = as.character(unlist(m@optinfo$conv$lme4$messages)),
       df = df)
}
.lmmref_versions <- function() {
  c(R = R.version.string,
    lme4 = as.character(packageVersion("lme4")),
    lmerTest = as.character(packageVersion("lmerTest")),
    Matrix = as.character(packageVersion("Matrix")))
}
"""


def r_status():
    """(available, reason): whether R with lme4 and lmerTest can be used through rpy2."""
    try:
        import rpy2.robjects as ro
    except Exception as exc:  # ImportError, or R itself not found
        return False, f"rpy2/R not available ({type(exc).__name__}: {exc})"
    try:
        ro.r("suppressPackageStartupMessages({library(lme4); library(lmerTest)})")
    except Exception as exc:
        return False, f"R packages lme4/lmerTest not installed ({exc})"
    return True, ""


@functools.lru_cache(maxsize=1)
def _r():
    import rpy2.robjects as ro
    ro.r(_R_CODE)
    return ro


def _to_r(df):
    """A pandas DataFrame as an R data.frame (factors/strings as character vectors)."""
    import rpy2.robjects as ro
    from rpy2.robjects import pandas2ri
    from rpy2.robjects.conversion import localconverter
    df = df.copy()
    for c in df.columns:
        if isinstance(df[c].dtype, pd.CategoricalDtype) or df[c].dtype == object:
            df[c] = df[c].astype(str).where(df[c].notna(), None)
    with localconverter(ro.default_converter + pandas2ri.converter):
        return ro.conversion.py2rpy(df)


def r_versions():
    """R, lme4, lmerTest, Matrix and rpy2 versions."""
    import rpy2
    v = _r().r[".lmmref_versions"]()
    out = dict(zip(list(v.names), [str(x) for x in v]))
    out["rpy2"] = rpy2.__version__
    return out


def _vec(x):
    return [float(a) for a in x]


def fit_r(model, data):
    """lme4/lmerTest's fit of one model of ``MODELS`` as a JSON-ready dict."""
    control = CONTROLS[model["control"]] if model.get("control") else "lmerControl()"
    res = _r().r[".lmmref_fit"](model["formula"], _to_r(data), model["REML"], control)
    g = {name: res.rx2(name) for name in res.names}
    names = [str(n) for n in g["fixef_names"]]
    vc = [dict(grp=str(a), var1=str(b) or None, var2=str(c) or None, vcov=float(d), sdcor=float(e))
          for a, b, c, d, e in zip(g["vc_grp"], g["vc_var1"], g["vc_var2"], g["vc_vcov"],
                                   g["vc_sdcor"])]
    return {
        "nobs": int(g["nobs"][0]),
        "fixef": dict(zip(names, _vec(g["fixef"]))),
        "se": dict(zip(names, _vec(g["se"]))),
        "varcorr": vc,
        "crit_name": "REML criterion" if model["REML"] else "deviance",
        "crit": float(g["crit"][0]),
        "loglik": float(g["loglik"][0]),
        "df": dict(zip(names, _vec(g["df"]))) if model["REML"] else None,
        "theta": _vec(g["theta"]),
        "singular": bool(g["singular"][0]),
        "messages": [str(m) for m in g["messages"]],
    }


def reference(models=MODELS, quiet=True):
    """Fit ``models`` in R; the document written to ``lme4_reference.json``."""
    ok, reason = r_status()
    if not ok:
        raise RuntimeError(reason)
    doc = {
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "generated_by": "scripts/lme4_reference.py",
        "versions": r_versions(),
        "data_sha256": data_fingerprints(),
        "data_sets": {k: v[0] for k, v in DATA.items()},
        "models": [],
    }
    cache = {}
    for m in models:
        entry = dict(m)
        try:
            if m["data"] not in cache:
                cache[m["data"]] = load_data(m["data"])
            entry.update(fit_r(m, cache[m["data"]]))
        except Exception as exc:  # e.g. a data set not (yet) in data/
            entry["error"] = f"{type(exc).__name__}: {exc}".strip()
        if not quiet:
            status = entry.get("error") or f"{entry['crit_name']} {entry['crit']:.6f}"
            print(f"  {m['key']:22s} {status}", file=sys.stderr)
        doc["models"].append(entry)
    return doc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--print", action="store_true", help="print the JSON, write nothing")
    ap.add_argument("--out", default=str(OUT), help=f"output file (default {OUT.relative_to(ROOT)})")
    ap.add_argument("--data", help="refit only the models of this data set and merge them "
                    "into the existing output file (the other models stay as stored)")
    args = ap.parse_args(argv)
    if args.data:
        doc = json.loads(Path(args.out).read_text())
        fresh = reference([m for m in MODELS if m["data"] == args.data], quiet=False)
        new = {m["key"]: m for m in fresh["models"]}
        doc["models"] = [new.get(m["key"], m) for m in doc["models"]]
        doc["data_sha256"][args.data] = fresh["data_sha256"][args.data]
        doc["versions"] = fresh["versions"]
    else:
        doc = reference(quiet=False)
    text = json.dumps(doc, indent=1)
    if args.print:
        print(text)
        return 0
    Path(args.out).write_text(text + "\n")
    bad = [m["key"] for m in doc["models"] if "error" in m]
    print(f"wrote {args.out}: {len(doc['models']) - len(bad)} models, lme4 "
          f"{doc['versions']['lme4']}, lmerTest {doc['versions']['lmerTest']}"
          + (f"; failed: {', '.join(bad)}" if bad else ""), file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
