"""Every chapter of the book executes without a cell error.

Each MyST Markdown chapter named in ``_toc.yml`` is read with jupytext and run
with nbclient (python3 kernel, working directory ``chapters/``), exactly as
``make notebooks`` does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import notebooks  # noqa: E402  (scripts/notebooks.py)

from nbclient.exceptions import CellExecutionError  # noqa: E402

CHAPTERS = notebooks.chapters()


def test_toc_lists_existing_chapters():
    assert CHAPTERS, "_toc.yml lists no chapters"
    missing = [str(p.relative_to(ROOT)) for p in CHAPTERS if not p.exists()]
    assert not missing, f"_toc.yml names missing files: {missing}"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_executes(path: Path):
    try:
        nb = notebooks.to_notebook(path, execute=True, timeout=600)
    except CellExecutionError as exc:
        pytest.fail(f"{path.relative_to(ROOT)}: a cell failed\n{exc}", pytrace=False)
    errors = [o for c in nb.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
