"""Step 1 of the plasma reconstruction: the 8 group means and the pooled sums.

The two lm fits and the random-intercept lmer print 57 numbers (plasma.PRINTED,
keys "m0 ...", "m1 ...", "mm ...") that depend on the data only through 11
numbers z = (mean age of groups 1-4, mean conc of groups 1-4, Wxx, Wxy, Wyy),
the pooled within-group sums of squares and products (10 rows per group).

1. A start from the printed numbers in closed form: lm(conc ~ age + group)
   gives Wxx = (σ/SE_age)², Wxy = b_age Wxx, Wyy = 35 σ² + Wxy²/Wxx and, from
   each group contrast's SE² = σ²(2/10 + d_g²/Wxx), |d_g| = |x̄_g - x̄_1|;
   lm(conc ~ age) gives the overall mean age from SE(Intercept)² = σ²(1/40 +
   x̄²/Sxx) with Sxx = (σ/SE_age)²; the signs of d_g are the combination whose
   between-group sum 10 Σ(x̄_g - x̄)² is closest to Sxx - Wxx; the mean conc of
   group g is the lm fit at its mean age.
2. The minimax iteration (_minimax.minimax): every printed number an interval
   constraint at its rounding, the worst margin minimized by sequential LP.
"""
import itertools

import numpy as np
import pandas as pd

import plasma
from _minimax import minimax

N_PER_GROUP = 10
KEYS = [key for _, _, key in plasma.PRINTED if key.split()[0] in ("m0", "m1", "mm")]


def rows_from_stats(xm, ym, wxx, wxy, wyy, n=N_PER_GROUP):
    """A data frame with n rows per group having exactly these group means and within sums.

    Within group g: age = x̄_g + √wxx e1, conc = ȳ_g + (wxy/√wxx) e1 + √(wyy - wxy²/wxx) e2,
    with e1, e2 orthonormal and orthogonal to the ones (fixed polynomial contrasts)."""
    t = np.arange(n) - (n - 1) / 2
    e1 = t / np.linalg.norm(t)
    e2 = t * t - (t * t).mean()
    e2 = e2 / np.linalg.norm(e2)
    parts = []
    for g in range(len(xm)):
        rest = np.sqrt(max(wyy[g] - wxy[g] ** 2 / wxx[g], 0.0))
        parts.append(pd.DataFrame({"group": g + 1, "age": xm[g] + np.sqrt(wxx[g]) * e1,
                                   "conc": ym[g] + wxy[g] / np.sqrt(wxx[g]) * e1 + rest * e2}))
    return pd.concat(parts, ignore_index=True)


def stats_of(z, wxx=None, wxy=None, wyy=None):
    """Group statistics (plasma.group_stats layout) from z; within sums split equally unless given."""
    k = 4
    split = lambda w, total: np.full(k, total / k) if w is None else np.asarray(w, float)  # noqa: E731
    return dict(n=np.full(k, float(N_PER_GROUP)), xm=np.asarray(z[:k]), ym=np.asarray(z[k:2 * k]),
                wxx=split(wxx, z[8]), wxy=split(wxy, z[9]), Wyy=z[10], wyy=split(wyy, z[10]))


def printed(name):
    return float(next(txt for _, txt, key in plasma.PRINTED if key == name))


def start():
    """The closed-form start of step 1 (see the module docstring)."""
    s1, Wxx = printed("m1 sigma"), (printed("m1 sigma") / printed("m1 se1")) ** 2
    Wxy = printed("m1 b1") * Wxx
    Wyy = 35 * s1 ** 2 + Wxy ** 2 / Wxx
    Sxx = (printed("m0 sigma") / printed("m0 se1")) ** 2
    xbar = np.sqrt(Sxx * ((printed("m0 se0") / printed("m0 sigma")) ** 2 - 1 / 40))
    d = np.array([np.sqrt(Wxx * ((printed(f"m1 se{g}") / s1) ** 2 - 0.2)) for g in (2, 3, 4)])
    best = None
    for signs in itertools.product((-1, 1), repeat=3):
        dg = np.r_[0.0, np.array(signs) * d]
        xm = xbar + dg - dg.mean()
        gap = abs(N_PER_GROUP * ((xm - xbar) ** 2).sum() - (Sxx - Wxx))
        if best is None or gap < best[0]:
            best = (gap, xm)
    xm = best[1]
    effects = np.r_[0.0, [printed(f"m1 b{g}") for g in (2, 3, 4)]]
    ym = printed("m1 b0") + effects + printed("m1 b1") * xm
    return np.r_[xm, ym, Wxx, Wxy, Wyy]


class Step1:
    """Margins of the 57 printed numbers as a function of z.  (mm's Newton always starts
    from plasma.THETA0: a warm start would make the result depend on the call history.)"""

    def values(self, z):
        s = stats_of(z)
        v, _ = plasma.lm_values(rows_from_stats(s["xm"], s["ym"], s["wxx"], s["wxy"], s["wyy"]))
        v.update(plasma.lmm_values(s, "mm")[0])
        return v

    def margins(self, z):
        return plasma.margins(self.values(z), KEYS)


def solve(log=print):
    """Run step 1; returns (z, worst margin)."""
    z0 = start()
    problem = Step1()
    if log:
        log(f"step 1: start from the printed numbers, worst margin {np.max(np.abs(problem.margins(z0))):.3f}")
    scale = np.r_[np.full(8, 1.0), 100.0, 100.0, 100.0]
    report = (lambda it, w, r, st: log(f"   iteration {it:3d}: worst margin {w:.6f} (radius {r:.1e})")) if log else None
    z, worst, it = minimax(problem.margins, z0, scale, radius=1e-3, log=report)
    if log:
        log(f"step 1: {it} iterations, worst margin {worst:.6f} half rounding units")
    return z, worst
