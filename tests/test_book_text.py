"""The rendered book reads like R output, not like numpy, and its effect sizes are R's.

Like test_book_numbers.py these checks read the built HTML (_build/html) and are
skipped when the book is not built (unless LMMLITE_REQUIRE_BROWSER=1).
"""

import html
import json
import re

import pytest

from test_book_numbers import HTML, _book_text
from test_published_numbers import GOLDEN


@pytest.fixture(scope="module")
def book_text():
    return _book_text()


def test_no_numpy_scalar_reprs(book_text):
    # e.g. np.float64(-1.8292545446703175) from a bare scalar as the last line of a cell
    found = re.findall(r"np\.(?:float|int|uint|bool)\w*\([^)]*\)", book_text)
    assert not found, f"numpy scalar reprs in the book: {found[:5]}"


def test_every_glue_reference_resolved(book_text):
    # an unresolved {glue:text}`key` role is left in the page as its source text
    assert "{glue" not in book_text


def test_glossary_names_the_r_terms(book_text):
    page = (HTML / "glossary.html").read_text()
    glossary = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    for term in ["lmerModLmerTest", "df.resid", "Signif. codes", "condval", "condsd",
                 "postVar", "re.form = NA", "|>", "filter", "mutate", "pbkrtest"]:
        assert term in glossary, f"the glossary does not explain {term}"


def _table_row(page, label, ncol):
    cells = r"\s*".join([r"<td>([^<]*)</td>"] * ncol)
    m = re.search(rf"<th>{re.escape(label)}</th>\s*{cells}", page)
    assert m, f"no table row {label!r}"
    return [float(v) for v in m.groups()]


def test_r2_and_icc_table_matches_performance():
    """Chapter 10's table (3 decimals) against R's performance::r2_nakagawa / icc
    (tests/golden/r2_nakagawa.json, written by tests/r2_nakagawa_ref.R)."""
    _book_text()      # skips when the book is not built
    page = (HTML / "10-p-values.html").read_text()
    ref = json.loads((GOLDEN / "r2_nakagawa.json").read_text())
    models = ["plasma mm", "sleepstudy fm", "workflow full"]
    for label in ["R2 marginal", "R2 conditional", "ICC adjusted", "ICC unadjusted"]:
        shown = _table_row(page, label, len(models))
        for model, value in zip(models, shown):
            assert value == pytest.approx(ref[model][label], abs=0.0006), (label, model)
