#!/usr/bin/env python
"""Verify data/plasma.csv (or any plasma CSV): every property data/README.md claims for it.

    python data/reconstruct/plasma.py [data.csv]   (from the repository root; ~5 s)

The data are derived by plasma_derive.py (see data/README.md), which calls
``verify`` on its result.  This script does not use lmmlite: it recomputes
every printed number of the plasma slides from the CSV in closed form and
checks that each one prints as on the slide, with its margin in half rounding
units (|margin| < 1 means the printed digits agree):

1. the per-group sufficient statistics (group means of age and conc, the
   pooled within-group sums Wxx, Wxy, Wyy) are those of step 1 (STEP1 below,
   checked for data/plasma.csv only);
2. lm(conc ~ age) and lm(conc ~ age + group), from the rows by least squares;
3. lmer(conc ~ age + (1 | group)) and lmer(conc ~ age + (1 + age | group)):
   the REML criterion in closed form from each group's 2 x 2 cross-products
   (_lmm.Grouped), θ the root of the score equations (complex-step gradient,
   reported: max |∇d| at the root), Satterthwaite df as lmerTest's;
4. the residual-quantile lines of all four fits (R's type-7 quantiles);
5. the same statistics and θ with the rows shuffled (5 seeds): the fits do not
   depend on the row order beyond round-off.

Exit status 1 if any printed number or check fails.
"""
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from _lmm import Grouped, quantile7  # the shared helper next to this script (on sys.path[0])

CSV = Path(__file__).resolve().parent.parent / "plasma.csv"

# group means of age (1-4) and conc (1-4), Wxx, Wxy, Wyy: step 1 of plasma_derive.py
# (plasma_step1.solve())
STEP1 = np.array([51.636564649298954, 22.610744751890472, 31.241110190302358, 40.449283744851044,
                  205.23145702888516, 149.5096889321003, 161.88509100666937, 181.75002440891112,
                  922.7845076565989, -1755.3125281385362, 6327.140223230416])

