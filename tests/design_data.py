"""The data sets of tests/golden/data/ as pandas DataFrames, factors rebuilt.

R's factors do not survive a CSV file, so ``tests/golden/design_ref.json``
records, per data set, the file and for every factor column its levels and
whether it is ordered; :func:`load_golden` rebuilds the pandas Categoricals
(``ordered=True`` where R has an ordered factor, e.g. cake's temperature).
Written by ``tests/r_design_ref.py``; read by the design tests without R.
"""

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

GOLDEN = Path(__file__).resolve().parent / "golden"
REF_JSON = GOLDEN / "design_ref.json"


@lru_cache(maxsize=1)
def golden():
    """The stored R reference values (design_ref.json) as a dict."""
    return json.loads(REF_JSON.read_text())


def load_golden(name, meta=None):
    """Data set ``name`` of the golden JSON's ``data`` table, with its factors."""
    meta = (meta or golden()["data"])[name]
    factors = meta["factors"]
    df = pd.read_csv(GOLDEN / meta["file"], dtype={c: str for c in factors})
    for col, f in factors.items():
        df[col] = pd.Categorical(df[col], categories=f["levels"], ordered=f["ordered"])
    return df


def floats(values):
    """A JSON list (None = R's NA) as a float array with NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def assert_same(live, stored, where, rtol, text=None):
    """A live R computation equals the stored golden entry: equal structure, numbers to
    ``rtol`` (fits re-converge on other machines), strings equal -- those whose key ends
    in "text" after ``text`` (a normaliser of printed output) when it is given."""
    if isinstance(live, dict):
        assert set(live) == set(stored), where
        for k in live:
            assert_same(live[k], stored[k], f"{where}/{k}", rtol, text)
    elif isinstance(live, list) and live and all(isinstance(v, (float, type(None))) for v in live):
        np.testing.assert_allclose(floats(live), floats(stored), rtol=rtol, atol=1e-9,
                                   err_msg=where)
    elif isinstance(live, list):
        assert len(live) == len(stored), where
        for i, (a, b) in enumerate(zip(live, stored)):
            assert_same(a, b, f"{where}[{i}]", rtol, text)
    elif isinstance(live, float):
        np.testing.assert_allclose(live, stored, rtol=rtol, err_msg=where)
    elif text is not None and isinstance(live, str) and where.endswith("text"):
        assert text(live) == text(stored), where
    else:
        assert live == stored, where
