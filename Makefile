# mwl-broker: two commands. `make run` serves on the embedded Redis; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint typecheck unit conformance clean help

help:
	@echo "make run    set up .venv and run the broker (embedded Redis, MLLP 2575, DICOM 11112)"
	@echo "make test   set up .venv with test tools, lint, type-check and run the whole suite"
	@echo "make conformance  every HL7 file of ../shared/corpus/hl7 through a real broker; report in build/conformance"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "mwl-broker needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/mwl-broker serve $(ARGS)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check broker tests bench
	$(BIN)/ruff format --check broker tests bench

typecheck: $(VENV)/.test-installed
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

# Every corpus message through `mwl-broker serve`; fails on a crash, a missing ACK, or an
# order neither applied nor refused with an ERR location. Report: build/conformance/report.{md,json}
conformance: $(VENV)/.test-installed
	$(BIN)/python -m tests.conformance.run_corpus --report build/conformance

unit: $(VENV)/.test-installed
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
