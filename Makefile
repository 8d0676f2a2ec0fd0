# Two commands on a fresh machine: `make run` (install + start a node with embedded defaults)
# and `make test` (install test dependencies + lint + the whole test suite).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test
SYSDEPS := $(VENV)/.installed-system
# Debian packages the tests drive for real: Prometheus is the PromQL reference engine;
# amtool and Alertmanager check the Alertmanager-compatible API and external delivery; headless
# Chromium (driven by Playwright for Python, no browser download) tests the web UI.
DEBS   := prometheus prometheus-alertmanager chromium
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint bench screenshots clean

$(PY):
	$(PYTHON) -m venv $(VENV) || (apt-get update && apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV))
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(TSTAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

$(SYSDEPS): | $(PY)
	@missing=""; for b in $(DEBS); do command -v $$b >/dev/null || [ -x /usr/bin/$$b ] || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi
	touch $@

run: $(STAMP)
	$(VENV)/bin/lookout serve $(ARGS)

lint: $(TSTAMP)
	$(VENV)/bin/ruff check lookout tests bench conformance

test: $(TSTAMP) $(SYSDEPS) lint
	$(VENV)/bin/pytest -q

bench: $(TSTAMP) $(SYSDEPS)
	$(PY) bench/bench_traces.py
	$(PY) bench/bench_metrics.py
	$(PY) bench/bench_logs.py

# The README's screenshots, as the UI tests take them (run `make test` first).
SHOTS := dashboard-service-overview trace-waterfall logs-explorer metrics-graph-history service-map alerts
screenshots:
	mkdir -p docs/screenshots
	for s in $(SHOTS); do cp test-output/ui/$$s.png docs/screenshots/; done

clean:
	rm -rf $(VENV) lookout-data .pytest_cache
