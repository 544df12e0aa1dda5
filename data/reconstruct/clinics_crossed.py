#!/usr/bin/env python
"""Simulate data/clinics_crossed.csv: a crossed clinic x doctor design for

    lmer(y ~ x + (x | clinic) + (x | doctor))

(Mixed Models II, "Crossed designs"; the slides print no output for this
model, so the data are simply simulated from stated parameters.)

Design: 6 clinics x 8 doctors, every doctor works at every clinic (crossed),
4 patients per clinic-doctor combination -> 192 rows.  x ~ Uniform(0, 10)
(e.g. a dose or a symptom score), rounded to 2 decimals; y rounded to 3
decimals.

True parameters:
    fixed effects      beta0 = 50, beta1 = 2
    clinic  (x|clinic) sd(Intercept) = 8,  sd(x) = 1.0, corr = 0.3
    doctor  (x|doctor) sd(Intercept) = 5,  sd(x) = 0.6, corr = -0.2
    residual sd        sigma = 4

Run from the repository root:  python data/reconstruct/clinics_crossed.py
Deterministic (numpy default_rng seed 20250611); runs in well under a second.
It prints the true parameters next to simple moment summaries.
"""
import os

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20250611
N_CLINIC, N_DOCTOR, N_PER = 6, 8, 4
BETA = (50.0, 2.0)
CLINIC = dict(sd_int=8.0, sd_x=1.0, corr=0.3)
DOCTOR = dict(sd_int=5.0, sd_x=0.6, corr=-0.2)
SIGMA = 4.0


def _draw(rng, q, sd_int, sd_x, corr):
    cov = np.array([[sd_int ** 2, corr * sd_int * sd_x], [corr * sd_int * sd_x, sd_x ** 2]])
    return rng.multivariate_normal([0.0, 0.0], cov, size=q, method="cholesky")


def main():
    """Simulate data/clinics_crossed.csv (seed SEED) and print moment summaries."""
    rng = np.random.default_rng(SEED)
    bc = _draw(rng, N_CLINIC, **CLINIC)
    bd = _draw(rng, N_DOCTOR, **DOCTOR)
    clinic = np.repeat(np.arange(N_CLINIC), N_DOCTOR * N_PER)
    doctor = np.tile(np.repeat(np.arange(N_DOCTOR), N_PER), N_CLINIC)
    n = clinic.size
    x = np.round(rng.uniform(0, 10, n), 2)
    y = (BETA[0] + bc[clinic, 0] + bd[doctor, 0]
         + (BETA[1] + bc[clinic, 1] + bd[doctor, 1]) * x
         + rng.normal(0, SIGMA, n))
    out = pd.DataFrame({"clinic": clinic + 1, "doctor": doctor + 1, "patient": np.arange(n) + 1,
                        "x": x, "y": np.round(y, 3)})
    out.to_csv(os.path.join(os.path.dirname(HERE), "clinics_crossed.csv"), index=False)
    print(f"wrote data/clinics_crossed.csv: {n} rows, {N_CLINIC} clinics x {N_DOCTOR} doctors "
          f"x {N_PER} patients")
    print(f"true beta = {BETA}, clinic {CLINIC}, doctor {DOCTOR}, sigma = {SIGMA}")
    print("realised clinic effects (int, slope):\n", np.round(bc, 3))
    print("realised doctor effects (int, slope):\n", np.round(bd, 3))
    ols = np.polyfit(out.x, out.y, 1)
    print(f"pooled OLS: intercept {ols[1]:.3f}, slope {ols[0]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
