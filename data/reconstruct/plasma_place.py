"""Step 3 of the plasma reconstruction: 10 points per group.

Every per-group sum is kept exactly by construction: within group g,

    age  = x̄_g + √wxx_g e1,   conc = ȳ_g + (wxy_g/√wxx_g) e1 + √(wyy_g - wxy_g²/wxx_g) e2,

with e1, e2 orthonormal and orthogonal to the ones (the Gram-Schmidt images of
two free vectors a_g, b_g), and wyy_g = wxy_g²/wxx_g + a share of what the pooled
Wyy leaves (shares by a softmax of 4 free numbers).  The four fits (both lm,
mm, mm2) depend on the data only through these sums, so their coefficients,
random effects and σ are fixed before any point is placed, and each fit's
residuals are affine in the rows.  What is left to hit are the four printed
residual-quantile lines (R's type-7 min, Q1, median, Q3, max: 20 numbers):
minimum-norm Gauss-Newton on their margins (half rounding units) over the free
vectors, from seeded normal draws, with the targets moved in stages from the
draws' quantiles to the printed ones (a homotopy: each stage changes the ranking
only a little), until every margin is below 1e-6.
"""
import numpy as np
import pandas as pd

import plasma
from _lmm import quantile7

N = 10


def _unit(v, against):
    """v made orthogonal to the columns of ``against`` (orthonormal) and normalized."""
    v = v - against @ (against.T @ v)
    return v / np.linalg.norm(v)


class Placement:
    """Rows as a function of the free numbers, and the quantile margins of the four fits."""

    def __init__(self, s, fits):
        self.s, self.fits = s, fits        # fits: name -> (intercepts per group, slopes per group, scale)
        self.k = len(s["xm"])
        self.room = s["Wyy"] - np.sum(s["wxy"] ** 2 / s["wxx"])
        if self.room <= 0:
            raise ValueError("the split leaves no residual sum of squares")
        self.targets = {name: np.array(line.split(), float) for name, line in plasma.QUANTILES.items()}
        self.half = {name: np.array([plasma.half_unit(t) for t in line.split()])
                     for name, line in plasma.QUANTILES.items()}

    def rows(self, p):
        s, k = self.s, self.k
        shares = np.exp(p[-k:]) / np.exp(p[-k:]).sum()
        ones = np.full((N, 1), 1 / np.sqrt(N))
        ages, concs = [], []
        for g in range(k):
            a, b = p[2 * N * g:2 * N * g + N], p[2 * N * g + N:2 * N * (g + 1)]
            e1 = _unit(a, ones)
            e2 = _unit(b, np.column_stack([ones, e1]))
            rest = np.sqrt(shares[g] * self.room)
            ages.append(s["xm"][g] + np.sqrt(s["wxx"][g]) * e1)
            concs.append(s["ym"][g] + s["wxy"][g] / np.sqrt(s["wxx"][g]) * e1 + rest * e2)
        return np.concatenate(ages), np.concatenate(concs)

    def residuals(self, age, conc):
        g = np.repeat(np.arange(self.k), N)
        return {name: (conc - c0[g] - c1[g] * age) / scale for name, (c0, c1, scale) in self.fits.items()}

    def quantiles(self, p):
        res = self.residuals(*self.rows(p))
        return {name: quantile7(res[name]) for name in self.targets}

    def margins(self, p, targets=None):
        targets = self.targets if targets is None else targets
        q = self.quantiles(p)
        return np.concatenate([(q[name] - targets[name]) / self.half[name] for name in self.targets])

    def frame(self, p):
        age, conc = self.rows(p)
        return pd.DataFrame({"group": np.repeat(np.arange(1, self.k + 1), N), "age": age, "conc": conc})


def fits_of(s, theta_mm2):
    """Each fit's per-group intercept and slope of its fitted line, and its residual scale
    (1 for lm: summary.lm prints raw residuals; σ for lmer: scaled residuals)."""
    k = len(s["xm"])
    Wxx, Wxy = s["wxx"].sum(), s["wxy"].sum()
    bw = Wxy / Wxx                                         # lm(conc ~ age + group): within slope
    m1 = (s["ym"] - bw * s["xm"], np.full(k, bw), 1.0)
    xbar, ybar = s["xm"].mean(), s["ym"].mean()            # equal group sizes
    Sxx = Wxx + N * np.sum((s["xm"] - xbar) ** 2)
    Sxy = Wxy + N * np.sum((s["xm"] - xbar) * (s["ym"] - ybar))
    b0 = Sxy / Sxx
    m0 = (np.full(k, ybar - b0 * xbar), np.full(k, b0), 1.0)
    _, _, _, f = plasma.lmm_values(s, "mm")
    mm = (f["beta"][0] + f["ranef"][:, 0], np.full(k, f["beta"][1]), f["sigma"])
    _, _, th, f2 = plasma.lmm_values(s, "mm2", theta_mm2)
    mm2 = (f2["beta"][0] + f2["ranef"][:, 0], f2["beta"][1] + f2["ranef"][:, 1], f2["sigma"])
    return {"m0": m0, "m1": m1, "mm": mm, "mm2": mm2}


def gauss_newton(f, p, tol=1e-3, maxit=200):
    """Minimum-norm Gauss-Newton for the underdetermined f(p) = 0, with step halving on ||f||.

    The type-7 quantiles are continuous and piecewise linear in the sorted residuals, so
    each Jacobian (forward differences) is that of the current ranking's smooth piece."""
    m = f(p)
    for it in range(maxit):
        if np.max(np.abs(m)) < tol:
            break
        h = 1e-7 * np.maximum(1.0, np.abs(p))
        J = np.column_stack([(f(p + np.eye(len(p))[i] * h[i]) - m) / h[i] for i in range(len(p))])
        dp = -np.linalg.lstsq(J, m, rcond=1e-7)[0]       # drop near-null directions
        t = 1.0
        while t > 1e-8:
            mt = f(p + t * dp)
            if mt @ mt < m @ m:
                break
            t /= 2
        else:
            break
        p, m = p + t * dp, mt
    return p, it


def place(s, theta_mm2, seed=16, steps=40, log=print):
    """Rows with the sums of ``s`` whose four residual-quantile lines print as on the slides."""
    problem = Placement(s, fits_of(s, theta_mm2))
    p0 = np.r_[np.random.default_rng(seed).standard_normal(2 * N * problem.k), np.zeros(problem.k)]
    if log:
        log(f"step 3: start (seeded draws), worst quantile margin {np.max(np.abs(problem.margins(p0))):.1f}")
    # homotopy: the targets move in ``steps`` stages from the start's quantiles to the
    # printed ones, so that each stage's solve changes the ranking only a little
    q0, p, total = problem.quantiles(p0), p0, 0
    for lam in np.linspace(0, 1, steps + 1)[1:]:
        goal = {name: (1 - lam) * q0[name] + lam * problem.targets[name] for name in q0}
        p, it = gauss_newton(lambda x: problem.margins(x, goal), p)
        total += it
    p, it = gauss_newton(problem.margins, p, tol=1e-6)
    worst = np.max(np.abs(problem.margins(p)))
    if log:
        log(f"step 3: {total + it} Gauss-Newton steps in {steps} stages, worst quantile margin {worst:.2e}")
    return problem.frame(p), worst
