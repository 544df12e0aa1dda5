"""Bad input gives a clear error that names the problem -- never a numpy traceback.

GUIDE.md, "Bad input": missing column, non-numeric response, grouping factor
with one level, as many levels as observations, infinite values, a formula
that cannot be parsed (with the position marked by a caret), empty data, the
wrong fitting function for the formula, data that is not a DataFrame.
Missing values are dropped as R's ``na.omit`` and counted; aliased fixed
effects are dropped with lme4's warning, naming them.

Every check asserts the exception type *and* that the message names the
problem (the column, the factor, the position ...).
"""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import simdata
from lmmlite import FormulaError, LmmError, lm, lmer

# exception types that mean "a raw numpy/pandas/python traceback leaked out"
RAW = (KeyError, IndexError, AttributeError, TypeError, ZeroDivisionError,
       np.linalg.LinAlgError, FloatingPointError, OverflowError)


@pytest.fixture
def sleep():
    d = simdata.sleepstudy()
    d["Days"] = d["Days"].astype(float)
    return d


def clear_error(fn, exc_type, *needles):
    """Call fn, expect exc_type (an LmmError) whose message contains every needle."""
    with pytest.raises(exc_type) as info:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn()
    err = info.value
    assert isinstance(err, LmmError), f"{type(err).__name__} is not an LmmError"
    assert isinstance(err, ValueError)
    assert not isinstance(err, RAW)
    msg = str(err)
    for needle in needles:
        if isinstance(needle, re.Pattern):
            assert needle.search(msg), f"{needle.pattern!r} not in message:\n{msg}"
        else:
            assert needle in msg, f"{needle!r} not in message:\n{msg}"
    return err


# ---------------------------------------------------------------- missing column

@pytest.mark.parametrize("formula, name", [
    ("Reaction ~ Dayz + (1 | Subject)", "Dayz"),            # covariate
    ("Reaction ~ Days + (1 | Subj)", "Subj"),               # grouping factor
    ("React ~ Days + (1 | Subject)", "React"),              # response
    ("Reaction ~ Days + (1 + w | Subject)", "w"),           # random slope
    ("Reaction ~ Days + (1 | Subject/clinic)", "clinic"),   # nested factor
    ("Reaction ~ log(dose) + (1 | Subject)", "dose"),       # inside a call
])
def test_missing_column_is_named(sleep, formula, name):
    err = clear_error(lambda: lmer(formula, sleep), LmmError, f"'{name}'", "not a column")
    # the message lists the columns that exist, so the user sees the typo
    assert "Reaction" in str(err) and "Subject" in str(err)


def test_missing_column_lm(sleep):
    clear_error(lambda: lm("Reaction ~ Dayz", sleep), LmmError, "'Dayz'", "not a column")


def test_missing_column_inside_I(sleep):
    clear_error(lambda: lmer("Reaction ~ I(Dayz^2) + (1 | Subject)", sleep),
                LmmError, "Dayz")


# ---------------------------------------------------------------- non-numeric response

@pytest.mark.parametrize("make", [
    lambda d: d["Reaction"].astype(str),                  # strings
    lambda d: d["Reaction"].astype(object),               # object dtype holding floats
    lambda d: d["Days"] > 3,                              # booleans
    lambda d: np.where(d["Days"] > 3, "hi", "lo"),        # labels
])
def test_non_numeric_response(sleep, make):
    d = sleep.assign(resp=make(sleep))
    clear_error(lambda: lmer("resp ~ Days + (1 | Subject)", d), LmmError,
                "response", "'resp'", "numeric")
    clear_error(lambda: lm("resp ~ Days", d), LmmError, "'resp'", "numeric")


# ---------------------------------------------------------------- grouping factors

def test_grouping_factor_with_one_level(sleep):
    d = sleep.assign(site="A")
    clear_error(lambda: lmer("Reaction ~ Days + (1 | site)", d), LmmError,
                "'site'", "1 level", "at least 2 levels")


def test_grouping_factor_with_one_level_after_dropping_missing(sleep):
    # only one level has complete rows: the check is on the model frame
    d = sleep.assign(site=np.where(sleep["Days"] < 2, "A", None))
    clear_error(lambda: lmer("Reaction ~ Days + (1 | site)", d), LmmError,
                "'site'", "1 level")


def test_interaction_grouping_factor_with_one_level(sleep):
    d = sleep.assign(a="x", b="y")
    clear_error(lambda: lmer("Reaction ~ Days + (1 | a:b)", d), LmmError, "'a:b'", "1 level")


def test_as_many_levels_as_observations(sleep):
    d = sleep.assign(id=[f"r{i}" for i in range(len(sleep))])
    clear_error(lambda: lmer("Reaction ~ Days + (1 | id)", d), LmmError,
                "'id'", f"{len(d)} levels", f"{len(d)} observations")


