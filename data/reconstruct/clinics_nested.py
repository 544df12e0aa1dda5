#!/usr/bin/env python
"""Reconstruct data/clinics_nested.csv (Mixed Models II, nested design).

Published (lme4, REML):

    lmer(y ~ x + (1 | region/clinic), data = data_int_nested)
    REML criterion at convergence: 1689.8
    Scaled residuals: -2.57686 -0.54281 -0.05204 0.44631 3.07737
     clinic:region (Intercept)  473.98  21.771
     region        (Intercept) 2765.06  52.584
     Residual                    50.84   7.131
    Number of obs: 240, groups:  clinic:region, 12; region, 4
    (Intercept) 105.7145 27.2460 3.880 ;  x 0.3223 0.1617 1.993 ; corr -0.124

The original simulation had no seed, so the data are *constructed* to have
exactly this REML fit:

1. Design: 4 regions x 3 clinics (labelled 1,2,3 inside every region) x 20
   patients.  x = xbar + 3*c_clinic + s*z (c, z seeded normal draws,
   standardised); (xbar, s) are solved so that, at the published variance
   components, Var(beta) gives SE 27.2460 and 0.1617 exactly.  (With a
   balanced design the correlation is then forced to -0.12376, printed
   -0.124, and the REML criterion to 1689.82, printed 1689.8.)  x is rounded
   to 3 decimals.
2. Fit-defining quantities: for the target theta the REML score equations are
   sum(b_k^2) = q_k sigma_k^2 - tr(PEV_k) (k = clinic, region), the mixed
   model equations give per-clinic / per-region sums of the residuals and
   sum(r) = sum(x r) = 0, and the profiled sigma^2 = pwrss/(n-p) gives
   sum(r^2) with r the scaled residuals.  Random effects b and scaled
   residuals r are drawn (seeded) and then minimally adjusted (SLSQP) to
   satisfy these equations while pinning the order statistics that define the
   published residual quantiles (R type-7 quantiles).
3. y = 105.7145 + 0.3223 x + b_region + b_clinic + sigma r, rounded to 5
   decimals (so that the 5-decimal scaled-residual quantiles survive).
The script refits the model with its own REML code and prints the lme4-style
numbers next to the published ones.

Seed choice: the REML surface is very flat in the region-variance direction
(only 4 regions), and lme4's default optimizer (nloptwrap/BOBYQA) stops up to
~0.1-1.5 units of variance away from the exact optimum, in a data-dependent
way.  The seed (5) is the first of 1..12 for which (a) the construction
succeeds, (b) the exact REML optimum computed here prints every published
digit, and (c) lme4 1.1.31 (Debian r-cran-lme4) also prints every published
digit (its region variance 2765.0622 vs exact optimum 2765.0603).  Other lme4
/ nloptr versions may stop elsewhere and print e.g. 2765.07.

Columns: region (1-4), clinic (1-3, repeated in each region, so the nesting
must be given as (1 | region/clinic)), clinic_id (1-12, unique coding: then
(1 | region) + (1 | clinic_id) is the same model), x, y.

Run from the repository root:  python data/reconstruct/clinics_nested.py
Deterministic (numpy seed 5); runs in a few seconds.
"""
import os
import time

import numpy as np
import pandas as pd
from scipy.optimize import least_squares, minimize

from _lmm import LMM, quantile7  # the shared helper next to this script (on sys.path[0])

HERE = os.path.dirname(os.path.abspath(__file__))
CSV = os.path.join(os.path.dirname(HERE), "clinics_nested.csv")
# published numbers ----------------------------------------------------------
PUB = dict(reml="1689.8", q=["-2.57686", "-0.54281", "-0.05204", "0.44631", "3.07737"],
           var=["473.98", "2765.06", "50.84"], sd=["21.771", "52.584", "7.131"],
           beta=["105.7145", "0.3223"], se=["27.2460", "0.1617"], t=["3.880", "1.993"], corr="-0.124")
VC, VR = 473.98, 2765.06        # clinic:region and region variances (targets)
S2 = 50.8445                      # residual variance: must print 50.84 AND sd 7.131
BETA = np.array([105.7145, 0.3223])
SE = np.array([27.2460, 0.1617])
Q = np.array([-2.57686, -0.54281, -0.05204, 0.44631, 3.07737])
SIG = np.sqrt(S2)
N_PER, N, P = 20, 240, 2
REGION = np.repeat(np.arange(4), 60)
CLINIC = np.repeat(np.arange(12), N_PER)        # unique clinic id 0..11
ZR, ZC = np.eye(4)[REGION], np.eye(12)[CLINIC]


