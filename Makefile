# Two commands on a fresh machine: `make run` (install + start a node with embedded defaults)
# and `make test` (install test dependencies + lint + the whole test suite).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: run test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV) || (apt-get update && apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV))
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(TSTAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

run: $(STAMP)
	$(VENV)/bin/lookout serve $(ARGS)

lint: $(TSTAMP)
	$(VENV)/bin/ruff check lookout tests bench

test: $(TSTAMP) lint
	$(VENV)/bin/pytest -q

bench: $(TSTAMP)
	$(PY) bench/bench_traces.py

clean:
	rm -rf $(VENV) lookout-data .pytest_cache
