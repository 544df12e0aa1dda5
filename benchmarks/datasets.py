"""Data for the benchmark models: shipped CSVs and fixed-seed simulations."""

from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parent.parent / "data"


def sleepstudy():
    d = pd.read_csv(DATA / "sleepstudy.csv")
    d["Subject"] = d["Subject"].astype(str)
    return d


def sleepstudy_day2():
    d = sleepstudy()
    return d[d["Days"] >= 2].reset_index(drop=True)


def clinics_nested():
    d = pd.read_csv(DATA / "clinics_nested.csv")
    d["region"] = d["region"].astype(str)
    d["clinic"] = d["clinic"].astype(str)
    return d[["region", "clinic", "x", "y"]]


def crossed_slopes(seed=20240501, nclinic=30, ndoctor=25, per=2):
    """30 clinics x 25 doctors x 2 patients = 1,500 rows, for
    y ~ x + (x | clinic) + (1 | doctor)."""
    rng = np.random.default_rng(seed)
    cov = np.array([[6.0 ** 2, 0.3 * 6.0 * 0.8], [0.3 * 6.0 * 0.8, 0.8 ** 2]])
    bc = rng.multivariate_normal([0.0, 0.0], cov, size=nclinic, method="cholesky")
    bd = rng.normal(0, 4.0, ndoctor)
    clinic = np.repeat(np.arange(nclinic), ndoctor * per)
    doctor = np.tile(np.repeat(np.arange(ndoctor), per), nclinic)
    x = rng.uniform(0, 10, clinic.size)
    y = 50 + bc[clinic, 0] + bd[doctor] + (2.0 + bc[clinic, 1]) * x + rng.normal(0, 3.0, x.size)
    return pd.DataFrame({"clinic": [f"c{k + 1:02d}" for k in clinic],
                         "doctor": [f"d{k + 1:02d}" for k in doctor],
                         "x": x, "y": y})


def insteval_like(seed=20240502, ns=2972, nd=1128, ndept=14, n=73421):
    """Simulated data with InstEval's shape: 73,421 ratings of 1,128 lecturers
    (d, each in one of 14 departments) by 2,972 students (s); service is a
    0/1 factor.  Standard deviations roughly those of the lme4 fit to InstEval
    (s 0.32, d 0.52, dept 0.08, residual 1.18).  Every level occurs."""
    rng = np.random.default_rng(seed)
    s = np.concatenate([np.arange(ns), rng.integers(0, ns, n - ns)])
    d = np.concatenate([np.arange(nd), rng.integers(0, nd, n - nd)])
    rng.shuffle(s)
    rng.shuffle(d)
    d_dept = np.concatenate([np.arange(ndept), rng.integers(0, ndept, nd - ndept)])
    dept = d_dept[d]
    service = rng.integers(0, 2, n)
    y = (3.2 - 0.07 * service + rng.normal(0, 0.32, ns)[s] + rng.normal(0, 0.52, nd)[d]
         + rng.normal(0, 0.08, ndept)[dept] + rng.normal(0, 1.18, n))
    return pd.DataFrame({
        "s": pd.Categorical(s + 1),
        "d": pd.Categorical(d + 1),
        "dept": pd.Categorical(dept + 1),
        "service": pd.Categorical(service),
        "y": y,
    })