def _design(rng):
    """Step 1: x solved so that the SEs of the fixed effects are the published ones."""
    V = S2 * np.eye(N) + VR * ZR @ ZR.T + VC * ZC @ ZC.T
    Vi = np.linalg.inv(V)
    z = rng.standard_normal(N)
    for c in range(12):
        z[CLINIC == c] = (z[CLINIC == c] - z[CLINIC == c].mean()) / z[CLINIC == c].std()
    cm = rng.standard_normal(12)
    cm = (cm - cm.mean()) / cm.std()

    def xdesign(par):
        return par[0] + 3.0 * cm[CLINIC] + par[1] * z

    def se_eq(par):
        X = np.column_stack([np.ones(N), xdesign(par)])
        C = np.linalg.inv(X.T @ Vi @ X)
        return np.sqrt(np.diag(C)) / SE - 1

    sol = least_squares(se_eq, [21, 2.8], xtol=1e-15, ftol=1e-15, gtol=1e-15).x
    return np.round(xdesign(sol), 3)


def _blups(rng, X):
    """Step 2a: region and clinic BLUPs meeting the REML score equations (trace terms)."""
    Z = np.hstack([ZC, ZR])
    Dpen = np.diag(np.r_[np.full(12, S2 / VC), np.full(4, S2 / VR)])
    M = np.block([[X.T @ X, X.T @ Z], [Z.T @ X, Z.T @ Z + Dpen]])
    PEV = S2 * np.linalg.inv(M)[P:, P:]
    Kc = 12 * VC - np.trace(PEV[:12, :12])          # required sum of squared clinic BLUPs
    Kr = 4 * VR - np.trace(PEV[12:, 12:])           # required sum of squared region BLUPs
    # region BLUPs: mean zero, sum of squares Kr
    br = rng.standard_normal(4)
    br -= br.mean()
    br *= np.sqrt(Kr / (br @ br))
    # clinic BLUPs: within-region sum fixed by the MME (sum_c b_c / VC = b_r / VR)
    mreg = br * VC / VR / 3
    w = rng.standard_normal(12).reshape(4, 3)
    w -= w.mean(1, keepdims=True)
    w *= np.sqrt((Kc - 3 * (mreg ** 2).sum()) / (w ** 2).sum())
    return br, (mreg[:, None] + w).ravel()


def _pins(srt):
    """Pinned order statistics (0-based ranks) defining R's type-7 quantiles:
    min=r(0), Q1=r(59)+.75(r(60)-r(59)), med=(r(119)+r(120))/2,
    Q3=r(179)+.25(r(180)-r(179)), max=r(239)."""
    pin = {0: Q[0], 239: Q[4]}
    g1, g2, g3 = srt[60] - srt[59], srt[120] - srt[119], srt[180] - srt[179]
    pin[59], pin[60] = Q[1] - .75 * g1, Q[1] + .25 * g1
    pin[119], pin[120] = Q[2] - .5 * g2, Q[2] + .5 * g2
    pin[179], pin[180] = Q[3] - .25 * g3, Q[3] + .75 * g3
    return pin


def _shaped(gamma, rank, srt, pin):
    """Monotone map of the draws onto the pinned order statistics: linear in the
    two middle bands, power-shaped (exponent gamma) in the two tails."""
    out = np.empty(N)
    for i in range(N):
        k = rank[i]
        if k in pin:
            out[i] = pin[k]
            continue
        for a, b in ((0, 59), (60, 119), (120, 179), (180, 239)):
            if a < k < b:
                u = (srt[k] - srt[a]) / (srt[b] - srt[a])
                if a == 0:
                    u = 1 - (1 - u) ** gamma
                if b == 239:
                    u = u ** gamma
                out[i] = pin[a] + (pin[b] - pin[a]) * u
    return out


