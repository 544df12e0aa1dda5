#!/usr/bin/env python
"""Reconstruct a subject-level `sex` variable for lme4's sleepstudy data.

Slide (Mixed Models II, "Fixed Effects Comparison"):

    sleepall <- sleepstudy |> filter(Days>=2) |> mutate(Days=Days-2)
    m2 <- lmer(Reaction ~ Days + (1 + Days | Subject), data = sleepall)
    m3 <- lmer(Reaction ~ Days + sex + (1 + Days | Subject), data = sleepall)
    anova(m2, m3, refit=TRUE)
       npar    AIC    BIC  logLik deviance  Chisq Df Pr(>Chisq)
    m2    6 1425.2 1443.0 -706.58   1413.2
    m3    7 1422.3 1443.1 -704.14   1408.3 4.8826  1    0.02713 *

sleepstudy has no sex column; the course added one.  m2 does not depend on it,
so only the ML deviance of m3 (equivalently Chisq) constrains the labelling.
We search *all* 2^18/2 - 1 = 131071 non-trivial assignments of the 18 subjects
to two groups (a labelling and its complement give the same fit):

1. Screening.  For fixed relative covariance factor theta the profiled ML
   deviance of m3 depends on the labelling S only through k = |S| and
   U_S = sum_{i in S} 1' W(theta) y_i (all subjects share the same design),
   so it is evaluated for every labelling at once on a grid of theta values.
   The grid minimum is an upper bound of the optimal m3 deviance, i.e. the
   grid Chisq is a LOWER bound of the true Chisq.
2. Refinement.  Every labelling whose grid Chisq lies in [3.5, 4.8827] (all
   labellings that could have a true Chisq near 4.8826; the observed grid
   error is < 0.25) is refitted exactly (L-BFGS-B + Nelder-Mead on theta).

Result: NO subject-level labelling gives a Chisq that prints as 4.8826 (i.e. in
[4.88255, 4.88265)).  The closest one (|Chisq - 4.8826| minimal) is written to
data/sleepstudy_sex.csv; it reproduces every other printed number of the table
and prints Chisq 4.8827 instead of 4.8826 (checked with lme4 1.1.31, which
agrees with this script to 1e-6 in the deviance).

Labels: the group that contains subject 308 is called "F", the other "M".

Run from the repository root:  python data/reconstruct/sleepstudy_sex.py
Deterministic (no random numbers); runs in about 1-2 minutes.
"""
import os
import time

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.stats import chi2

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.dirname(HERE)
TARGET_CHISQ = 4.8826
PUBLISHED = {"m2": dict(npar=6, AIC="1425.2", BIC="1443.0", logLik="-706.58", deviance="1413.2"),
             "m3": dict(npar=7, AIC="1422.3", BIC="1443.1", logLik="-704.14", deviance="1408.3",
                        Chisq="4.8826", p="0.02713")}



def _sleepall():
    """Reaction per subject (rows, order of appearance) x day (Days >= 2, shifted by 2)."""
    d = pd.read_csv(os.path.join(DATA, "sleepstudy.csv"))
    d = d[d.Days >= 2].copy()
    d["Days"] -= 2
    subjects = list(dict.fromkeys(d.Subject))            # order of appearance
    Y = np.array([d[d.Subject == s].sort_values("Days").Reaction.values for s in subjects])
    return subjects, Y


M, NI = 18, 8                                        # 18 subjects x 8 days
N = M * NI
ONE = np.ones(NI)
D = np.arange(NI, dtype=float)
Z = np.column_stack([ONE, D])


def _w_logdet(th):
    """W = (I + Z L L' Z')^{-1} and log|I + Z L L' Z'| for ONE subject."""
    L = np.array([[th[0], 0.0], [th[1], th[2]]])
    V = np.eye(NI) + Z @ L @ L.T @ Z.T
    return np.linalg.inv(V), np.linalg.slogdet(V)[1]


def _ml_deviance(th, Y, s=None):
    """Profiled ML deviance (-2 log L) of Reaction ~ Days [+ s] + (1+Days|Subject)."""
    W, ld = _w_logdet(th)
    u, v, q = Y @ W @ ONE, Y @ W @ D, np.einsum("ij,jk,ik->i", Y, W, Y)
    c11, c1D, cDD = ONE @ W @ ONE, ONE @ W @ D, D @ W @ D
    if s is None:
        XtWX = M * np.array([[c11, c1D], [c1D, cDD]])
        g = np.array([u.sum(), v.sum()])
    else:
        k = s.sum()
        XtWX = np.array([[M * c11, M * c1D, k * c11], [M * c1D, M * cDD, k * c1D], [k * c11, k * c1D, k * c11]])
        g = np.array([u.sum(), v.sum(), s @ u])
    rss = q.sum() - g @ np.linalg.solve(XtWX, g)
    return M * ld + N * (1 + np.log(2 * np.pi * rss / N))


