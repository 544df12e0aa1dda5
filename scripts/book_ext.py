"""Sphinx extension for the book: offline MathJax and notebook downloads.

1. Jupyter Book adds every ``.js`` file under ``_static/`` to every page, which
   would load the vendored MathJax a second time, without ``defer`` and on pages
   without math. ``mathjax_path`` already loads it where needed, so it is removed
   from ``html_js_files`` here.

2. Jupyter Book 1.0.4 registers sphinx-thebe's and sphinx-togglebutton's inline
   scripts twice; the second ``const THEBE_JS_URL`` is a SyntaxError in the
   browser console. Duplicate script entries are dropped.

3. myst-nb executes every MyST Markdown chapter during the build and writes the
executed notebook to ``_build/jupyter_execute/<page>.ipynb``. This extension

* copies it next to the page sources (``_sources/<page>.ipynb``) and sets
  ``ipynb_source`` so sphinx-book-theme's download button lists ".ipynb"
  (the theme only does this itself when a Binder/JupyterHub launch button is
  configured, which an offline book does not have);
* after the build, copies all executed notebooks to ``<html>/notebooks/``,
  flat, the same names ``make notebooks`` writes to ``notebooks/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx


def _executed(app: Sphinx, pagename: str) -> Path:
    return Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"


def _page_context(app: Sphinx, pagename, templatename, context, doctree) -> None:
    if app.builder.format != "html":
        return
    src = _executed(app, pagename)
    if not src.exists():
        return
    dest = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)
    context["ipynb_source"] = f"{pagename}.ipynb"
    context["notebook_download"] = f"notebooks/{Path(pagename).name}.ipynb"


def _build_finished(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    ex_dir = Path(app.outdir).parent / "jupyter_execute"
    out = Path(app.outdir) / "notebooks"
    out.mkdir(parents=True, exist_ok=True)
    for docname in sorted(app.env.found_docs):
        src = ex_dir / f"{docname}.ipynb"
        if src.exists():
            shutil.copy2(src, out / f"{Path(docname).name}.ipynb")


def _config_inited(app: Sphinx, config) -> None:
    mathjax = str(config.mathjax_path)
    config.html_js_files = [
        js for js in config.html_js_files
        if (js[0] if isinstance(js, (tuple, list)) else js) != mathjax
    ]


def _dedupe_scripts(app: Sphinx, pagename, templatename, context, doctree) -> None:
    files = context.get("script_files")
    if not isinstance(files, list):
        return
    seen, unique = set(), []
    for js in files:
        key = (js.filename or "", tuple(sorted((k, str(v)) for k, v in js.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    files[:] = unique


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _config_inited)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    # Run before sphinx-book-theme builds its header buttons (priority 500).
    app.connect("html-page-context", _page_context, priority=400)
    app.connect("build-finished", _build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