def _scaled_residuals(rng, x, bc, br):
    """Step 2b: scaled residuals with the per-clinic sums of the MME, sum(x r) = 0,
    the profiled sum(r^2), and the order statistics of the published quantiles."""
    csum = SIG * bc / VC
    R2 = (N - P) - (bc ** 2).sum() / VC - (br ** 2).sum() / VR
    base = rng.standard_t(4, N) * 0.68
    order = np.argsort(base)                        # ranks of the draws
    rank = np.empty(N, int)
    rank[order] = np.arange(N)
    srt = np.sort(base)
    pin = _pins(srt)
    eps = 1e-4
    bands = [(0, 59, Q[0] + eps, pin[59] - eps), (60, 119, pin[60] + eps, pin[119] - eps),
             (120, 179, pin[120] + eps, pin[179] - eps), (180, 239, pin[180] + eps, Q[4] - eps)]
    fixed = np.array([rank[i] in pin for i in range(N)])
    gl, gh = 0.2, 5.0                      # bisection: sum(r^2) of the shaped draws = R2
    for _ in range(100):
        gm = (gl + gh) / 2
        if (_shaped(gm, rank, srt, pin) ** 2).sum() > R2:
            gl = gm
        else:
            gh = gm
    r = _shaped(gm, rank, srt, pin)
    lo, hi = np.empty(N), np.empty(N)
    for i in range(N):
        k = rank[i]
        for a, b, low, high in bands:
            if a <= k <= b:
                lo[i], hi[i] = low, high
    free = np.where(~fixed)[0]
    start = np.clip(r[free], lo[free], hi[free])
    A = np.vstack([ZC.T, x[None, :]])               # clinic sums and sum(x r)
    rhs = np.r_[csum, 0.0]

    def full(v):
        rr = r.copy()
        rr[free] = v
        return rr

    cons = [dict(type="eq", fun=lambda v: A @ full(v) - rhs, jac=lambda v: A[:, free]),
            dict(type="eq", fun=lambda v: np.array([full(v) @ full(v) - R2]),
                 jac=lambda v: 2 * full(v)[free][None, :])]
    opt = minimize(lambda v: ((v - start) ** 2).sum(), start, jac=lambda v: 2 * (v - start),
                   method="SLSQP", bounds=list(zip(lo[free], hi[free])), constraints=cons,
                   options=dict(ftol=1e-14, maxiter=500))
    r = full(opt.x)
    # SLSQP may end on "positive directional derivative" at a point that meets the
    # constraints to round-off (scipy-version dependent); the constraints are what matter
    assert np.abs(A @ r - rhs).max() < 1e-9 and abs(r @ r - R2) < 1e-8
    return r


def _check(path):
    """Refit from the CSV values with the dense REML code; print published vs achieved."""
    d = pd.read_csv(path)
    Xd = np.column_stack([np.ones(N), d.x])
    mod = LMM(d.y, Xd, [(d.clinic_id.values - 1, np.ones(N)), (d.region.values - 1, np.ones(N))])
    f = mod.fit([3.0, 7.0], [0, 0])
    sig = np.sqrt(f["sigma2"])
    se = np.sqrt(np.diag(f["vcov"]))
    var = [f["theta"][0] ** 2 * f["sigma2"], f["theta"][1] ** 2 * f["sigma2"], f["sigma2"]]
    ach = dict(reml=f"{f['crit']:.1f}", q=[f"{v:.5f}" for v in quantile7(f["resid"] / sig)],
               var=[f"{v:.2f}" for v in var], sd=[f"{np.sqrt(v):.3f}" for v in var],
               beta=[f"{v:.4f}" for v in f["beta"]], se=[f"{v:.4f}" for v in se],
               t=[f"{v:.3f}" for v in f["beta"] / se],
               corr=f"{f['vcov'][0, 1] / se[0] / se[1]:.3f}")
    nbad = 0
    for key in PUB:
        pv, av = PUB[key], ach[key]
        ok = pv == av
        nbad += not ok
        print(f"{key:5s} published {pv}\n      achieved  {av}  {'OK' if ok else 'MISMATCH'}")
    print(f"unrounded: REML {f['crit']:.6f}, variances {np.round(var, 6)}, beta {f['beta']}, SE {se}")
    return nbad


def main():
    """Construct data/clinics_nested.csv (seed 5, or $SEED) and check its fit."""
    t0 = time.time()
    rng = np.random.default_rng(int(os.environ.get("SEED", 5)))  # see docstring: chosen by checking lme4
    x = _design(rng)
    X = np.column_stack([np.ones(N), x])
    br, bc = _blups(rng, X)
    r = _scaled_residuals(rng, x, bc, br)
    # 3. the data
    y = np.round(X @ BETA + bc[CLINIC] + br[REGION] + SIG * r, 5)
    out = pd.DataFrame({"region": REGION + 1, "clinic": CLINIC % 3 + 1, "clinic_id": CLINIC + 1,
                        "x": x, "y": y})
    out.to_csv(CSV, index=False, float_format="%.10g")
    nbad = _check(CSV)
    print(f"x range {x.min():.2f}..{x.max():.2f}, y range {y.min():.2f}..{y.max():.2f}")
    print(f"{'all printed numbers reproduced' if nbad == 0 else str(nbad) + ' mismatching lines'}; "
          f"wrote data/clinics_nested.csv in {time.time() - t0:.1f}s")
    return 1 if nbad else 0


if __name__ == "__main__":
    raise SystemExit(main())
