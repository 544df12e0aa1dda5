#!/usr/bin/env python
"""Benchmark lmmlite's glmer against lme4's glmer (R, through rpy2), one run.

    python benchmarks/glmer_bench.py [--repeats N] [--models key,key] [--out DIR]

The models and data are those of the golden values (tests/r_glmer_ref.py,
tests/golden/data/glmer_*.csv). lme4 runs with its defaults (glmerControl()),
timed inside R with proc.time() (data converted once, outside the timing);
lmmlite with its defaults, which go on to the exact optimum and compute the
finite-difference Hessian for the standard errors, as lme4 does. Prints the
median times, their ratio and both logLiks (lmmlite's is never below lme4's),
and writes them with the load average and versions to ``DIR/glmer_latest.json``
(default benchmarks/results/; the book's benchmark appendix shows that file, or
the stored run benchmarks/glmer_reference.json).
"""

import argparse
from datetime import datetime, timezone
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

R_CODE = r"""
suppressPackageStartupMessages(library(lme4))
.gb_time <- function(formula, data, family, nAGQ, weights, offset, repeats) {
  call <- sprintf("glmer(%s, data = data, family = %s, nAGQ = %d%s%s)", formula, family, nAGQ,
                  if (nzchar(weights)) paste0(", weights = ", weights) else "",
                  if (nzchar(offset)) paste0(", offset = ", offset) else "")
  expr <- parse(text = call)
  m <- suppressWarnings(suppressMessages(eval(expr)))     # warm-up
  times <- numeric(repeats)
  for (i in seq_len(repeats)) {
    t0 <- proc.time()[["elapsed"]]
    m <- suppressWarnings(suppressMessages(eval(expr)))
    times[i] <- proc.time()[["elapsed"]] - t0
  }
  list(times = times, loglik = as.numeric(logLik(m)))
}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--models", default="")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()
    load_begin = os.getloadavg()
    from test_glmer_ref import MODELS, data, family
    import numpy as np
    import scipy
    import lmmlite
    try:
        import rpy2.robjects as ro
        from rpy2.robjects import pandas2ri
        from rpy2.robjects.conversion import localconverter
        ro.r(R_CODE)
    except Exception as exc:  # no R: lmmlite only
        ro = None
        print(f"lme4 not available ({type(exc).__name__}); timing lmmlite only")
    keys = args.models.split(",") if args.models else list(MODELS)
    print(f"load average {load_begin[0]:.2f} at start ({os.cpu_count()} CPUs)")
    rows = []
    print(f"{'model':20s} {'lmmlite s':>10s} {'lme4 s':>8s} {'ratio':>6s} "
          f"{'logLik lmmlite':>15s} {'logLik lme4':>13s}")
    for key in keys:
        m = MODELS[key]
        d = data(m["data"])
        times = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                fit = lmmlite.glmer(m["formula"], d, family=family(m["family"]), nAGQ=m["nAGQ"],
                                    weights=m["weights"] or None, offset=m["offset"] or None)
                times.append(time.perf_counter() - t0)
        ours = statistics.median(times)
        theirs, ll, rtimes = float("nan"), float("nan"), []
        if ro is not None:
            with localconverter(ro.default_converter + pandas2ri.converter):
                rdf = ro.conversion.py2rpy(d)
            res = ro.r[".gb_time"](m["formula"], rdf, m["family"], m["nAGQ"], m["weights"],
                                   m["offset"], args.repeats)
            rtimes = list(res.rx2("times"))
            theirs = statistics.median(rtimes)
            ll = float(res.rx2("loglik")[0])
        print(f"{key:20s} {ours:10.3f} {theirs:8.3f} {ours / theirs:6.2f} "
              f"{fit.loglik:15.6f} {ll:13.6f}", flush=True)
        rows.append({"model": key, "formula": m["formula"], "family": m["family"],
                     "nAGQ": m["nAGQ"], "nobs": fit.nobs, "lmmlite_times": times,
                     "lmmlite": ours, "lme4_times": rtimes, "lme4": theirs,
                     "ratio": ours / theirs, "loglik_lmmlite": fit.loglik, "loglik_lme4": ll})
    load_end = os.getloadavg()
    print(f"load average {load_end[0]:.2f} at end")
    env = {"python": sys.version.split()[0], "platform": platform.platform(),
           "cpus": os.cpu_count(), "numpy": np.__version__, "scipy": scipy.__version__,
           "lmmlite": lmmlite.__version__,
           "loadavg_begin": load_begin, "loadavg_end": load_end}
    if ro is not None:
        env["R"] = str(ro.r("R.version.string")[0])
        env["lme4"] = str(ro.r("as.character(packageVersion('lme4'))")[0])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(["python", "benchmarks/glmer_bench.py"] + sys.argv[1:]),
              "repeats": args.repeats, "environment": env, "models": rows}
    (out / "glmer_latest.json").write_text(json.dumps(record, indent=1, allow_nan=True))


if __name__ == "__main__":
    main()
