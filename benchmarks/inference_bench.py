#!/usr/bin/env python
"""Satterthwaite and Kenward-Roger summaries on InstEval-sized fits (issue 14), beside lmerTest.

    ./.venv/bin/python benchmarks/inference_bench.py [--sim] [--no-r] [--no-lmertest] [--full]

For the ML and REML fits of ``y ~ service + (1|s) + (1|d) + (1|dept)`` (with
``--full``: ``+ lectage + studage`` too) on lme4's InstEval (73,421 rows; through
rpy2) or, with ``--sim`` or without R, the simulated InstEval-shaped data of
datasets.py, it times lmmlite's ``fit.summary(ddf="Satterthwaite")`` and
``fit.summary(ddf="Kenward-Roger")`` (each from a fresh fit object, so nothing is
cached; Kenward-Roger is for REML fits only, as in lmerTest), and, in R, lmerTest's
Satterthwaite summary of the lme4 fit (``as_lmerModLmerTest``, which takes
lmerTest's numerical derivatives, plus ``summary``).  pbkrtest's Kenward-Roger
needs n x n matrices (43 GB here) and is not attempted.  Times are elapsed
seconds from one run; the load average is printed (the machine may be shared).
``--no-lmertest`` reads InstEval from R but does not time lmerTest (minutes).
The table is also written to ``benchmarks/results/inference_latest.json`` (``make bench``
runs this script; the book's benchmark appendix shows that file, or the stored
``benchmarks/inference_reference.json``).
"""

import datetime as _dt
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import datasets  # noqa: E402

from lmmlite import lmer  # noqa: E402

FORMULAS = {"service": "y ~ service + (1 | s) + (1 | d) + (1 | dept)",
            "full": "y ~ service + lectage + studage + (1 | s) + (1 | d) + (1 | dept)"}

_R_CODE = r"""
suppressPackageStartupMessages(library(lmerTest))
.ib_satt <- function(formula, data, REML) {
  m <- lme4::lmer(as.formula(formula), data = data, REML = REML)
  t0 <- proc.time()[["elapsed"]]
  s <- coef(summary(lmerTest::as_lmerModLmerTest(m), ddf = "Satterthwaite"))
  list(seconds = proc.time()[["elapsed"]] - t0, df = unname(s[, "df"]),
       theta = unname(getME(m, "theta")))
}
"""


def _r_session():
    try:
        import rpy2.robjects as ro
        ro.r(_R_CODE)
        return ro
    except Exception as exc:     # no R, rpy2 or lmerTest
        print(f"(R not used: {type(exc).__name__}: {exc})")
        return None


def _insteval(ro):
    sys.path.insert(0, str(HERE.parent / "tests"))
    from r_design_ref import _r_dataset, r_session
    r_session()
    return _r_dataset(ro, "lme4::InstEval")


def _timed(f):
    t0 = time.perf_counter()
    out = f()
    return time.perf_counter() - t0, out


def main(argv):
    ro = None if "--no-r" in argv else _r_session()
    real = ro is not None and "--sim" not in argv
    data = _insteval(ro) if real else datasets.insteval_like()
    name = "lme4::InstEval" if real else "simulated InstEval-shaped data"
    keys = ["service", "full"] if "--full" in argv else ["service"]
    if not real:
        keys = ["service"]      # the simulation has no lectage/studage
    print(f"{name}: {len(data):,} rows; load average {os.getloadavg()[0]:.2f} "
          f"({os.cpu_count()} CPUs)")
    print(f"{'model':<16}{'fit':>8}{'Satt.':>9}{'KR':>11}{'lmerTest Satt.':>16}"
          f"{'max rel. diff df':>18}")
    rows = []
    load_begin = os.getloadavg()
    for key in keys:
        for REML in (False, True):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t_fit, fit = _timed(lambda: lmer(FORMULAS[key], data, REML=REML, verbose=False))
            t_s, _ = _timed(lambda: fit.at_theta(fit.theta).summary(ddf="Satterthwaite"))
            t_kr = _timed(lambda: fit.at_theta(fit.theta).summary(ddf="Kenward-Roger"))[0] \
                if REML else None
            r_txt = diff = ""
            label = f"{key} {'REML' if REML else 'ML'}"
            row = {"model": label, "nobs": len(data),
                   "fit_s": t_fit, "satterthwaite_s": t_s, "kenward_roger_s": t_kr,
                   "lmertest_satterthwaite_s": None, "max_rel_diff_df": None}
            if ro is not None and "--no-lmertest" not in argv:
                from r_design_ref import to_r
                res = ro.r[".ib_satt"](FORMULAS[key], to_r(data), REML)
                row["lmertest_satterthwaite_s"] = float(res.rx2("seconds")[0])
                r_txt = f"{row['lmertest_satterthwaite_s']:.1f}"
                # lmmlite's df at lme4's θ, against lmerTest's
                df_r = np.array(res.rx2("df"))
                at_r = fit.at_theta(np.array(res.rx2("theta")))
                df = at_r.summary(ddf="Satterthwaite").coefficients["df"].to_numpy()
                row["max_rel_diff_df"] = float(np.max(np.abs(df / df_r - 1)))
                diff = f"{row['max_rel_diff_df']:.1e}"
            kr_txt = f"{t_kr:.1f}" if t_kr is not None else "REML only"
            print(f"{label:<16}{t_fit:8.1f}{t_s:9.1f}{kr_txt:>11}{r_txt:>16}{diff:>18}", flush=True)
            rows.append(row)
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    out = HERE / "results" / "inference_latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({
        "created": _dt.datetime.now().isoformat(timespec="seconds"), "data": name,
        "cpus": os.cpu_count(), "loadavg_begin": load_begin, "loadavg_end": os.getloadavg(),
        "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
