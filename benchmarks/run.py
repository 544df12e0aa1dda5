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
import pickle
import signal
import statistics
import subprocess
import sys
import tempfile
import time
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
                 "columns; a 5,000-row subset of the InstEval-shaped model did not finish in 300 s)")

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
    dict(name="movielens_100k_200k", label="MovieLens-100k-shaped 200k, ML",
         formula="y ~ x + (1|user) + (1|item)", data=datasets.movielens_100k_200k, REML=False,
         big=True, sm=SM_CROSSED_NA),
    dict(name="movielens_200k", label="MovieLens-shaped 200k, ML",
         formula="y ~ x + (1|user) + (1|item)", data=datasets.movielens_200k, REML=False,
         big=True, lme4_limit="lme4_timeout", sm=SM_CROSSED_NA),
    dict(name="movielens_1m", label="MovieLens-1M-shaped 1M, ML",
         formula="y ~ x + (1|user) + (1|item)", data=datasets.movielens_1m, REML=False,
         big=True, huge=True, lme4_limit="lme4_timeout_1m", sm=SM_CROSSED_NA),
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

def bench_lmmlite(m, df, repeats, warmup, limit, optimizer):
    """Time and measure one model in a child process (lmmlite_bench.py), so that its
    peak RSS is that model's alone; the child's JSON lines survive a timeout."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.pkl"
        data.write_bytes(pickle.dumps(df))
        cmd = [sys.executable, str(HERE / "lmmlite_bench.py"), str(data), m["formula"],
               str(int(m["REML"])), optimizer, str(repeats), str(int(warmup)), str(limit), "1"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=limit + 30)  # + start-up and data loading
            timed_out = False
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            timed_out = True
    steps = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    fits = [s for s in steps if s["step"] == "fit"]
    if not fits:
        if timed_out:
            raise FitTimeout(f"exceeded {limit:.0f} s")
        raise RuntimeError(err.strip().splitlines()[-1] if err.strip() else "child failed")
    last = fits[-1]
    start = steps[0]
    res = {"times": [s["time"] for s in fits], "crit": last["crit"], "nfev": last["nfev"],
           "optimizer": last["optimizer"], "theta": last["theta"],
           "rss_base_mb": start["rss_base_mb"], "peak_rss_mb": last["rss_peak_mb"]}
    trace = next((s for s in steps if s["step"] == "trace"), None)
    if trace is None:
        res["peak_mem_note"] = ("not run: time limit reached" if timed_out
                                else "not run: the child stopped early")
    elif "peak_mb" in trace:
        res["peak_mem_mb"] = trace["peak_mb"]
    else:
        res["peak_mem_note"] = trace["skipped"]
    return res


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

def status_word(v):
    """The table cell of an engine that has no time: n/a, skipped, timeout or error
    (the notes under the table give the reason)."""
    return v.split(" ", 1)[0] if isinstance(v, str) and v else "n/a"


def fmt_s(x):
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def fmt_t(r, bound=None):
    if isinstance(r, dict):
        return fmt_s(r["median"])
    # a timeout is a lower bound on the time
    return f">{bound:.0f}" if bound is not None else status_word(r)


def fmt_ratio(x, upper=None):
    if x is None and upper is not None:   # an upper bound: one significant digit below 0.01
        return f"<{upper:.2f}" if upper >= 0.01 else f"<{upper:.1g}"
    return "n/a" if x is None else f"{x:.2f}"


def fmt_mb(lm, key):
    return f"{lm[key]:.0f}" if isinstance(lm, dict) and lm.get(key) is not None else "n/a"


def fmt_diff(x):
    return "n/a" if x is None else f"{x:+.1e}"


def table(rows):
    head = ["model", "n", "lmmlite s", "lme4 s", "statsm. s", "lmm/lme4", "lmm/sm",
            "trace MB", "RSS MB", "Δcrit lme4", "Δcrit sm", "nfev lmm/lme4"]
    lines = []
    for r in rows:
        lm, l4, sm = r["lmmlite"], r["lme4"], r["statsmodels"]
        nfev = "n/a"
        if isinstance(lm, dict):
            nfev = f"{lm['nfev']}/" + (f"{l4['nfev']}" if isinstance(l4, dict) else "n/a")
        trace = (f"{lm['peak_mem_mb']:.1f}" if isinstance(lm, dict) and "peak_mem_mb" in lm
                 else "n/a")
        bound = r.get("lme4_timeout_s")
        lines.append([r["label"], f"{r['nobs']:,}" if r["nobs"] else "n/a", fmt_t(lm),
                      fmt_t(l4, bound), fmt_t(sm),
                      fmt_ratio(r["ratio_lme4"], r.get("ratio_lme4_below")),
                      fmt_ratio(r["ratio_statsmodels"]), trace, fmt_mb(lm, "peak_rss_mb"),
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
            elif isinstance(v, dict) and v.get("peak_mem_note"):
                out.append(f"  {r['label']}: lmmlite tracemalloc peak {v['peak_mem_note']}")
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

def merge_reference(doc, path, command):
    """Put this run's model rows into the stored reference run at ``path``, in place of
    the rows of the same models; every ratio stays within one run (lmmlite and lme4 of a
    model are always timed together).  The entry ``merged`` lists each merge: when, which
    models, the commit and the load average."""
    ref = json.loads(path.read_text())
    fresh = {r["name"]: r for r in doc["models"]}
    ref["models"] = [fresh.get(r["name"], r) for r in ref["models"]]
    known = {r["name"] for r in ref["models"]}
    ref["models"] += [r for r in doc["models"] if r["name"] not in known]
    for key in ("statsmodels", "lme4"):     # an engine the stored run lacked, this one had
        if ref["environment"].get(key) is None and doc["environment"].get(key) is not None:
            ref["environment"][key] = doc["environment"][key]
    ref.setdefault("merged", []).append({
        "created": doc["created"], "models": sorted(fresh), "command": command,
        "lmmlite_git": doc["environment"]["lmmlite_git"],
        "statsmodels": doc["environment"]["statsmodels"], "lme4": doc["environment"]["lme4"],
        "loadavg_begin": doc["environment"]["loadavg_begin"],
        "loadavg_end": doc["environment"]["loadavg_end"]})
    path.write_text(json.dumps(ref, indent=1, default=float))
    log(f"merged {', '.join(sorted(fresh))} into {path}")


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
    ap.add_argument("--quick", action="store_true",
                    help="skip the big models (73k, 200k and 1M rows)")
    ap.add_argument("--no-r", action="store_true", help="do not use R/lme4")
    ap.add_argument("--repeats", type=int, default=7,
                    help="timed repeats for small models (default 7; the big models get at most 3)")
    ap.add_argument("--big-repeats", type=int, default=2,
                    help="timed repeats for the 73k and 200k models (1-3, default 2; 1M: 1)")
    ap.add_argument("--budget", type=float, default=5400,
                    help="soft cap on the total run time in seconds (default 5400); a fit "
                         "that it cuts short or skips says so in the table")
    ap.add_argument("--timeout", type=float, default=300,
                    help="time limit for one engine on one model in seconds (default 300)")
    ap.add_argument("--lme4-timeout", type=float, default=1800,
                    help="time limit for lme4 on the 200k-row model (default 1800 s: lme4 "
                         "needs many minutes there)")
    ap.add_argument("--lme4-timeout-1m", type=float, default=600,
                    help="time limit for lme4 on the 1M-row model (default 600 s; it "
                         "needs far longer)")
    ap.add_argument("--optimizer", default="auto", help="lmmlite optimizer (auto, bobyqa, lbfgsb)")
    ap.add_argument("--only", nargs="*", help="model names to run (default: all)")
    ap.add_argument("--skip", nargs="*", default=[], help="model names not to run")
    ap.add_argument("--out", default=str(RESULTS), help="output directory")
    ap.add_argument("--save-reference", action="store_true",
                    help="also store this run as benchmarks/reference.json (the book's "
                         "fallback), with a 'reference' entry saying when and where")
    ap.add_argument("--merge-reference", action="store_true",
                    help="replace the models of this run (e.g. --only the small ones, after "
                         "a change that affects them) in benchmarks/reference.json, keeping "
                         "the other models of the stored run; the entry 'merged' records it")
    args = ap.parse_args(argv)
    t_begin = time.perf_counter()
    load_begin = os.getloadavg()
    deadline = t_begin + args.budget

    def remaining():
        return deadline - time.perf_counter()

    def limit_for(base):
        """An engine's time limit on one model, and a note when the budget cut it."""
        left = remaining()
        if left >= base:
            return base, ""
        return max(left, 5), f"; cut from {base:.0f} s by --budget {args.budget:.0f}"

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

    names = {m["name"] for m in MODELS}
    unknown = [n for n in (args.only or []) + args.skip if n not in names]
    if unknown:
        ap.error(f"unknown model name(s) {', '.join(unknown)}: use {', '.join(sorted(names))}")
    models = [m for m in MODELS if not (args.quick and m["big"]) and m["name"] not in args.skip]
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
        repeats = (1 if m.get("huge") else max(1, min(args.big_repeats, 3))) if m["big"] \
            else max(args.repeats, 1)
        warmup = not m["big"]

        # lmmlite
        if remaining() < 5:
            row["lmmlite"] = f"skipped (time budget: --budget {args.budget:.0f} s used up)"
        else:
            limit, cut = limit_for(args.timeout)
            try:
                res = bench_lmmlite(m, df, repeats, warmup, limit, args.optimizer)
                res["median"] = statistics.median(res["times"])
                res["min"] = min(res["times"])
                row["lmmlite"] = res
                log(f"  lmmlite     {res['median']:.3f} s median of {len(res['times'])}, "
                    f"{res['nfev']} evaluations")
            except FitTimeout as exc:
                row["lmmlite"] = f"timeout ({exc}{cut})"
                log(f"  lmmlite     {row['lmmlite']}")
            except Exception as exc:  # report, keep going
                row["lmmlite"] = f"error ({type(exc).__name__}: {exc})"
                log(f"  lmmlite     ERROR {exc}")

        # lme4
        if r is None:
            row["lme4"] = r_reason
        elif remaining() < 5:
            row["lme4"] = f"skipped (time budget: --budget {args.budget:.0f} s used up)"
        else:
            limit, cut = limit_for(getattr(args, m.get("lme4_limit", "timeout")))
            lme4_limit = limit
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
                # R's message may put "reached elapsed time limit" on its second line
                row["lme4"] = (f"timeout (exceeded {limit:.0f} s{cut})" if "time limit" in str(exc)
                               else f"error ({msg})")
                log(f"  lme4        {row['lme4']}")

        # statsmodels
        if isinstance(m["sm"], str):
            row["statsmodels"] = m["sm"]
        elif not sm_ok:
            row["statsmodels"] = sm_info
        elif remaining() < 5:
            row["statsmodels"] = f"skipped (time budget: --budget {args.budget:.0f} s used up)"
        else:
            limit, cut = limit_for(args.timeout)
            try:
                res = bench_statsmodels(m, df, repeats, warmup, limit)
                res["median"] = statistics.median(res["times"])
                res["min"] = min(res["times"])
                row["statsmodels"] = res
                log(f"  statsmodels {res['median']:.3f} s median of {len(res['times'])}")
            except FitTimeout as exc:
                row["statsmodels"] = f"timeout ({exc}{cut})"
            except Exception as exc:
                row["statsmodels"] = f"error ({type(exc).__name__}: {exc})"
                log(f"  statsmodels ERROR {exc}")

        lm, l4, sm = row["lmmlite"], row["lme4"], row["statsmodels"]
        ok = lambda v: isinstance(v, dict)
        row["ratio_lme4"] = lm["median"] / l4["median"] if ok(lm) and ok(l4) and l4["median"] > 0 else None
        row["ratio_statsmodels"] = lm["median"] / sm["median"] if ok(lm) and ok(sm) else None
        row["crit_diff_lme4"] = lm["crit"] - l4["crit"] if ok(lm) and ok(l4) else None
        row["crit_diff_statsmodels"] = lm["crit"] - sm["crit"] if ok(lm) and ok(sm) else None
        if isinstance(l4, str) and l4.startswith("timeout"):
            # lme4 took longer than its limit: the ratio is below lmmlite's time / limit
            row["lme4_timeout_s"] = lme4_limit
            if ok(lm):
                row["ratio_lme4_below"] = lm["median"] / lme4_limit

    # ---- report
    total = time.perf_counter() - t_begin
    print()
    print(table(rows))
    print()
    print("times: median wall-clock seconds per fit (lme4: timed inside R with proc.time()); "
          "trace MB: tracemalloc peak of one lmmlite fit;")
    print("RSS MB: peak resident set size of the child process that ran the lmmlite fits "
          "(interpreter, data and BLAS workspace included);")
    print("Δcrit: lmmlite's REML criterion (ML deviance for the ML fits) minus the other's; "
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
                      "peak_rss": "peak RSS (MiB; Linux VmHWM) of the child process that ran the timed "
                                  "lmmlite fits (before the tracemalloc fit): interpreter, "
                                  "libraries, data and BLAS workspace; rss_base_mb is its "
                                  "RSS before the first fit",
                      "crit": "REML criterion for REML fits, deviance for ML fits; "
                              "statsmodels: -2 * llf",
                      "nfev": "lmmlite: all deviance evaluations incl. the convergence check; "
                              "lme4: optinfo$feval"},
           "models": rows}
    (out / "latest.json").write_text(json.dumps(doc, indent=1, default=float))
    if args.save_reference:
        doc["reference"] = {
            "date": doc["created"][:10],
            "machine": f"{os.cpu_count()} cores, {platform.platform()}; load average "
                       f"{load_begin[0]:.2f} at start",
            "command": "python benchmarks/run.py " + " ".join(argv if argv is not None
                                                              else sys.argv[1:]),
            "note": "stored copy of results/latest.json of one run; the book's benchmark "
                    "appendix shows it when no fresh results/latest.json exists "
                    "(regenerate: python benchmarks/run.py --save-reference)"}
        (HERE / "reference.json").write_text(json.dumps(doc, indent=1, default=float))
        log(f"wrote {HERE / 'reference.json'}")
    if args.merge_reference:
        merge_reference(doc, HERE / "reference.json",
                        "python benchmarks/run.py " + " ".join(argv if argv is not None
                                                               else sys.argv[1:]))
    png = plot(rows, out / "ratios.png")
    log(f"wrote {out / 'latest.json'}" + (f" and {png}" if png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
