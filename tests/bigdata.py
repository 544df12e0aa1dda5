"""The InstEval-sized data sets of the large-model inference tests (tests/r_big_inference_ref.py).

``like`` and ``like_3000`` are the fixed-seed simulation of benchmarks/datasets.py
(no R needed); ``insteval`` exports lme4's InstEval through rpy2 at run time (it is
lme4's data, GPL, and not stored here).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from datasets import insteval_like  # noqa: E402


def like():
    """73,421 rows: 2,972 students x 1,128 lecturers x 14 departments."""
    return insteval_like()


def like_3000():
    """The same generator at 3,000 rows (300 students, 120 lecturers), small enough for pbkrtest."""
    return insteval_like(ns=300, nd=120, ndept=14, n=3000)


def insteval(ro, nrow=None):
    """lme4's InstEval (its first ``nrow`` rows, unused levels dropped) as pandas,
    factors as Categoricals with R's levels (studage and lectage ordered)."""
    from r_design_ref import _r_dataset
    expr = "lme4::InstEval" if nrow is None else f"droplevels(lme4::InstEval[seq_len({int(nrow)}), ])"
    return _r_dataset(ro, expr)


def fit_at(formula, data, theta, REML=True):
    """The lmer fit of ``formula`` at a given θ (R's optimum), without optimizing: the
    comparisons are then free of the two optimizers' stopping points (as ``at_theta``)."""
    import numpy as np

    from lmmlite.design import build_design
    from lmmlite.formula import parse_formula
    from lmmlite.model import LmerModel
    from lmmlite.optimize import OptResult
    from lmmlite.results import LmerFit

    model = LmerModel(build_design(parse_formula(formula), data), REML=REML)
    theta = np.asarray(theta, dtype=float)
    opt = OptResult(theta=theta, value=model.deviance(theta), nfev=0, singular=False,
                    messages=[], method="given")
    return LmerFit(model, opt, data_name="data", data=data)
