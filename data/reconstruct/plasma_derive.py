#!/usr/bin/env python
"""Derive the plasma data set from the slides' printed numbers, then verify it.

    python data/reconstruct/plasma_derive.py [out.csv] [--write]   (from the repository root)

Writes the derived rows to ``out.csv`` (default: plasma_derived.csv in the
system's temporary directory; with --write: data/plasma.csv), then runs
plasma.py's verification on them.  Deterministic (seeded), no network, no R.

1. plasma_step1: the 8 group means and the pooled within-group sums Wxx, Wxy,
   Wyy, by a minimax sequential LP over the 57 printed numbers of both lm fits
   and the random-intercept lmer (~20 s);
2. plasma_split: the per-group split of Wxx and Wxy whose exact REML optimum of
   lmer(conc ~ age + (1 + age | group)) prints the slide's 15 numbers, from
   seeded Latin-hypercube starts (~1-3 min);
3. plasma_place: 10 points per group keeping every per-group sum and hitting
   the four residual-quantile lines (~1 min).
"""
import sys
import tempfile
import time
import warnings
from pathlib import Path

import plasma
import plasma_place
import plasma_split
import plasma_step1


def derive(log=print):
    """The derived data frame, its step-1 constants and the worst margin of each step."""
    wall, cpu = time.time(), time.process_time()
    clock = lambda: log(f"   ({time.time() - wall:.0f} s wall, {time.process_time() - cpu:.0f} s CPU so far)")  # noqa: E731
    z1, worst1 = plasma_step1.solve(log=log)
    clock()
    s = plasma_step1.stats_of(z1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)    # log/sqrt of trial points off the domain
        wxx, wxy, theta, worst2 = plasma_split.solve(s, log=log)
    clock()
    s.update(wxx=wxx, wxy=wxy)
    df, worst3 = plasma_place.place(s, theta, log=log)
    clock()
    return df, z1, (worst1, worst2, worst3)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    write = "--write" in argv
    paths = [a for a in argv if a != "--write"]
    out = plasma.CSV if write else Path(paths[0] if paths else Path(tempfile.gettempdir()) / "plasma_derived.csv")
    df, z1, worst = derive()
    df.to_csv(out, index=False)
    print(f"wrote {out}; worst margins: step 1 {worst[0]:.4f}, step 2 {worst[1]:.4f}, "
          f"step 3 {worst[2]:.1e} (half rounding units)")
    print("verification (plasma.py) of the derived rows:")
    return 1 if plasma.verify(plasma.pd.read_csv(out), z1) else 0


if __name__ == "__main__":
    sys.exit(main())
