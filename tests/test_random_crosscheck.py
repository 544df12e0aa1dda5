"""A seeded batch of random data sets and formulas, each fitted by lmmlite and lme4.

150 cases (random intercepts, correlated and independent slopes, crossed and
nested factors, fixed factors with and without empty cells; 30-300 rows;
REML and ML).  For each, both optima are evaluated with lmmlite's own
deviance function, ``fit.devfun(theta)``, so the comparison is free of the two
implementations' rounding: lmmlite's criterion at its θ may not be above the
criterion at lme4's θ by more than 1e-6.  A summary line (number of cases,
largest gap) is written at the end of the module and the per-case gaps go to
``_build/random_crosscheck.json``.  Each case runs with the default optimizer
("auto": bobyqa, lme4's own, when nlopt is installed) and with "lbfgsb".
"""

import json
from pathlib import Path
import warnings

import numpy as np
import pytest

from lmmlite import LmmError, lmer
from r_reference import lme4_fit, require_r
from test_properties import random_design

N_CASES = 150
GAP_TOL = 1e-6
KINDS = ["intercept", "slope", "uncorrelated", "nocorr_slope_only", "crossed",
         "crossed_slope", "nested", "factor", "factor_empty_cells"]


def make_case(i):
    """Case i: (formula, data, REML), from its own seed."""
    rng = np.random.default_rng(20240 + i)
    kind = KINDS[i % len(KINDS)]
    n_target = int(rng.integers(30, 301))
    # slopes need enough rows per group for lme4 (nobs > number of random effects)
    per = int(rng.integers(3, 13)) if kind not in ("slope", "crossed_slope") else int(rng.integers(5, 13))
    n_groups = max(3, n_target // per)
    if rng.random() < 0.5:
        sizes = np.full(n_groups, per)
    else:
        sizes = rng.integers(1, 2 * per, n_groups)
    # trim or pad to stay within 30-300 rows
    while sizes.sum() > 300:
        sizes = sizes[:-1]
    while sizes.sum() < 30:
        sizes = np.append(sizes, per)
    sd_group = float(rng.choice([0.0, 0.2, 1.0, 3.0], p=[0.15, 0.25, 0.35, 0.25]))
    formula, df = random_design(rng, kind, len(sizes), sizes, sd_group=sd_group,
                                n_second=int(rng.integers(3, 9)))
    reml = bool(rng.random() < 0.6)
    return formula, df, reml


RESULTS = {}
_LME4 = {}


def lme4_case(i):
    """lme4's fit of case i (cached: both optimizers' tests compare with it)."""
    if i not in _LME4:
        formula, df, reml = make_case(i)
        try:
            _LME4[i] = lme4_fit(formula, df, REML=reml), None
        except Exception as err:  # rpy2's RRuntimeError: lme4 refused the data
            _LME4[i] = None, str(err).strip()
    return _LME4[i]


@pytest.fixture(scope="module", autouse=True)
def _summary(request):
    yield
    if not RESULTS:
        return
    parts = []
    for opt in ("auto", "lbfgsb"):
        rows = {k: v for k, v in RESULTS.items() if v["optimizer"] == opt}
        gaps = {k: v["gap"] for k, v in rows.items() if v.get("gap") is not None}
        if not rows:
            continue
        worst = max(gaps, key=gaps.get) if gaps else None
        text = f"optimizer={opt}: {len(rows)} cases, {len(gaps)} compared"
        if worst:
            text += (f", largest gap lmmlite - lme4 = {gaps[worst]:.3g} ({worst}), "
                     f"lmmlite lower by > 1e-7 in {sum(g < -1e-7 for g in gaps.values())}")
        parts.append(text)
    line = "random lme4 cross-check: " + "; ".join(parts)
    out = Path(__file__).resolve().parent.parent / "_build" / "random_crosscheck.json"
    try:
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(RESULTS, indent=1))
    except OSError:
        pass
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_line(line)
    else:
        print(line)


# Three lbfgsb cases (10, 30, 136) were bugs found here -- a stall at an indefinite
# Hessian, a stall just above θ_i = 0, and a stall on the bound with the wrong sign
# of the column below -- fixed in lmmlite.optimize (central differences, probing
# near-bound components, sign flips, saddle-free Newton steps).


@pytest.mark.parametrize("optimizer, i", [(o, i) for o in ("auto", "lbfgsb")
                                          for i in range(N_CASES)])
def test_random_case_against_lme4(optimizer, i):
    require_r()
    formula, df, reml = make_case(i)
    record = {"formula": formula, "n": len(df), "REML": reml, "optimizer": optimizer}
    RESULTS[f"case{i:02d}-{optimizer}"] = record
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = lmer(formula, df, REML=reml, optimizer=optimizer)
        except LmmError as err:
            fit, record["lmmlite_error"] = None, str(err)
    ref, record["lme4_error"] = lme4_case(i)
    # both refuse, or both fit
    assert (fit is None) == (ref is None), f"lmmlite: {record.get('lmmlite_error')}; " \
        f"lme4: {record.get('lme4_error')}"
    if fit is None:
        record["gap"] = None
        return
    assert list(fit.fixef.index) == list(ref["fixef"].index)
    assert len(fit.theta) == len(ref["theta"])
    ours = float(fit.devfun(fit.theta))
    theirs = float(fit.devfun(np.asarray(ref["theta"], dtype=float)))
    gap = ours - theirs
    record.update(gap=gap, ours=ours, lme4=theirs, lme4_crit=ref["crit"],
                  theta=list(map(float, fit.theta)), lme4_theta=list(map(float, ref["theta"])),
                  singular=bool(fit.singular), lme4_singular=bool(ref["singular"]))
    # lme4's own criterion at its θ agrees with lmmlite's evaluation there
    assert theirs == pytest.approx(ref["crit"], rel=1e-7, abs=1e-6)
    assert gap <= GAP_TOL, (f"{formula} (n = {len(df)}, REML = {reml}): lmmlite's criterion "
                            f"{ours:.10g} is above lme4's {theirs:.10g} by {gap:.3g}")
