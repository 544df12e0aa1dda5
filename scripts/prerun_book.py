"""Execute the book's chapters in parallel into the Jupyter cache, before ``jupyter-book build``.

Jupyter Book 1.x executes one chapter after another while Sphinx reads them; on a
machine with several cores most of the build is then spent waiting. This script adds
every page of ``_toc.yml`` that has code cells to the build's cache
(``_build/.jupyter_cache``, as ``execute_notebooks: cache`` uses it), reads them with
MyST-NB's own reader (so the cache keys are the ones the build looks up) and executes
the missing ones with jupyter-cache's parallel executor, one process per core. The
build then finds every chapter cached; a chapter that failed here is executed again
by the build, which stops on its error as before.

    python scripts/prerun_book.py            # from the repository root
"""

import os
import re
import sys
from pathlib import Path

from jupyter_cache import get_cache
from jupyter_cache.executors import load_executor

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "_build" / ".jupyter_cache"
READER = {"name": "myst_nb_md", "type": "plugin"}     # MyST-NB's entry point for jupyter-cache


def _pages():
    """The .md pages named in _toc.yml that contain code cells."""
    toc = (ROOT / "_toc.yml").read_text()
    names = re.findall(r"^\s*(?:-\s*file|root):\s*(\S+)", toc, flags=re.M)
    pages = [ROOT / f"{name}.md" for name in names]
    return [p for p in pages if p.exists() and "```{code-cell}" in p.read_text()]


def main():
    """Add the book's pages to the cache's project and execute what is not cached."""
    cache = get_cache(str(CACHE))
    pages = _pages()
    for page in pages:
        cache.add_nb_to_project(str(page), read_data=READER)
    executor = load_executor("local-parallel", cache=cache)
    result = executor.run_and_cache(filter_uris=[str(p) for p in pages], timeout=300,
                                    allow_errors=False)
    print(f"prerun: {len(result.succeeded)} executed, {len(result.excepted)} failed "
          f"(the build re-runs and reports those), {len(pages)} pages", flush=True)
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
