"""Write every chapter of the book as an executed Jupyter notebook.

    python scripts/notebooks.py [--out notebooks] [--no-execute] [chapters ...]

Chapters are the MyST Markdown files listed in ``_toc.yml`` (in book order).
Each is converted with jupytext and executed with nbclient in the ``chapters/``
directory; a cell error stops the script with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def chapters() -> list[Path]:
    """The chapter sources named in _toc.yml, in book order."""
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    names = re.findall(r"^\s*(?:root|-\s*file)\s*:\s*(\S+)", toc, flags=re.M)
    return [ROOT / f"{name}.md" for name in names]


def to_notebook(path: Path, execute: bool = True, timeout: int = 600) -> nbformat.NotebookNode:
    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)
    if execute:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "notebooks"))
    ap.add_argument("--no-execute", action="store_true")
    ap.add_argument("files", nargs="*", type=Path)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in args.files or chapters():
        t0 = time.perf_counter()
        nb = to_notebook(path, execute=not args.no_execute)
        dest = out / f"{path.stem}.ipynb"
        nbformat.write(nb, dest)
        print(f"{dest.relative_to(Path.cwd()) if dest.is_relative_to(Path.cwd()) else dest}"
              f"  ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