# the printed numbers of the slides: (label, printed text, key into _values())
PRINTED = [
    ("m0 (Intercept)", "126.7136", "m0 b0"), ("m0 SE (Intercept)", "10.0424", "m0 se0"),
    ("m0 t (Intercept)", "12.618", "m0 t0"), ("m0 p (Intercept)", "3.68e-15", "m0 p0"),
    ("m0 age", "1.3124", "m0 b1"), ("m0 SE age", "0.2619", "m0 se1"),
    ("m0 t age", "5.011", "m0 t1"), ("m0 p age", "1.28e-05", "m0 p1"),
    ("m0 residual SE", "19.55", "m0 sigma"), ("m0 R-squared", "0.3979", "m0 r2"),
    ("m0 adj. R-squared", "0.3821", "m0 adjr2"), ("m0 F", "25.11", "m0 F"),
    ("m0 F p-value", "1.282e-05", "m0 Fp"),
    ("m1 (Intercept)", "303.4541", "m1 b0"), ("m1 SE (Intercept)", "15.9759", "m1 se0"),
    ("m1 t (Intercept)", "18.994", "m1 t0"),
    ("m1 age", "-1.9022", "m1 b1"), ("m1 SE age", "0.3042", "m1 se1"),
    ("m1 t age", "-6.254", "m1 t1"), ("m1 p age", "3.58e-07", "m1 p1"),
    ("m1 group2", "-110.9344", "m1 b2"), ("m1 SE group2", "9.7480", "m1 se2"),
    ("m1 t group2", "-11.380", "m1 t2"), ("m1 p group2", "2.59e-13", "m1 p2"),
    ("m1 group3", "-82.1424", "m1 b3"), ("m1 SE group3", "7.4540", "m1 se3"),
    ("m1 t group3", "-11.020", "m1 t3"), ("m1 p group3", "6.29e-13", "m1 p3"),
    ("m1 group4", "-44.7618", "m1 b4"), ("m1 SE group4", "5.3530", "m1 se4"),
    ("m1 t group4", "-8.362", "m1 t4"), ("m1 p group4", "7.33e-10", "m1 p4"),
    ("m1 residual SE", "9.240", "m1 sigma"), ("m1 R-squared", "0.8762", "m1 r2"),
    ("m1 adj. R-squared", "0.8620", "m1 adjr2"), ("m1 F", "61.92", "m1 F"),
    ("m1 F p-value", "2.173e-15", "m1 Fp"),
    ("mm REML criterion", "304.1", "mm crit"), ("mm var(group)", "2224.44", "mm v0"),
    ("mm sd(group)", "47.164", "mm sd0"), ("mm var(Residual)", "85.47", "mm s2"),
    ("mm sd(Residual)", "9.245", "mm sigma"), ("mm fixef (Intercept)", "241.333393", "mm b0"),
    ("mm fixef age", "-1.829255", "mm b1"), ("mm SE (Intercept)", "26.0615", "mm se0"),
    ("mm SE age", "0.3014", "mm se1"), ("mm t (Intercept)", "9.260", "mm t0"),
    ("mm t age", "-6.068", "mm t1"), ("mm corr of fixef", "-0.422", "mm corr"),
    ("mm ranef 1", "58.13116", "mm u1"), ("mm ranef 2", "-50.26973", "mm u2"),
    ("mm ranef 3", "-22.21498", "mm u3"), ("mm ranef 4", "14.35354", "mm u4"),
    ("mm df (Intercept)", "4.2275", "mm df0"), ("mm df age", "36.1653", "mm df1"),
    ("mm p (Intercept)", "0.00058", "mm p0"), ("mm p age", "5.54e-07", "mm p1"),
    ("mm2 REML criterion", "302.9", "mm2 crit"), ("mm2 var(Intercept)", "4113.8342", "mm2 v0"),
    ("mm2 sd(Intercept)", "64.1392", "mm2 sd0"), ("mm2 var(age)", "0.3925", "mm2 v1"),
    ("mm2 sd(age)", "0.6265", "mm2 sd1"), ("mm2 corr", "-0.67", "mm2 rcorr"),
    ("mm2 var(Residual)", "77.1173", "mm2 s2"), ("mm2 sd(Residual)", "8.7816", "mm2 sigma"),
    ("mm2 (Intercept)", "249.2426", "mm2 b0"), ("mm2 SE (Intercept)", "34.0378", "mm2 se0"),
    ("mm2 t (Intercept)", "7.323", "mm2 t0"), ("mm2 age", "-1.9862", "mm2 b1"),
    ("mm2 SE age", "0.4373", "mm2 se1"), ("mm2 t age", "-4.542", "mm2 t1"),
    ("mm2 corr of fixef", "-0.682", "mm2 corr"),
]
# residual quantiles (Min 1Q Median 3Q Max) as printed by summary()
QUANTILES = {"m0": "-42.492 -12.643 -0.968 9.998 50.981",
             "m1": "-16.849 -8.185 0.786 6.618 17.656",
             "mm": "-1.75481 -0.89181 0.09125 0.70848 1.85339",
             "mm2": "-1.5822 -0.8157 0.2107 0.7805 1.6553"}
THETA0 = {"mm": [5.0], "mm2": [7.0, -0.05, 0.05]}  # where Newton starts (lme4's start is 1)


def half_unit(txt):
    """Half of R's last printed digit of ``txt`` (fixed or e-notation)."""
    mant, _, exp = txt.partition("e")
    dec = len(mant.split(".")[1]) if "." in mant else 0
    return 0.5 * 10.0 ** (int(exp or 0) - dec)


def group_stats(df):
    g = df.groupby("group", sort=True)
    xm, ym = g["age"].mean().to_numpy(), g["conc"].mean().to_numpy()
    dx = df["age"] - g["age"].transform("mean")
    dy = df["conc"] - g["conc"].transform("mean")
    wxx = (dx * dx).groupby(df["group"]).sum().to_numpy()
    wxy = (dx * dy).groupby(df["group"]).sum().to_numpy()
    return dict(n=g.size().to_numpy(), xm=xm, ym=ym, wxx=wxx, wxy=wxy, Wyy=float((dy * dy).sum()))