def test_more_levels_than_observations_after_missing(sleep):
    # 180 distinct ids, 20 rows lost to NA: 160 levels for 160 observations
    d = sleep.assign(id=np.arange(len(sleep)))
    d.loc[:19, "Reaction"] = np.nan
    clear_error(lambda: lmer("Reaction ~ Days + (1 | id)", d), LmmError,
                "'id'", "160 levels", "160 observations")


# ---------------------------------------------------------------- infinite values

@pytest.mark.parametrize("column, value", [("Days", np.inf), ("Reaction", -np.inf),
                                           ("Reaction", np.inf)])
def test_infinite_values_are_named(sleep, column, value):
    d = sleep.copy()
    d.loc[[3, 40], column] = value
    clear_error(lambda: lmer("Reaction ~ Days + (1 | Subject)", d), LmmError,
                f"'{column}'", "2 infinite")
    clear_error(lambda: lm("Reaction ~ Days", d), LmmError, f"'{column}'", "infinite")


def test_infinite_from_transformation(sleep):
    # log(0) = -Inf, as R's "NA/NaN/Inf in 'x'"
    clear_error(lambda: lmer("Reaction ~ log(Days) + (1 | Subject)", sleep), LmmError,
                "'log(Days)'", "infinite")


# ---------------------------------------------------------------- unparsable formulas

def _caret_column(msg):
    """(formula line, caret column) from a FormulaError message."""
    lines = msg.split("\n")
    assert len(lines) >= 3, msg
    formula_line, caret_line = lines[-2], lines[-1]
    assert caret_line.strip() == "^", msg
    return formula_line, caret_line.index("^")


@pytest.mark.parametrize("formula, at, words", [
    ("Reaction ~ Days + (1|Subject", len("Reaction ~ Days + (1|Subject"), "')'"),
    ("Reaction ~ Days + + (1|Subject)", len("Reaction ~ Days + "), "'+'"),
    ("Reaction ~ Days $ x + (1|Subject)", len("Reaction ~ Days "), "'$'"),
    ("Reaction ~ Days)", len("Reaction ~ Days"), "')'"),
    ("Reaction ~ ", len("Reaction ~ "), "nothing"),
    ("~ Days + (1|Subject)", 0, "response"),
    ("Reaction ~ Days + (|Subject)", len("Reaction ~ Days + ("), "'|'"),
    ("Reaction ~ Days + (1|)", len("Reaction ~ Days + (1|"), "grouping"),
    ("Reaction ~ Days^x + (1|Subject)", len("Reaction ~ Days^"), "'^'"),
    ("Reaction ~ 2 + Days + (1|Subject)", len("Reaction ~ "), "(2)"),
    ("Reaction ~ Days + (1|Subject) ~ x", len("Reaction ~ Days + (1|Subject) "), "'~'"),
    ("Reaction ~ Days + (0|Subject)", len("Reaction ~ Days + ("), "left of '|'"),
    ("Reaction ~ Days + (1 | Subject + Days)", len("Reaction ~ Days + (1 | Subject "), "'+'"),
    ("Reaction ~ log(Days + (1|Subject)", len("Reaction ~ log"), "parenthesis"),
    ("Reaction Days", len("Reaction Days"), "'~'"),
])
def test_unparsable_formula_shows_position(sleep, formula, at, words):
    err = clear_error(lambda: lmer(formula, sleep), FormulaError, words)
    shown, col = _caret_column(str(err))
    assert shown.strip() == formula.strip()
    # the caret sits under the offending character (both lines share the indent)
    indent = len(shown) - len(shown.lstrip()) if shown.strip() else col
    assert col - indent == at, f"caret at {col - indent}, expected {at}:\n{err}"
    assert err.position == at
    # lm() parses with the same grammar and reports the same way
    if "|" not in formula:
        clear_error(lambda: lm(formula, sleep), FormulaError, words)


@pytest.mark.parametrize("formula", [None, 3, ("y", "x"), ["y ~ x"]])
def test_formula_not_a_string(sleep, formula):
    clear_error(lambda: lmer(formula, sleep), FormulaError, "formula must be a string",
                type(formula).__name__)
    clear_error(lambda: lm(formula, sleep), FormulaError, "formula must be a string")


# ---------------------------------------------------------------- empty data

def test_empty_data(sleep):
    clear_error(lambda: lmer("Reaction ~ Days + (1 | Subject)", sleep.iloc[:0]),
                LmmError, "no rows")
    clear_error(lambda: lm("Reaction ~ Days", sleep.iloc[:0]), LmmError, "no rows")


def test_no_complete_rows(sleep):
    d = sleep.assign(x=np.nan)
    clear_error(lambda: lmer("Reaction ~ Days + x + (1 | Subject)", d), LmmError,
                "no complete rows", "missing")


