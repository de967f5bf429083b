# Two commands for a fresh machine: `make demo` and `make test`.
# Both create/refresh .venv, install torch==2.13.0 (CPU build) first, then the package
# (with its test and docs extras). `make docs` builds the documentation site into site/,
# `make docs-check` also opens it in headless Chromium (apt-get install -y chromium).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.svf-installed

.PHONY: install demo test test-all docs docs-check clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,docs]'
	# test/benchmark-only reference implementation (its dependency pins break torch)
	$(PY) -m pip install --quiet --no-deps spikingjelly==2.0.0 loguru
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/svf demo

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m 'not browser'

# strict: a broken link, a page missing from the nav or an unresolved reference fails the build
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# the built site in headless Chromium: screenshots and DOM dumps in build/docs-check/
docs-check: docs
	SVF_DOCS_SITE=site $(PY) -m pytest -q -m browser tests/test_docs_browser.py

clean:
	rm -rf $(VENV) build site src/*.egg-info .pytest_cache
