# Two commands for a fresh machine: `make demo` and `make test`.
# Both create/refresh .venv, install torch==2.13.0 (CPU build) first, then the package.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.svf-installed

.PHONY: install demo test test-all clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	# test/benchmark-only reference implementation (its dependency pins break torch)
	$(PY) -m pip install --quiet --no-deps spikingjelly==2.0.0 loguru
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/svf demo

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
