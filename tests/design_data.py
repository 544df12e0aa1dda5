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
