"""Step 2 of the plasma reconstruction: the per-group split of the within-group sums.

With the group means and pooled sums of step 1 fixed, the random-slope fit
lmer(conc ~ age + (1 + age | group)) depends on the data only through the
split of Wxx and Wxy over the 4 groups: u = (wxx_1..3, wxy_1..3), group 4
taking the rest.  Its 15 printed numbers (plasma.PRINTED, keys "mm2 ...") must
print at the EXACT REML optimum, the root of the score equations ∇d(θ; u) = 0.

Unknowns z = (u, θ).  The criterion is _lmm.Grouped's closed form (exact,
complex-step gradient).  Starts: a seeded Latin hypercube over plausible splits
(each group's share of Wxx, each group's within slope wxy_g/wxx_g), θ from the
printed variance components.  Each start is moved onto the score equations by
Gauss-Newton in u at fixed θ (Split.project: the equations are well conditioned
in u, while θ at fixed u is nearly flat in one direction), then fitted by
constrained Levenberg-Marquardt (_minimax.least_squares_eq) with the rounding
intervals relaxed (RELAX: widths rel·|printed value|) and tightened step by step,
and finally by the minimax iteration (_minimax.minimax): the 15 printed numbers
linearized as interval constraints at their rounding, the 3 score equations as
equalities, the LP step that minimizes the worst margin inside a trust region,
and a projection back onto the score equations after every step.  The starts
are tried in order until one reaches a worst margin below 1.
"""
import numpy as np
from scipy.stats import qmc

import plasma
from _lmm import Grouped
from _minimax import jacobian, least_squares_eq, minimax

KEYS = [key for _, _, key in plasma.PRINTED if key.startswith("mm2 ")]
SCALE = np.r_[np.full(6, 100.0), 7.0, 0.05, 0.05]
# |printed value| / half rounding unit of each of the 15 numbers
WIDEN = np.array([abs(float(txt)) / plasma.half_unit(txt) for _, txt, key in plasma.PRINTED
                  if key in KEYS])
RELAX = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 0.0)


class Split:
    """The random-slope fit as a function of z = (u, θ), for fixed step-1 statistics ``s``."""

    def __init__(self, s):
        self.s = s

    def sums(self, u):
        """(wxx, wxy) of the 4 groups from the 6 free numbers u."""
        wxx = np.r_[u[:3], self.s["wxx"].sum() - np.sum(u[:3])]
        wxy = np.r_[u[3:6], self.s["wxy"].sum() - np.sum(u[3:6])]
        return wxx, wxy

    def model(self, u):
        wxx, wxy = self.sums(u)
        s = self.s
        return Grouped(s["n"], s["xm"], s["ym"], wxx, wxy, s["Wyy"], [0, 1])

    def plausible(self, u):
        """Every wxx_g > 0 and room left for residuals: Σ wxy_g²/wxx_g < Wyy."""
        wxx, wxy = self.sums(u)
        return bool(np.all(wxx > 0) and np.sum(wxy ** 2 / wxx) < 0.9 * self.s["Wyy"])

    def margins(self, z, rel=0.0):
        """Margins of the 15 numbers in half rounding units, or in units of ``rel`` times the
        printed value where that is wider (the relaxed problems of the continuation)."""
        v, _ = plasma.fit_values(self.model(z[:6]), z[6:], "mm2")
        return plasma.margins(v, KEYS) / np.maximum(1.0, rel * WIDEN)

    def score(self, z):
        return self.model(z[:6]).gradient(z[6:])

    def project(self, z, tol=1e-11, maxit=30):
        """z moved onto the score equations ∇d(θ; u) = 0 by changing u at fixed θ
        (minimum-norm Gauss-Newton steps in scaled u): the equations are well
        conditioned in u, while θ at fixed u is nearly flat in one direction.
        None if the split leaves the plausible region or Newton fails."""
        z = np.asarray(z, float).copy()
        th = z[6:]
        if not self.plausible(z[:6]):
            return None
        prev = np.inf
        for _ in range(maxit):
            c = self.model(z[:6]).gradient(th)
            size = np.max(np.abs(c))
            if size < tol or (size < 1e-9 and size > 0.5 * prev):   # converged, or at round-off
                return z
            prev = size
            G = jacobian(lambda u: self.model(u).gradient(th), z[:6], 1e-6 * SCALE[:6]) * SCALE[:6]
            du = np.linalg.lstsq(G, c, rcond=None)[0] * SCALE[:6]
            while not self.plausible(z[:6] - du):        # halve steps that leave the region
                du /= 2
                if np.max(np.abs(du)) < 1e-12:
                    return None
            z[:6] -= du
        return None


