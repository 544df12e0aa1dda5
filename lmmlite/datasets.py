"""The course data sets, shipped with the package (see data/README.md for provenance)."""

from importlib import resources

import pandas as pd

from .errors import LmmError

# columns that are categorical (factors in R) in each data set
_FACTORS = {
    "plasma": ["group"],
    "sleepstudy": ["Subject"],
    "sleepstudy_sex": ["Subject", "sex"],
    "clinics_nested": ["region", "clinic"],
    "clinics_crossed": ["clinic", "doctor"],
    "cbpp": ["herd", "period"],
    "grouseticks": ["INDEX", "BROOD", "YEAR", "LOCATION"],
}


def datasets():
    """Names of the data sets that :func:`load` knows."""
    files = resources.files("lmmlite.data").iterdir()
    return sorted(f.name[:-4] for f in files if f.name.endswith(".csv"))


def load(name):
    """Load a course data set as a pandas DataFrame, with factors as categoricals.

    >>> df = load("sleepstudy")   # Reaction, Days, Subject
    """
    path = resources.files("lmmlite.data") / f"{name}.csv"
    if not path.is_file():
        raise LmmError(f"no data set called {name!r}; available: {', '.join(datasets())}")
    with path.open() as fh:
        df = pd.read_csv(fh)
    for col in _FACTORS.get(name, []):
        if col in df:
            df[col] = pd.Categorical(df[col], categories=sorted(df[col].dropna().unique()))
    return df
