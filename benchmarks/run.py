#!/usr/bin/env python
"""Benchmark lmmlite against lme4 (R, through rpy2) and statsmodels MixedLM.

    python benchmarks/run.py [--quick] [--no-r] [--repeats N] [--budget SECONDS]

Times the same fits in all three, prints a table and writes
benchmarks/results/latest.json and benchmarks/results/ratios.png.
See benchmarks/README.md for the method.
"""

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import signal
import statistics
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import datasets  # noqa: E402  (benchmarks/datasets.py)
import lmmlite  # noqa: E402

RESULTS = HERE / "results"

SM_CROSSED_NA = ("n/a (crossed factors need one all-data group with dense variance-component "
                 "columns; a 5,000-row subset of this model did not finish in 300 s)")

# name, label, formula, data, REML, big, statsmodels spec (or a reason it is n/a)
MODELS = [
    dict(name="sleep_int", label="sleepstudy (1|Subject)",
         formula="Reaction ~ Days + (1|Subject)", data=datasets.sleepstudy, REML=True, big=False,
         sm=dict(formula="Reaction ~ Days", groups="Subject", re_formula="1")),
    dict(name="sleep_slope", label="sleepstudy (1+Days|Subject)",
         formula="Reaction ~ Days + (1 + Days|Subject)", data=datasets.sleepstudy, REML=True,
         big=False, sm=dict(formula="Reaction ~ Days", groups="Subject", re_formula="~Days")),
    dict(name="sleep2_int", label="sleepstudy Days>=2 (1|Subject)",
         formula="Reaction ~ Days + (1|Subject)", data=datasets.sleepstudy_day2, REML=True,
         big=False, sm=dict(formula="Reaction ~ Days", groups="Subject", re_formula="1")),
    dict(name="sleep2_slope", label="sleepstudy Days>=2 (1+Days|Subject)",
         formula="Reaction ~ Days + (1 + Days|Subject)", data=datasets.sleepstudy_day2,
         REML=True, big=False,
         sm=dict(formula="Reaction ~ Days", groups="Subject", re_formula="~Days")),
    dict(name="clinics_nested", label="clinics y ~ x + (1|region/clinic)",
         formula="y ~ x + (1|region/clinic)", data=datasets.clinics_nested, REML=True, big=False,
         sm=dict(formula="y ~ x", groups="region", re_formula="1",
                 vc_formula={"clinic": "0 + C(clinic)"})),
    dict(name="crossed_slopes", label="crossed 1.5k (x|clinic)+(1|doctor)",
         formula="y ~ x + (x|clinic) + (1|doctor)", data=datasets.crossed_slopes, REML=True,
         big=False,
         sm="n/a (a correlated random slope for one of two crossed factors is not expressible)"),
    dict(name="insteval_sim", label="InstEval-shaped sim 73k, ML",
         formula="y ~ service + (1|s) + (1|d) + (1|dept)", data=datasets.insteval_like,
         REML=False, big=True, sm=SM_CROSSED_NA),
    dict(name="insteval_real", label="lme4::InstEval 73k, ML",
         formula="y ~ service + (1|s) + (1|d) + (1|dept)", data="r:InstEval",
         REML=False, big=True, sm=SM_CROSSED_NA),
]


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class FitTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds):
    """Raise FitTimeout after ``seconds`` (checked between Python bytecodes)."""
    def handler(signum, frame):
        raise FitTimeout(f"exceeded {seconds:.0f} s")
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1.0))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------- lmmlite

def lmmlite_fit(m, df, optimizer):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lmmlite.lmer(m["formula"], df, REML=m["REML"], optimizer=optimizer)


def bench_lmmlite(m, df, repeats, warmup, limit, optimizer):
    times, fit = [], None
    t_start = time.perf_counter()
    with time_limit(limit):
        if warmup:
            fit = lmmlite_fit(m, df, optimizer)
        for i in range(repeats):
            t0 = time.perf_counter()
            fit = lmmlite_fit(m, df, optimizer)
            times.append(time.perf_counter() - t0)
            # a big model that is slow gets fewer repeats
            if m["big"] and time.perf_counter() - t_start > limit / 3:
                break
    out = {"times": times,
           "crit": float(fit.reml_criterion if m["REML"] else fit.deviance),
           "nfev": int(fit.opt.nfev), "optimizer": fit.opt.method,
           "theta": [float(t) for t in fit.theta]}
    # peak memory: a separate, untimed fit under tracemalloc
    remaining = limit - (time.perf_counter() - t_start)
    if remaining > 3 * statistics.median(times):
        tracemalloc.start()
        try:
            with time_limit(remaining):
                lmmlite_fit(m, df, optimizer)
            out["peak_mem_mb"] = tracemalloc.get_traced_memory()[1] / 2 ** 20
        finally:
            tracemalloc.stop()
    return out


