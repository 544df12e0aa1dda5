"""Published numbers (slides 'Mixed models I' and the lmerTest example of
'Mixed models II'), copied here so nothing reads the slide decks at run time,
and the value functions that produce them from the closed-form fits."""
import numpy as np

from plasma_model import RI, lm0, lm1


def interval(txt):
    """[lo, hi] of the real numbers that R prints as ``txt`` (round half unit)."""
    t = txt.strip()
    if "e" in t:
        mant, ex = t.split("e")
        dec = len(mant.split(".")[1]) if "." in mant else 0
        u = 10.0 ** (int(ex) - dec)
    else:
        dec = len(t.split(".")[1]) if "." in t else 0
        u = 10.0 ** (-dec)
    v = float(t)
    return v - u / 2, v + u / 2


# (label, printed, model, key, index)
PUB_FITS = [
    # summary(lm(conc ~ age))
    ("m0 (Intercept) Estimate", "126.7136", "m0", "b", 0),
    ("m0 (Intercept) Std.Error", "10.0424", "m0", "se", 0),
    ("m0 (Intercept) t value", "12.618", "m0", "t", 0),
    ("m0 (Intercept) Pr(>|t|)", "3.68e-15", "m0", "p", 0),
    ("m0 age Estimate", "1.3124", "m0", "b", 1),
    ("m0 age Std.Error", "0.2619", "m0", "se", 1),
    ("m0 age t value", "5.011", "m0", "t", 1),
    ("m0 age Pr(>|t|)", "1.28e-05", "m0", "p", 1),
    ("m0 residual SE", "19.55", "m0", "sigma", None),
    ("m0 R-squared", "0.3979", "m0", "r2", None),
    ("m0 adj R-squared", "0.3821", "m0", "adjr2", None),
    ("m0 F", "25.11", "m0", "F", None),
    ("m0 F p-value", "1.282e-05", "m0", "Fp", None),
    # summary(lm(conc ~ age + group))
    ("m1 (Intercept) Estimate", "303.4541", "m1", "b", 0),
    ("m1 (Intercept) Std.Error", "15.9759", "m1", "se", 0),
    ("m1 (Intercept) t value", "18.994", "m1", "t", 0),
    ("m1 age Estimate", "-1.9022", "m1", "b", 1),
    ("m1 age Std.Error", "0.3042", "m1", "se", 1),
    ("m1 age t value", "-6.254", "m1", "t", 1),
    ("m1 age Pr(>|t|)", "3.58e-07", "m1", "p", 1),
    ("m1 group2 Estimate", "-110.9344", "m1", "b", 2),
    ("m1 group2 Std.Error", "9.7480", "m1", "se", 2),
    ("m1 group2 t value", "-11.380", "m1", "t", 2),
    ("m1 group2 Pr(>|t|)", "2.59e-13", "m1", "p", 2),
    ("m1 group3 Estimate", "-82.1424", "m1", "b", 3),
    ("m1 group3 Std.Error", "7.4540", "m1", "se", 3),
    ("m1 group3 t value", "-11.020", "m1", "t", 3),
    ("m1 group3 Pr(>|t|)", "6.29e-13", "m1", "p", 3),
    ("m1 group4 Estimate", "-44.7618", "m1", "b", 4),
    ("m1 group4 Std.Error", "5.3530", "m1", "se", 4),
    ("m1 group4 t value", "-8.362", "m1", "t", 4),
    ("m1 group4 Pr(>|t|)", "7.33e-10", "m1", "p", 4),
    ("m1 residual SE", "9.240", "m1", "sigma", None),      # printed 9.24 (signif 4)
    ("m1 R-squared", "0.8762", "m1", "r2", None),
    ("m1 adj R-squared", "0.8620", "m1", "adjr2", None),   # printed 0.862 (%.4g)
    ("m1 F", "61.92", "m1", "F", None),
    ("m1 F p-value", "2.173e-15", "m1", "Fp", None),
    # summary(lmer(conc ~ age + (1 | group))) + lmerTest + fixef + ranef
    ("mm REML criterion", "304.1", "mm", "crit", None),
    ("mm group variance", "2224.44", "mm", "vg", None),
    ("mm group sd", "47.164", "mm", "sdg", None),
    ("mm residual variance", "85.47", "mm", "s2", None),
    ("mm residual sd", "9.245", "mm", "sigma", None),
    ("mm fixef (Intercept)", "241.333393", "mm", "beta", 0),
    ("mm fixef age", "-1.829255", "mm", "beta", 1),
    ("mm (Intercept) Std.Error", "26.0615", "mm", "se", 0),
    ("mm age Std.Error", "0.3014", "mm", "se", 1),
    ("mm (Intercept) t value", "9.260", "mm", "t", 0),
    ("mm age t value", "-6.068", "mm", "t", 1),
    ("mm corr(Intercept, age)", "-0.422", "mm", "corr", None),
    ("mm ranef 1", "58.13116", "mm", "ranef", 0),
    ("mm ranef 2", "-50.26973", "mm", "ranef", 1),
    ("mm ranef 3", "-22.21498", "mm", "ranef", 2),
    ("mm ranef 4", "14.35354", "mm", "ranef", 3),
    ("mm Satterthwaite df (Intercept)", "4.2275", "mm", "df", 0),
    ("mm Satterthwaite df age", "36.1653", "mm", "df", 1),
    ("mm Satterthwaite p (Intercept)", "0.00058", "mm", "p", 0),
    ("mm Satterthwaite p age", "5.54e-07", "mm", "p", 1),
]


def with_tp(d):
    from scipy import stats
    d = dict(d)
    d["t"] = d["b"] / d["se"]
    d["p"] = 2 * stats.t.sf(np.abs(d["t"]), d["df"])
    return d


def values(s, theta):
    """Vector of the fitted values behind PUB_FITS, for summary stats s and theta."""
    fits = dict(m0=with_tp(lm0(s)), m1=with_tp(lm1(s)), mm=RI(s).fit(theta))
    out = []
    for _, _, mod, key, idx in PUB_FITS:
        v = fits[mod][key]
        out.append(float(v if idx is None else v[idx]))
    return np.array(out)


LOHI = np.array([interval(t[1]) for t in PUB_FITS])
MID = LOHI.mean(1)
HALF = (LOHI[:, 1] - LOHI[:, 0]) / 2