# ---------------------------------------------------------------- lm / lmer mix-ups

def test_lmer_without_random_term_points_to_lm(sleep):
    clear_error(lambda: lmer("Reaction ~ Days", sleep), LmmError,
                "no random effects", "lm()")


def test_lm_with_random_term_points_to_lmer(sleep):
    clear_error(lambda: lm("Reaction ~ Days + (1 | Subject)", sleep), LmmError,
                re.compile(r"\(1 ?\| ?Subject\)"), "lmer()")


# ---------------------------------------------------------------- data type

@pytest.mark.parametrize("convert, tname", [
    (lambda d: d.to_dict(), "dict"),
    (lambda d: d.to_numpy(), "ndarray"),
    (lambda d: d["Reaction"], "Series"),
    (lambda d: d.values.tolist(), "list"),
    (lambda d: None, "NoneType"),
    (lambda d: "sleepstudy", "str"),
])
def test_data_not_a_dataframe(sleep, convert, tname):
    data = convert(sleep)
    clear_error(lambda: lmer("Reaction ~ Days + (1 | Subject)", data), LmmError,
                "DataFrame", tname)
    clear_error(lambda: lm("Reaction ~ Days", data), LmmError, "DataFrame", tname)


# ---------------------------------------------------------------- missing values

def test_missing_values_dropped_and_counted():
    d = simdata.with_missing()
    used = d[["Reaction", "Days", "Subject"]]
    expect_dropped = int(used.isna().any(axis=1).sum())
    assert expect_dropped > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lmer("Reaction ~ Days + (Days | Subject)", d)
    assert fit.n_dropped == expect_dropped
    assert fit.nobs == len(d) - expect_dropped
    assert len(fit.fitted()) == fit.nobs
    # the summary says so, as R's "(11 observations deleted due to missingness)"
    assert f"({expect_dropped} observations deleted due to missingness)" in str(fit.summary())
    # same fit as on the complete rows
    complete = lmer("Reaction ~ Days + (Days | Subject)", d.dropna(subset=used.columns))
    assert complete.n_dropped == 0
    np.testing.assert_allclose(fit.fixef, complete.fixef, rtol=1e-10)
    np.testing.assert_allclose(fit.reml_criterion, complete.reml_criterion, rtol=1e-12)


def test_missing_values_lm_counted():
    d = simdata.with_missing()
    n_drop = int(d[["Reaction", "Days"]].isna().any(axis=1).sum())
    fit = lm("Reaction ~ Days", d)
    assert fit.nobs == len(d) - n_drop
    assert f"({n_drop} observations deleted due to missingness)" in str(fit.summary())


def test_missing_in_unused_column_is_not_dropped(sleep):
    fit = lmer("Reaction ~ Days + (1 | Subject)", sleep.assign(notes=np.nan))
    assert fit.n_dropped == 0 and fit.nobs == len(sleep)


def test_missing_in_grouping_factor_and_nullable_dtypes(sleep):
    d = sleep.copy()
    d["Subject"] = d["Subject"].astype(str).where(d["Days"] != 0, None)
    d["Reaction"] = d["Reaction"].astype("Float64").where(d["Days"] != 9, pd.NA)
    fit = lmer("Reaction ~ Days + (1 | Subject)", d)
    assert fit.n_dropped == 36 and fit.nobs == 144
    assert not np.isnan(fit.fixef).any()


# ---------------------------------------------------------------- rank deficiency

LME4_RANK_MSG = "fixed-effect model matrix is rank deficient so dropping"


def test_rank_deficient_drops_column_with_lme4_warning(sleep):
    d = sleep.assign(Days2=2 * sleep["Days"] + 1)
    with pytest.warns(UserWarning, match=LME4_RANK_MSG) as rec:
        fit = lmer("Reaction ~ Days + Days2 + (1 | Subject)", d)
    msgs = [str(w.message) for w in rec if LME4_RANK_MSG in str(w.message)]
    assert len(msgs) == 1
    assert f"{LME4_RANK_MSG} 1 column / coefficient" in msgs[0]
    assert "Days2" in msgs[0]
    assert list(fit.fixef.index) == ["(Intercept)", "Days"]
    assert fit.dropped == ["Days2"]
    ref = lmer("Reaction ~ Days + (1 | Subject)", sleep)
    np.testing.assert_allclose(fit.fixef, ref.fixef, rtol=1e-8)


