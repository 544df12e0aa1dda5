#!/usr/bin/env python
"""Time one lmmlite model and measure its memory, in a process of its own.

    python benchmarks/lmmlite_bench.py DATA.pkl FORMULA REML OPTIMIZER REPEATS WARMUP LIMIT TRACE

run.py starts this once per model (``DATA.pkl``: the model's data frame, pickled by
run.py), so that the peak resident set size (RSS) is that of one model: the
process's high-water mark (Linux ``VmHWM``, else ``ru_maxrss``) after the timed
fits, which, unlike ``tracemalloc``, includes BLAS/LAPACK workspace and the
interpreter.  The RSS
before the first fit (Python, numpy, lmmlite and the data) is reported too.

Steps, each reported as one JSON line on stdout as soon as it is done (so that a
run stopped by the time limit keeps what it measured):

1. an untimed warm-up fit (small models only, ``WARMUP`` = 1);
2. ``REPEATS`` timed fits (fewer when they take more than a third of ``LIMIT``);
3. with ``TRACE`` = 1, one more fit under ``tracemalloc``: the peak of Python and
   numpy allocations (not BLAS workspace).  It is skipped, and said so, when the
   time left under ``LIMIT`` is under twice the median fit time.
"""

import json
import os
import pickle
import resource
import statistics
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lmmlite  # noqa: E402


def _proc_status_mb(field):
    """A memory field of /proc/self/status (Linux) in MiB, or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 2 ** 10      # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_now_mb():
    """Current resident set size (Linux; None elsewhere)."""
    return _proc_status_mb("VmRSS")


def rss_peak_mb():
    """This process's peak RSS so far.  On Linux VmHWM, the high-water mark of this
    program's memory: getrusage's ru_maxrss would not do in a child of run.py,
    since it keeps the parent's size at fork (R and all) across exec."""
    peak = _proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 2 ** 10


def emit(**kw):
    print(json.dumps(kw), flush=True)


def fit(df, formula, reml, optimizer):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lmmlite.lmer(formula, df, REML=reml, optimizer=optimizer)


def main(argv):
    path, formula, reml, optimizer, repeats, warmup, limit, trace = argv
    reml, repeats, warmup = reml == "1", int(repeats), warmup == "1"
    limit, trace = float(limit), trace == "1"
    df = pickle.loads(Path(path).read_bytes())
    t_start = time.perf_counter()
    emit(step="start", rss_base_mb=rss_now_mb(), rss_peak_before_fit_mb=rss_peak_mb())
    if warmup:
        fit(df, formula, reml, optimizer)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        m = fit(df, formula, reml, optimizer)
        times.append(time.perf_counter() - t0)
        emit(step="fit", time=times[-1], rss_peak_mb=rss_peak_mb(),
             crit=float(m.reml_criterion if reml else m.deviance), nfev=int(m.opt.nfev),
             optimizer=m.opt.method, theta=[float(t) for t in m.theta])
        if time.perf_counter() - t_start > limit / 3:
            break
    del m
    if trace:
        left = limit - (time.perf_counter() - t_start)
        if left < 2 * statistics.median(times):
            emit(step="trace", skipped=f"not run: {left:.0f} s left under the time limit, "
                                      f"a fit takes {statistics.median(times):.0f} s")
        else:
            tracemalloc.start()
            fit(df, formula, reml, optimizer)
            emit(step="trace", peak_mb=tracemalloc.get_traced_memory()[1] / 2 ** 20)
            tracemalloc.stop()
    emit(step="done")


if __name__ == "__main__":
    main(sys.argv[1:])