def _ols(X, y, names):
    """summary.lm's numbers (coefficients, SEs, t, p, sigma, R², adj. R², F, its p)."""
    n, p = X.shape
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    df = n - p
    s2 = resid @ resid / df
    se = np.sqrt(np.diag(s2 * np.linalg.inv(X.T @ X)))
    t = beta / se
    tss = ((y - y.mean()) ** 2).sum()
    r2 = 1 - resid @ resid / tss
    F = (tss - resid @ resid) / (p - 1) / s2
    out = {f"{names}{k}": v for k, v in
           [("sigma", np.sqrt(s2)), ("r2", r2), ("adjr2", 1 - (1 - r2) * (n - 1) / df), ("F", F),
            ("Fp", stats.f.sf(F, p - 1, df))]}
    for j in range(p):
        out.update({f"{names}b{j}": beta[j], f"{names}se{j}": se[j], f"{names}t{j}": t[j],
                    f"{names}p{j}": 2 * stats.t.sf(abs(t[j]), df)})
    return out, resid


def lmm_values(s, name, theta0=None):
    """The printed numbers of ``mm`` ((1 | group)) or ``mm2`` ((1 + age | group)) from the
    group statistics ``s``: (values, model, θ at the root of the score equations, fit)."""
    zcols = [0] if name == "mm" else [0, 1]
    model = Grouped(s["n"], s["xm"], s["ym"], s["wxx"], s["wxy"], s["Wyy"], zcols)
    th = model.optimum(THETA0[name] if theta0 is None else theta0)
    v, f = fit_values(model, th, name)
    return v, model, th, f


def fit_values(model, th, name):
    """The printed numbers of a Grouped model ``name`` ("mm" or "mm2") at θ = ``th``
    (at any θ: the score equations are not imposed here); (values, fit)."""
    f = model.fit(th)
    S = f["vcov_re"]
    v = {f"{name} {k}": x for k, x in
         [("crit", f["crit"]), ("v0", S[0, 0]), ("sd0", f["sd_re"][0]), ("s2", f["s2"]),
          ("sigma", f["sigma"]), ("b0", f["beta"][0]), ("b1", f["beta"][1]),
          ("se0", f["se"][0]), ("se1", f["se"][1]), ("t0", f["t"][0]), ("t1", f["t"][1]),
          ("corr", f["corr"])]}
    if name == "mm":
        dfs = model.satterthwaite(th)
        v.update({f"mm u{g + 1}": f["ranef"][g, 0] for g in range(len(f["ranef"]))})
        v.update({f"mm df{j}": dfs[j] for j in range(2)})
        v.update({f"mm p{j}": 2 * stats.t.sf(abs(f["t"][j]), dfs[j]) for j in range(2)})
    else:
        v.update({"mm2 v1": S[1, 1], "mm2 sd1": f["sd_re"][1], "mm2 rcorr": f["corr_re"]})
    return v, f


def lmm_scaled_residuals(f, codes, age, conc):
    """Scaled residuals (conc - fitted) / σ of a Grouped fit, per row."""
    b = f["ranef"][codes]                      # each row's group effects
    slope = f["beta"][1] + (b[:, 1] if b.shape[1] == 2 else 0)
    return (conc - f["beta"][0] - b[:, 0] - slope * age) / f["sigma"]


def lm_values(df):
    """The printed numbers and residuals of lm(conc ~ age) and lm(conc ~ age + group)."""
    age, conc = df["age"].to_numpy(), df["conc"].to_numpy()
    codes = df["group"].astype("category").cat.codes.to_numpy()
    one = np.ones(len(df))
    dummies = (codes[:, None] == np.arange(1, codes.max() + 1)[None, :]).astype(float)
    v, r0 = _ols(np.column_stack([one, age]), conc, "m0 ")
    v1, r1 = _ols(np.column_stack([one, age, dummies]), conc, "m1 ")
    v.update(v1)
    return v, {"m0": r0, "m1": r1}