def test_rank_deficient_several_columns_named():
    # an empty cell of a factor crossing: a2:b2 and a3:b2 cannot be estimated
    rng = np.random.default_rng(7)
    a = np.repeat(["a1", "a2", "a3"], 40)
    b = np.tile(["b1", "b2"], 60)
    keep = ~((a != "a1") & (b == "b2"))
    d = pd.DataFrame({"a": a[keep], "b": b[keep], "g": rng.integers(0, 8, keep.sum()).astype(str),
                      "y": rng.normal(size=keep.sum())})
    with pytest.warns(UserWarning, match=LME4_RANK_MSG) as rec:
        fit = lmer("y ~ a * b + (1 | g)", d)
    msg = next(str(w.message) for w in rec if LME4_RANK_MSG in str(w.message))
    assert "dropping 2 columns / coefficients" in msg
    assert "aa2:bb2" in msg and "aa3:bb2" in msg
    assert "aa2:bb2" not in fit.fixef.index and not np.isnan(fit.fixef).any()


def test_too_many_fixed_effects():
    d = pd.DataFrame({"y": [1., 2, 3, 4], "f": list("abcd"), "g": list("aabb")})
    clear_error(lambda: lmer("y ~ f + (1 | g)", d), LmmError, "4 fixed effects",
                "4 observations")


# ---------------------------------------------------------------- no raw tracebacks

def _bad_inputs():
    d = simdata.sleepstudy()
    d["Days"] = d["Days"].astype(float)
    inf = d.copy()
    inf.loc[5, "Days"] = np.inf
    return [
        ("missing column", lambda: lmer("Reaction ~ x + (1|Subject)", d)),
        ("non-numeric response", lambda: lmer("S ~ Days + (1|Subject)", d.assign(S="a"))),
        ("one level", lambda: lmer("Reaction ~ Days + (1|g)", d.assign(g=1))),
        ("n levels", lambda: lmer("Reaction ~ Days + (1|g)", d.assign(g=range(len(d))))),
        ("infinite", lambda: lmer("Reaction ~ Days + (1|Subject)", inf)),
        ("parse", lambda: lmer("Reaction ~ (Days + (1|Subject)", d)),
        ("parse2", lambda: lmer("Reaction ~ Days + (1|Subject))", d)),
        ("parse3", lambda: lmer("Reaction ~ * Days + (1|Subject)", d)),
        ("parse4", lambda: lmer("Reaction ~ Days + (1 ||)", d)),
        ("parse5", lambda: lmer("Reaction ~ Days + (1 | Subject/)", d)),
        ("parse6", lambda: lmer("Reaction ~ Days:", d)),
        ("parse7", lambda: lm("Reaction ~ `Days", d)),
        ("empty", lambda: lmer("Reaction ~ Days + (1|Subject)", d.iloc[:0])),
        ("empty columns", lambda: lmer("Reaction ~ Days + (1|Subject)", pd.DataFrame())),
        ("no random", lambda: lmer("Reaction ~ Days", d)),
        ("random in lm", lambda: lm("Reaction ~ Days + (1|Subject)", d)),
        ("not a frame", lambda: lmer("Reaction ~ Days + (1|Subject)", d.to_numpy())),
        ("all missing", lambda: lmer("Reaction ~ Days + (1|Subject)", d.assign(Reaction=np.nan))),
        ("one row", lambda: lmer("Reaction ~ Days + (1|Subject)", d.iloc[:1])),
        ("two rows", lambda: lmer("Reaction ~ Days + (1|Subject)", d.iloc[[0, 10]])),
        ("p >= n", lambda: lmer("Reaction ~ Days + Subject + (1|Subject)", d.iloc[[0, 1, 10]])),
        ("bad I()", lambda: lmer("Reaction ~ I(Days +) + (1|Subject)", d)),
        ("log of text", lambda: lmer("Reaction ~ log(S) + (1|Subject)", d.assign(S="a"))),
    ]


@pytest.mark.parametrize("label, call", _bad_inputs(), ids=[b[0] for b in _bad_inputs()])
def test_no_raw_traceback(label, call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(LmmError) as info:
            call()
    assert not isinstance(info.value, RAW)
    assert len(str(info.value)) > 15


# ---------------------------------------------------------------- bugs found and fixed

def test_duplicated_column_name_is_named(sleep):
    d = pd.concat([sleep, sleep[["Days"]]], axis=1)
    clear_error(lambda: lmer("Reaction ~ Days + (1 | Subject)", d), LmmError, "'Days'")


def test_single_level_fixed_factor_is_reported(sleep):
    d = sleep.assign(f="a")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        try:
            lmer("Reaction ~ Days + f + (1 | Subject)", d)
        except LmmError as err:
            assert "'f'" in str(err)
            return
    assert any("f" in str(w.message) and "level" in str(w.message) for w in rec), \
        "single-level factor 'f' dropped silently"


def test_as_many_random_effects_as_observations():
    d = pd.DataFrame({"g": ["g1", "g1", "g0", "g0"], "x": [2.188595, 1.801843, 2.960634, 2.157350],
                      "y": [3.255246, 2.170670, 3.851149, 3.573064]})
    clear_error(lambda: lmer("y ~ x + (1 + x | g)", d), LmmError,
                "random effects", "4", "observations")
