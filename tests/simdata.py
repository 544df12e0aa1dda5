"""Small simulated data sets for tests, each from a fixed numpy seed."""

import numpy as np
import pandas as pd
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"


def sleepstudy():
    return pd.read_csv(DATA / "sleepstudy.csv")


def nested(seed=1):
    """4 regions x 3 clinics (labels repeated within regions) x 15 patients."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(4):
        a = rng.normal(0, 10)
        for c in range(3):
            b = rng.normal(0, 4)
            for _ in range(15):
                x = rng.uniform(20, 60)
                rows.append((f"R{r + 1}", f"C{c + 1}", x, 50 + a + b + 0.3 * x + rng.normal(0, 3)))
    return pd.DataFrame(rows, columns=["region", "clinic", "x", "y"])


def crossed(seed=2, nclinic=6, ndoctor=8, per=4):
    """Clinics crossed with doctors, random intercepts and slopes for both."""
    rng = np.random.default_rng(seed)
    ca, cb = rng.normal(0, 5, nclinic), rng.normal(0, 0.5, nclinic)
    da, db = rng.normal(0, 3, ndoctor), rng.normal(0, 0.3, ndoctor)
    rows = []
    for i in range(nclinic):
        for j in range(ndoctor):
            for _ in range(per):
                x = rng.normal(0, 2)
                y = 10 + ca[i] + da[j] + (1 + cb[i] + db[j]) * x + rng.normal(0, 1)
                rows.append((f"cl{i + 1:02d}", f"dr{j + 1:02d}", x, y))
    return pd.DataFrame(rows, columns=["clinic", "doctor", "x", "y"])


def factors(seed=3):
    """Two crossed fixed factors and a covariate, random intercept for 10 groups."""
    rng = np.random.default_rng(seed)
    n = 200
    g = rng.integers(0, 10, n)
    a = rng.choice(["lo", "mid", "hi"], n)
    b = rng.choice(["ctl", "trt"], n)
    x = rng.normal(size=n)
    u = rng.normal(0, 2, 10)
    eff = {"lo": 0, "mid": 1, "hi": 2.5}
    y = 5 + np.vectorize(eff.get)(a) + (b == "trt") * 1.5 + 0.5 * (a == "hi") * (b == "trt") \
        + 0.8 * x + u[g] + rng.normal(0, 1, n)
    return pd.DataFrame({"g": [f"g{k:02d}" for k in g], "a": a, "b": b, "x": x, "y": y})


def singular(seed=4):
    """Groups that carry no between-group variance: the REML optimum is θ = 0."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(8), 6)
    x = rng.normal(size=g.size)
    y = 1 + 2 * x + rng.normal(0, 1, g.size)
    y = y - pd.Series(y).groupby(g).transform("mean").to_numpy() + y.mean()
    y = y + rng.normal(0, 0.05, g.size)
    return pd.DataFrame({"g": [f"s{k}" for k in g], "x": x, "y": y})


def with_missing(seed=5):
    """sleepstudy with a few missing responses and covariates."""
    d = sleepstudy()
    rng = np.random.default_rng(seed)
    d.loc[rng.choice(len(d), 7, replace=False), "Reaction"] = np.nan
    d.loc[rng.choice(len(d), 4, replace=False), "Days"] = np.nan
    return d