def _values(df):
    """Every printed quantity, from the rows (lm) and the group statistics (lmer)."""
    s = group_stats(df)
    age, conc = df["age"].to_numpy(), df["conc"].to_numpy()
    codes = df["group"].astype("category").cat.codes.to_numpy()
    v, resid = lm_values(df)
    theta, grad = {}, {}
    for name in ("mm", "mm2"):
        vals, model, th, f = lmm_values(s, name)
        v.update(vals)
        theta[name], grad[name] = th, np.abs(model.gradient(th)).max()
        resid[name] = lmm_scaled_residuals(f, codes, age, conc)
    return s, v, resid, theta, grad


def margins(v, keys=None):
    """(value - printed) / half rounding unit of every printed number (or of ``keys``)."""
    return np.array([(v[key] - float(txt)) / half_unit(txt) for _, txt, key in PRINTED
                     if keys is None or key in keys])


def _check_printed(v):
    bad = 0
    print(f"{'number':24s} {'printed':>11s} {'recomputed':>22s} {'margin':>8s}")
    for label, txt, key in PRINTED:
        margin = (v[key] - float(txt)) / half_unit(txt)
        bad += not abs(margin) < 1
        print(f"{label:24s} {txt:>11s} {v[key]:22.15g} {margin:8.3f}"
              + ("" if abs(margin) < 1 else "  MISS"))
    return bad


def _check_quantiles(resid):
    bad = 0
    for name, line in QUANTILES.items():
        q = quantile7(resid[name])
        printed = line.split()
        margins = [(a - float(t)) / half_unit(t) for a, t in zip(q, printed)]
        ok = all(abs(m) < 1 for m in margins)
        bad += not ok
        print(f"{name:4s} quantiles {line:42s} margins " + " ".join(f"{m:6.3f}" for m in margins)
              + ("" if ok else "  MISS"))
    return bad


def step1_constants(s):
    """The 11 step-1 numbers of group statistics ``s``: means of age, of conc, Wxx, Wxy, Wyy."""
    return np.r_[s["xm"], s["ym"], s["wxx"].sum(), s["wxy"].sum(), s["Wyy"]]


def verify(df, step1=STEP1):
    """Recompute every printed plasma number from the rows ``df``; the number of failed checks.

    ``step1``: the group means and pooled sums the data must have (None: not checked)."""
    s, v, resid, theta, grad = _values(df)
    bad = 0
    if step1 is not None:
        diff = np.max(np.abs(step1_constants(s) - step1) / np.abs(step1))
        print(f"1. group means and pooled sums vs step 1: max rel. diff {diff:.1e}")
        bad += diff > 1e-12
    print("   per group: n " + " ".join(map(str, s["n"])) + "; wxx "
          + " ".join(f"{x:.6f}" for x in s["wxx"]) + "; wxy " + " ".join(f"{x:.6f}" for x in s["wxy"]))
    print("2-3. printed numbers (margin in half rounding units; |margin| < 1 prints as the slide):")
    bad += _check_printed(v)
    for name in theta:
        print(f"   {name}: θ = {np.array2string(theta[name], precision=15)}, "
              f"max |∇d(θ)| = {grad[name]:.1e}")
        bad += not grad[name] < 1e-8
    print("4. residual quantiles:")
    bad += _check_quantiles(resid)
    print("5. rows shuffled (seeds 1-5): max relative change of θ")
    for seed in range(1, 6):
        shuffled = df.sample(frac=1, random_state=np.random.RandomState(seed))
        _, _, _, th, _ = _values(shuffled.reset_index(drop=True))
        change = max(np.max(np.abs(th[k] - theta[k]) / np.abs(theta[k])) for k in theta)
        bad += not change < 1e-10
        print(f"   seed {seed}: {change:.1e}")
    ages, concs = df["age"], df["conc"]
    print(f"age {ages.min():.1f}-{ages.max():.1f}, conc {concs.min():.1f}-{concs.max():.1f}; "
          f"{'all checks pass' if not bad else f'{bad} check(s) FAILED'}")
    return bad


def main(argv=None):
    """Verify data/plasma.csv (or the CSV named on the command line); exit 1 on any miss."""
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else CSV
    return 1 if verify(pd.read_csv(path), STEP1 if path == CSV else None) else 0


if __name__ == "__main__":
    sys.exit(main())