def _fit(Y, s=None):
    r = minimize(_ml_deviance, [1.0, 0.05, 0.25], args=(Y, s), method="L-BFGS-B",
                 bounds=[(0, None), (None, None), (0, None)], options=dict(ftol=1e-15, gtol=1e-9))
    r = minimize(_ml_deviance, r.x, args=(Y, s), method="Nelder-Mead", options=dict(xatol=1e-9, fatol=1e-11))
    return r.fun, r.x


def _labels(i):
    """Labelling number i: subject 0 is in group 0, subject j>0 in group bit (j-1) of i."""
    return np.concatenate([[0.0], ((i >> np.arange(M - 1)) & 1).astype(float)])


def _row(npar, dev):
    return dict(npar=npar, AIC=f"{dev + 2 * npar:.1f}", BIC=f"{dev + npar * np.log(N):.1f}",
                logLik=f"{-dev / 2:.2f}", deviance=f"{dev:.1f}")


def main():
    """Search every labelling, write data/sleepstudy_sex.csv, report the LRT table."""
    subjects, Y = _sleepall()
    t0 = time.time()
    dev2, th2 = _fit(Y)

    # ---- 1. screening on a theta grid, all labellings at once -------------------
    S = ((np.arange(2 ** (M - 1))[:, None] >> np.arange(M - 1)[None, :]) & 1).astype(float)
    S = np.hstack([np.zeros((S.shape[0], 1)), S])
    k = S.sum(1)
    valid = k > 0
    best = np.full(S.shape[0], np.inf)
    for a in np.linspace(0.4, 1.4, 26):
        for b in np.linspace(-0.3, 0.4, 15):
            for c in np.linspace(0.04, 0.34, 16):
                W, ld = _w_logdet((a, b, c))
                u, v, q = Y @ W @ ONE, Y @ W @ D, np.einsum("ij,jk,ik->i", Y, W, Y)
                c1 = np.array([ONE @ W @ ONE, ONE @ W @ D])
                A = M * np.array([[c1[0], c1[1]], [c1[1], D @ W @ D]])
                g = np.array([u.sum(), v.sum()])
                Aig, Aic = np.linalg.solve(A, g), np.linalg.solve(A, c1)
                rss2 = q.sum() - g @ Aig
                with np.errstate(divide="ignore", invalid="ignore"):
                    rss3 = rss2 - (S @ u - k * (c1 @ Aig)) ** 2 / (k * c1[0] - k ** 2 * (c1 @ Aic))
                    dev = M * ld + N * (1 + np.log(2 * np.pi * rss3 / N))
                best = np.minimum(best, np.where(valid, dev, np.inf))
    chi_grid = dev2 - best
    cand = np.where((chi_grid >= 3.5) & (chi_grid <= 4.8827))[0]
    print(f"screened {valid.sum()} labellings in {time.time() - t0:.1f}s; {len(cand)} candidates to refit")

    # ---- 2. exact refits ---------------------------------------------------------
    res = []
    for i in cand:
        dev3, th3 = _fit(Y, _labels(i))
        res.append((abs(dev2 - dev3 - TARGET_CHISQ), i, dev2 - dev3, dev3))
    res.sort()
    exact = [r for r in res if 4.88255 <= r[2] < 4.88265]
    print(f"refitted in {time.time() - t0:.1f}s; labellings printing Chisq 4.8826: {len(exact)}")
    print("closest labellings (Chisq, group sizes):")
    for _, i, c, _ in res[:6]:
        s = _labels(i)
        print(f"  #{i:6d}  Chisq {c:.6f}  sizes {int(M - s.sum())}/{int(s.sum())}")
    chosen = exact[0] if exact else res[0]
    _, i, chisq, dev3 = chosen
    s = _labels(i)

    sex = np.where(s == s[0], "F", "M")     # group containing subject 308 -> "F"
    out = pd.DataFrame({"Subject": subjects, "sex": sex})
    out.to_csv(os.path.join(DATA, "sleepstudy_sex.csv"), index=False)

    ach = {"m2": _row(6, dev2), "m3": _row(7, dev3)}
    ach["m3"].update(Chisq=f"{chisq:.4f}", p=f"{chi2.sf(chisq, 1):.5f}")
    print(f"\nchosen labelling #{i}: F = {list(out.Subject[out.sex == 'F'])}")
    print(f"                      M = {list(out.Subject[out.sex == 'M'])}")
    print(f"m2 ML deviance {dev2:.6f}, m3 ML deviance {dev3:.6f}, Chisq {chisq:.6f}")
    for mod in ("m2", "m3"):
        for key, pub in PUBLISHED[mod].items():
            a = ach[mod][key]
            print(f"  {mod} {key:8s} published {str(pub):>8s} achieved {str(a):>8s}  {'OK' if str(a) == str(pub) else 'MISMATCH'}")
    print(f"wrote data/sleepstudy_sex.csv ({len(out)} subjects) in {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
