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