def starts(s, count, seed=16):
    """``count`` plausible splits from a seeded Latin hypercube: each group's share of Wxx
    from a weight in [0.2, 1] (normalized), the within slopes wxy_g/wxx_g of groups 1-3
    in [-4, 0] (group 4 takes the pooled rest)."""
    sampler = qmc.LatinHypercube(d=7, seed=seed)
    pts = qmc.scale(sampler.random(8 * count), [0.2] * 4 + [-4] * 3, [1] * 4 + [0] * 3)
    Wxx, out = s["wxx"].sum(), []
    split = Split(s)
    for p in pts:
        wxx = p[:3] / np.sum(p[:4]) * Wxx
        u = np.r_[wxx, wxx * p[4:7]]
        if split.plausible(u):
            out.append(u)
        if len(out) == count:
            break
    return out


def theta_printed():
    """θ from the printed variance components: Λ = chol(Σ / σ²), lme4's column-major θ."""
    val = {key: float(txt) for _, txt, key in plasma.PRINTED}
    v0, v1, s2 = val["mm2 v0"], val["mm2 v1"], val["mm2 s2"]
    L = np.linalg.cholesky(np.array([[v0, val["mm2 rcorr"] * np.sqrt(v0 * v1)],
                                     [val["mm2 rcorr"] * np.sqrt(v0 * v1), v1]]) / s2)
    return np.array([L[0, 0], L[1, 0], L[1, 1]])


def fit_start(split, u, log=None):
    """From split u and θ of the printed variance components: u onto the score
    equations (Split.project), then constrained least squares of the margins
    through the relaxations RELAX (widths rel·|printed| where wider than the rounding),
    then the minimax iteration on the exact problem.  Returns (z, worst margin)."""
    z = split.project(np.r_[u, theta_printed()])
    if z is None:
        return None, np.inf
    for rel in RELAX:
        z, cost, it = least_squares_eq(lambda w: split.margins(w, rel), z, SCALE, split.score,
                                       split.project, maxit=40)
        if log:
            log(f"      rel {rel:.0e}: {it} LM steps, worst {np.max(np.abs(split.margins(z))):.4g}")
    z, worst, it = minimax(split.margins, z, SCALE, eq=split.score, project=split.project,
                           radius=1e-3, maxit=60)
    return z, worst


def solve(s, count=30, log=print):
    """Run step 2: the starts in order until one reaches worst margin < 1.

    Returns (wxx, wxy, θ, worst margin) of the first such start (or of the best one)."""
    split = Split(s)
    best = (None, np.inf)
    for k, u in enumerate(starts(s, count)):
        z, worst = fit_start(split, u)
        if log:
            log(f"   start {k:2d}: worst margin {worst:.6g}")
        if worst < best[1]:
            best = (z, worst)
        if worst < 1:
            break
    z, worst = best
    wxx, wxy = split.sums(z[:6])
    if log:
        log(f"step 2: split wxx {np.array2string(wxx, precision=6)}, wxy {np.array2string(wxy, precision=6)},"
            f" θ {np.array2string(z[6:], precision=9)}; worst margin {worst:.6f}")
    return wxx, wxy, z[6:], worst
