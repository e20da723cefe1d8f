# FlowMonkey — the two commands a newcomer needs:
#   make demo   run a demo flow end to end on the embedded log (no services needed)
#               (make demo-ui: then serve the explorer on its data, http://127.0.0.1:8080/ui)
#   make test   run the whole test suite (starts a real PostgreSQL and Apache Kafka;
#               installs Debian's chromium for the browser tests when missing)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

# The browser tests (tests/browser) drive Debian's Chromium through Playwright's Python
# client: installed when missing, quietly, refreshing the package lists only when the
# install fails without that
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT_INSTALL := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null

.PHONY: demo demo-ui test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/flowmonkey demo

demo-ui: $(VENV)/.installed
	$(BIN)/flowmonkey demo --ui

test: $(VENV)/.installed-dev $(CHROMIUM)
	$(BIN)/python -m flowmonkey.testing.services fetch-kafka
	$(BIN)/python -m pytest

$(CHROMIUM):
	@echo "installing Debian's chromium for the browser tests..."
	@$(APT_INSTALL) 2>/dev/null || { $(SUDO) apt-get update -qq >/dev/null && $(APT_INSTALL); }

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/mypy

# the embedded benchmark; `flowmonkey bench kafka|jobs|snapshots` runs the others
bench: $(VENV)/.installed-dev
	$(BIN)/python bench/embedded_throughput.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
