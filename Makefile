# FlowMonkey — the two commands a newcomer needs:
#   make demo   run a demo flow end to end on the embedded log (no services needed)
#               (make demo-ui: then serve the explorer on its data, http://127.0.0.1:8080/ui)
#   make test   run the whole test suite (starts a real PostgreSQL and Apache Kafka)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

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

test: $(VENV)/.installed-dev
	$(BIN)/python -m flowmonkey.testing.services fetch-kafka
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/mypy

# the embedded benchmark; `flowmonkey bench kafka|jobs|snapshots` runs the others
bench: $(VENV)/.installed-dev
	$(BIN)/python bench/embedded_throughput.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
