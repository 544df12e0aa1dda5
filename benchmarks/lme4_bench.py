"""Timing lme4::lmer inside R through rpy2.

The data are converted to an R data.frame once per model, outside the timed
region; R then times each ``lmer`` call itself with ``proc.time()`` (elapsed
wall-clock time) around the call, so rpy2's conversion and call overhead are
excluded.  One untimed warm-up call precedes the timed calls of small models.
A model that exceeds the time limit is stopped by R's ``setTimeLimit``.
"""

import numpy as np
import pandas as pd

_R_CODE = r"""
suppressPackageStartupMessages(library(lme4))
.bench_lmer <- function(formula, data, REML, repeats, warmup, limit) {
  f <- as.formula(formula)
  setTimeLimit(elapsed = limit, transient = TRUE)
  on.exit(setTimeLimit(elapsed = Inf))
  if (warmup) m <- lmer(f, data = data, REML = REML)
  times <- numeric(repeats)
  for (i in seq_len(repeats)) {
    t0 <- proc.time()[["elapsed"]]
    m <- lmer(f, data = data, REML = REML)
    times[i] <- proc.time()[["elapsed"]] - t0
  }
  list(times = times,
       crit = if (REML) REMLcrit(m) else deviance(m),
       feval = as.numeric(m@optinfo$feval),
       optimizer = as.character(m@optinfo$optimizer),
       theta = unname(getME(m, "theta")))
}
.bench_insteval <- function() lme4::InstEval
"""


class LME4:
    def __init__(self):
        self.ok, self.reason, self.version = False, "R not installed", None
        try:
            import rpy2.robjects as ro
        except Exception as exc:  # ImportError, or rpy2 cannot find R
            self.reason = "R not installed"
            self.detail = f"{type(exc).__name__}: {exc}"
            return
        try:
            ro.r(_R_CODE)
        except Exception as exc:
            self.reason = f"R package lme4 not installed ({exc})"
            return
        self.ro = ro
        self.ok, self.reason = True, ""
        self.version = {"R": str(ro.r("R.version.string")[0]),
                        "lme4": str(ro.r("as.character(packageVersion('lme4'))")[0]),
                        "blas": str(ro.r("extSoftVersion()[['BLAS']]")[0])}

    def to_r(self, df):
        ro = self.ro
        from rpy2.robjects import pandas2ri
        from rpy2.robjects.conversion import localconverter
        df = df.copy()
        for c in df.columns:
            if isinstance(df[c].dtype, pd.CategoricalDtype) or df[c].dtype == object:
                df[c] = df[c].astype(str)
        with localconverter(ro.default_converter + pandas2ri.converter):
            return ro.conversion.py2rpy(df)

    def insteval(self):
        """lme4::InstEval as a pandas DataFrame (factors as categoricals), and the R object."""
        ro = self.ro
        from rpy2.robjects import pandas2ri
        from rpy2.robjects.conversion import localconverter
        rdf = ro.r(".bench_insteval()")
        with localconverter(ro.default_converter + pandas2ri.converter):
            df = ro.conversion.rpy2py(rdf)
        df = df.reset_index(drop=True)
        for c in ("s", "d", "dept", "service"):
            df[c] = pd.Categorical(df[c].astype(str), categories=[str(x) for x in df[c].cat.categories])
        df["y"] = df["y"].astype(float)
        return df, rdf

    def bench(self, formula, rdata, REML, repeats, warmup, limit):
        res = self.ro.r[".bench_lmer"](formula, rdata, REML, int(repeats), bool(warmup), float(limit))
        get = lambda k: np.asarray(res.rx2(k))
        return {"times": [float(t) for t in get("times")],
                "crit": float(get("crit")[0]),
                "nfev": int(get("feval")[0]),
                "optimizer": str(get("optimizer")[0]),
                "theta": [float(t) for t in get("theta")]}
