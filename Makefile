# lmmlite: the library, the book and its tests.  `make help` lists the targets.
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
JB      := $(VENV)/bin/jupyter-book
STAMP   := $(VENV)/.installed

.PHONY: help venv book notebooks test bench clean

help:
	@echo "make venv       create $(VENV) and install lmmlite with extras test, book (and r if R is installed)"
	@echo "make book       build the HTML book into _build/html (executes every chapter)"
	@echo "make notebooks  write every chapter as an executed notebook into notebooks/"
	@echo "make test       run the test suite"
	@echo "make bench      run benchmarks/run.py"
	@echo "make clean      remove build output"

venv: $(STAMP)

# rpy2<3.6 builds against R, so the "r" extra is only installed where R is present.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	if command -v R >/dev/null 2>&1; then \
	    $(PY) -m pip install -e ".[test,book,r]"; \
	else \
	    echo "R not found: installing without the 'r' extra (lme4 cross-checks will be skipped)"; \
	    $(PY) -m pip install -e ".[test,book]"; \
	fi
	touch $(STAMP)

# Execution errors fail the build (nb_execution_raise_on_error in _config.yml).
# scripts/prerun_book.py first executes the chapters in parallel into the build's cache
# (kernel chatter to _build/prerun.log); a chapter that fails there is run again, and
# reported, by the build itself.
book: venv
	@start=$$(date +%s); \
	mkdir -p _build; \
	$(PY) scripts/prerun_book.py 2> _build/prerun.log; \
	$(JB) build . --builder html || exit 1; \
	echo "book built in $$(( $$(date +%s) - start )) s: _build/html/index.html"

notebooks: venv
	$(PY) scripts/notebooks.py --out notebooks

test: venv
	$(PY) -m pytest -rs tests

bench: venv
	$(PY) -c "import statsmodels" 2>/dev/null || $(PY) -m pip install -e ".[bench]"
	$(PY) benchmarks/run.py
	$(PY) benchmarks/glmer_bench.py
	$(PY) benchmarks/inference_bench.py

clean:
	rm -rf _build notebooks .pytest_cache
