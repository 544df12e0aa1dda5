"""Every number of the slides' R output appears in the rendered book.

The golden files in tests/golden/ hold the slides' output blocks; each number in
them must occur in the HTML text of the built book (_build/html), except the one
number that no reconstruction reproduces (Chisq 4.8826 of the sleepstudy LRT).  The
book is built by `make book` (and by .ci/run before the tests); without a build
this test is skipped, unless LMMLITE_REQUIRE_BROWSER=1 (CI), where it fails.
"""

import html
import os
import re
from pathlib import Path

import pytest

from test_published_numbers import GOLDEN, _lines

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html" / "chapters"
NUMBER = re.compile(r"(?<![\w.])-?\d+\.\d+(?:e[-+]\d+)?|(?<![\w.])\d+e-\d+")
# the one number of the sleepstudy LRT that no subject labelling reproduces
UNREPRODUCED = {"sleep_anova_m2_m3.txt": {"4.8826"}}


def _book_text():
    if not HTML.is_dir():
        msg = "the book is not built (run make book)"
        if os.environ.get("LMMLITE_REQUIRE_BROWSER") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", p.read_text(errors="replace")))
                    for p in HTML.glob("*.html"))
    return text


@pytest.fixture(scope="module")
def book_text():
    return _book_text()


@pytest.mark.parametrize("golden", sorted(p.name for p in GOLDEN.glob("*.txt")))
def test_slide_numbers_in_book(book_text, golden):
    lines = _lines((GOLDEN / golden).read_text())
    wanted = {tok for ln in lines for tok in NUMBER.findall(ln)} - UNREPRODUCED.get(golden, set())
    missing = sorted(tok for tok in wanted if tok not in book_text)
    assert not missing, f"{golden}: not in the rendered book: {missing}"