# ------------------------------------------------------------ statsmodels

def statsmodels_status():
    try:
        import statsmodels
        return True, statsmodels.__version__
    except ImportError:
        return False, "n/a (statsmodels not installed: pip install statsmodels)"


def sm_fit(m, df):
    import statsmodels.formula.api as smf
    spec = m["sm"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = smf.mixedlm(spec["formula"], df, groups=spec["groups"],
                            re_formula=spec.get("re_formula"), vc_formula=spec.get("vc_formula"))
        return model.fit(reml=m["REML"])


def bench_statsmodels(m, df, repeats, warmup, limit):
    times, res = [], None
    with time_limit(limit):
        if warmup:
            res = sm_fit(m, df)
        for _ in range(repeats):
            t0 = time.perf_counter()
            res = sm_fit(m, df)
            times.append(time.perf_counter() - t0)
    # statsmodels' llf is the (restricted) log-likelihood: -2 llf is on lme4's scale
    return {"times": times, "crit": float(-2 * res.llf), "converged": bool(res.converged)}


# ------------------------------------------------------------------ table

def fmt_t(r):
    if not isinstance(r, dict):
        return "n/a"
    return f"{r['median']:.3f}" if r["median"] < 10 else f"{r['median']:.1f}"


def fmt_ratio(x):
    return "n/a" if x is None else f"{x:.2f}"


def fmt_diff(x):
    return "n/a" if x is None else f"{x:+.1e}"


def table(rows):
    head = ["model", "n", "lmmlite s", "lme4 s", "statsm. s", "lmm/lme4", "lmm/sm",
            "peak MB", "Δcrit lme4", "Δcrit sm", "nfev lmm/lme4"]
    lines = []
    for r in rows:
        lm, l4, sm = r["lmmlite"], r["lme4"], r["statsmodels"]
        nfev = "n/a"
        if isinstance(lm, dict):
            nfev = f"{lm['nfev']}/" + (f"{l4['nfev']}" if isinstance(l4, dict) else "n/a")
        peak = f"{lm['peak_mem_mb']:.1f}" if isinstance(lm, dict) and "peak_mem_mb" in lm else "n/a"
        lines.append([r["label"], str(r["nobs"] or "n/a"), fmt_t(lm), fmt_t(l4), fmt_t(sm),
                      fmt_ratio(r["ratio_lme4"]), fmt_ratio(r["ratio_statsmodels"]), peak,
                      fmt_diff(r["crit_diff_lme4"]), fmt_diff(r["crit_diff_statsmodels"]), nfev])
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths)))]
    out.append("  ".join("-" * w for w in widths))
    for l in lines:
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(l, widths))))
    return "\n".join(out)


def notes(rows, skip=()):
    out = []
    for r in rows:
        for eng in ("lmmlite", "lme4", "statsmodels"):
            v = r[eng]
            if isinstance(v, str) and v != "n/a" and v not in skip:
                out.append(f"  {r['label']}: {eng} {v}")
            elif isinstance(v, dict) and eng == "statsmodels" and not v.get("converged", True):
                out.append(f"  {r['label']}: statsmodels reports non-convergence")
    return out


def plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed: no ratios.png")
        return None
    labels = [r["label"] for r in rows]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.55 * len(rows) + 1.5)))
    h = 0.38
    for k, (key, name, color) in enumerate([("ratio_lme4", "lmmlite / lme4", "tab:blue"),
                                            ("ratio_statsmodels", "lmmlite / statsmodels",
                                             "tab:orange")]):
        vals = [r[key] if r[key] is not None else np.nan for r in rows]
        ax.barh(y + (k - 0.5) * h, vals, height=h, label=name, color=color)
        for yi, v in zip(y, vals):
            if np.isnan(v):
                ax.text(1.0, yi + (k - 0.5) * h, " n/a", va="center", fontsize=7, color=color)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("time ratio (median fit time; < 1: lmmlite faster)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ------------------------------------------------------------------- main

def git_state():
    """The commit of the checkout and whether lmmlite/ has uncommitted changes."""
    import subprocess
    try:
        run = lambda *a: subprocess.run(["git", *a], cwd=HERE.parent, capture_output=True,
                                        text=True, timeout=10).stdout.strip()
        return {"commit": run("rev-parse", "HEAD"),
                "lmmlite_dirty": bool(run("status", "--porcelain", "--", "lmmlite"))}
    except Exception:
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="skip the 73k-row models")
    ap.add_argument("--no-r", action="store_true", help="do not use R/lme4")
    ap.add_argument("--repeats", type=int, default=7,
                    help="timed repeats for small models (default 7; the 73k models get at most 3)")
    ap.add_argument("--big-repeats", type=int, default=2,
                    help="timed repeats for the 73k models (1-3, default 2)")
    ap.add_argument("--budget", type=float, default=540,
                    help="soft cap on the total run time in seconds (default 540)")
    ap.add_argument("--timeout", type=float, default=300,
                    help="time limit for one engine on one model in seconds (default 300)")
    ap.add_argument("--optimizer", default="auto", help="lmmlite optimizer (auto, bobyqa, lbfgsb)")
    ap.add_argument("--only", nargs="*", help="model names to run (default: all)")
    ap.add_argument("--out", default=str(RESULTS), help="output directory")
    args = ap.parse_args(argv)
    t_begin = time.perf_counter()
    load_begin = os.getloadavg()
    deadline = t_begin + args.budget

    def remaining():
        return deadline - time.perf_counter()

    # ---- engines
    if args.no_r:
        r = None
        r_reason = "n/a (--no-r)"
    else:
        log("starting R ...")
        from lme4_bench import LME4
        r = LME4()
        r_reason = None if r.ok else f"n/a ({r.reason})"
        if not r.ok:
            r = None
    if r is None:
        print(f"lme4: {r_reason}", flush=True)
    sm_ok, sm_info = statsmodels_status()
    if not sm_ok:
        print(f"statsmodels: {sm_info}", flush=True)

    models = [m for m in MODELS if not (args.quick and m["big"])]
    if args.only:
        models = [m for m in models if m["name"] in args.only]

    rows = []
    for i, m in enumerate(models):
        log(f"({i + 1}/{len(models)}) {m['label']}: {m['formula']}, REML={m['REML']}")
        row = {"name": m["name"], "label": m["label"], "formula": m["formula"],
               "REML": m["REML"], "nobs": None, "lmmlite": "n/a", "lme4": "n/a",
               "statsmodels": "n/a", "ratio_lme4": None, "ratio_statsmodels": None,
               "crit_diff_lme4": None, "crit_diff_statsmodels": None}
        rows.append(row)
        rdata = None
        if m["data"] == "r:InstEval":
            if r is None:
                row["lmmlite"] = "n/a (the data come from R: lme4::InstEval)"
                row["lme4"] = r_reason
                row["statsmodels"] = m["sm"] if isinstance(m["sm"], str) else "n/a"
                log("  skipped: needs R for lme4::InstEval")
                continue
            df, rdata = r.insteval()
            row["data"] = "lme4::InstEval (exported from R at run time)"
        else:
            df = m["data"]()
            row["data"] = m["data"].__name__
        row["nobs"] = len(df)
        repeats = max(1, min(args.big_repeats, 3)) if m["big"] else max(args.repeats, 1)
        warmup = not m["big"]

        # lmmlite
        if remaining() < 5:
            row["lmmlite"] = "skipped (time budget)"
        else:
            limit = min(args.timeout, max(remaining(), 5))
            try:
                res = bench_lmmlite(m, df, repeats, warmup, limit, args.optimizer)
                res["median"] = statistics.median(res["times"])
                res["min"] = min(res["times"])
                row["lmmlite"] = res
                log(f"  lmmlite     {res['median']:.3f} s median of {len(res['times'])}, "
                    f"{res['nfev']} evaluations")
            except FitTimeout as exc:
                row["lmmlite"] = f"timeout ({exc})"
                log(f"  lmmlite     TIMEOUT ({exc})")
            except Exception as exc:  # report, keep going
                row["lmmlite"] = f"error ({type(exc).__name__}: {exc})"
                log(f"  lmmlite     ERROR {exc}")

        # lme4
        if r is None:
            row["lme4"] = r_reason
        elif remaining() < 5:
            row["lme4"] = "skipped (time budget)"
        else:
            limit = min(args.timeout, max(remaining(), 5))
            try:
                if rdata is None:
                    rdata = r.to_r(df)
                res = r.bench(m["formula"], rdata, m["REML"], repeats, warmup, limit)
                res["median"] = statistics.median(res["times"])
                res["min"] = min(res["times"])
                row["lme4"] = res
                log(f"  lme4        {res['median']:.3f} s median of {len(res['times'])}, "
                    f"{res['nfev']} evaluations")
            except Exception as exc:
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                row["lme4"] = ("timeout" if "time limit" in msg else "error") + f" ({msg})"
                log(f"  lme4        {row['lme4']}")

        # statsmodels
        if isinstance(m["sm"], str):
            row["statsmodels"] = m["sm"]
        elif not sm_ok:
            row["statsmodels"] = sm_info
        elif remaining() < 5:
            row["statsmodels"] = "skipped (time budget)"
        else:
            limit = min(args.timeout, max(remaining(), 5))
            try:
                res = bench_statsmodels(m, df, repeats, warmup, limit)
                res["median"] = statistics.median(res["times"])
                res["min"] = min(res["times"])
                row["statsmodels"] = res
                log(f"  statsmodels {res['median']:.3f} s median of {len(res['times'])}")
            except FitTimeout as exc:
                row["statsmodels"] = f"timeout ({exc})"
            except Exception as exc:
                row["statsmodels"] = f"error ({type(exc).__name__}: {exc})"
                log(f"  statsmodels ERROR {exc}")

        lm, l4, sm = row["lmmlite"], row["lme4"], row["statsmodels"]
        ok = lambda v: isinstance(v, dict)
        row["ratio_lme4"] = lm["median"] / l4["median"] if ok(lm) and ok(l4) and l4["median"] > 0 else None
        row["ratio_statsmodels"] = lm["median"] / sm["median"] if ok(lm) and ok(sm) else None
        row["crit_diff_lme4"] = lm["crit"] - l4["crit"] if ok(lm) and ok(l4) else None
        row["crit_diff_statsmodels"] = lm["crit"] - sm["crit"] if ok(lm) and ok(sm) else None

    # ---- report
    total = time.perf_counter() - t_begin
    print()
    print(table(rows))
    print()
    print("times: median wall-clock seconds per fit (lme4: timed inside R with proc.time()); "
          "peak MB: tracemalloc peak of one lmmlite fit;")
    print("Δcrit: lmmlite's REML criterion (ML deviance for the 73k models) minus the other's; "
          "nfev: lmmlite's deviance evaluations (incl. the checkConv")
    print("finite differences) / lme4's optimizer evaluations (optinfo$feval).")
    if r is None:
        print(f"lme4: {r_reason}")
    extra = notes(rows, skip=(r_reason,))
    if extra:
        print("notes:")
        print("\n".join(extra))
    print(f"total run time {total:.0f} s; load average {load_begin[0]:.2f} at start, "
          f"{os.getloadavg()[0]:.2f} at end ({os.cpu_count()} CPUs)")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import numpy, scipy, pandas
    env = {"python": sys.version.split()[0], "platform": platform.platform(),
           "cpus": os.cpu_count(), "numpy": numpy.__version__, "scipy": scipy.__version__,
           "pandas": pandas.__version__, "lmmlite": lmmlite.__version__,
           "statsmodels": sm_info if sm_ok else None,
           "lme4": r.version if r is not None else None,
           "lmmlite_optimizer": args.optimizer, "lmmlite_git": git_state(),
           "loadavg_begin": load_begin, "loadavg_end": os.getloadavg()}
    doc = {"created": _dt.datetime.now().isoformat(timespec="seconds"),
           "args": vars(args), "environment": env, "total_seconds": total,
           "method": {"time": "median wall-clock seconds per fit; small models after one "
                              "untimed warm-up fit",
                      "lme4_time": "proc.time() elapsed inside R around each lmer() call "
                                   "(data converted to R once, beforehand)",
                      "peak_mem": "tracemalloc peak (MiB) during one separate lmmlite fit "
                                  "(Python and numpy allocations; BLAS workspace not counted)",
                      "crit": "REML criterion for REML fits, deviance for ML fits; "
                              "statsmodels: -2 * llf",
                      "nfev": "lmmlite: all deviance evaluations incl. the convergence check; "
                              "lme4: optinfo$feval"},
           "models": rows}
    (out / "latest.json").write_text(json.dumps(doc, indent=1, default=float))
    png = plot(rows, out / "ratios.png")
    log(f"wrote {out / 'latest.json'}" + (f" and {png}" if png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
