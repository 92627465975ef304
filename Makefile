# mwl-broker: two commands. `make run` serves on the embedded Redis; `make test` runs the suite.
# Both install exactly the lock (requirements/*.txt, hashes checked); `make lock` refreshes it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORPUS ?= ../shared/corpus
# The lock tool, pinned; only `make lock` needs it.
UV_VERSION := 0.13.9
LOCK_FLAGS := --universal --python-version 3.11 --generate-hashes --no-header --quiet
# `make lock` keeps the pins the ranges still allow (uv prefers the lock it rewrites) and adds new
# packages at their newest; `make lock UPGRADE=1` moves everything to the newest the ranges allow.
LOCK_FLAGS += $(if $(UPGRADE),--upgrade)
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: run test lint typecheck pytest unit conformance fuzz soak lock test-latest clean help

help:
	@echo "make run          set up .venv from the lock and run the broker (embedded Redis, MLLP 2575, DICOM 11112)"
	@echo "make test         set up .venv from the lock, lint, type-check and run the whole suite"
	@echo "make conformance  the public corpus (CORPUS=$(CORPUS)) through the tests marked 'corpus' and a real broker"
	@echo "make fuzz         the fuzz smoke's properties with 20,000 examples each"
	@echo "make soak         crash safety: $(SOAK_MESSAGES) messages, $(SOAK_BROKER_KILLS) broker SIGKILLs, $(SOAK_REDIS_KILLS) Redis SIGKILL(s); prints the report"
	@echo "                  (the long form: make soak SOAK_MESSAGES=100000 SOAK_BROKER_KILLS=5 SOAK_REDIS_KILLS=2)"
	@echo "make lock         re-resolve requirements/*.txt from pyproject.toml (keeps pins; UPGRADE=1: newest)"
	@echo "make test-latest  the suite in .venv-latest, on the newest versions the ranges allow (not the lock)"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "mwl-broker needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)

# The lock first (with hashes), then the project itself, editable, without touching the network.
$(VENV)/.run-installed: requirements/run.txt pyproject.toml | $(BIN)/python
	$(PIP) install --require-hashes -r requirements/run.txt
	$(PIP) install --no-deps --no-build-isolation -e .
	@touch $@

$(VENV)/.test-installed: requirements/test.txt pyproject.toml | $(BIN)/python
	$(PIP) install --require-hashes -r requirements/test.txt
	$(PIP) install --no-deps --no-build-isolation -e .
	@touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/mwl-broker serve $(ARGS)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check broker tests bench
	$(BIN)/ruff format --check broker tests bench
	$(BIN)/lint-imports --no-cache

typecheck: $(VENV)/.test-installed
	$(BIN)/mypy

pytest: $(VENV)/.test-installed
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

unit: $(VENV)/.test-installed
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# The tests marked `corpus`, then every HL7 file of the corpus through `mwl-broker serve`;
# fails on a missing corpus, a crash, a missing ACK, or an order neither applied nor refused
# with an ERR location. Report: build/conformance/report.{md,json}
conformance: $(VENV)/.test-installed
	@test -d "$(CORPUS)" || { echo "make conformance: no corpus at $(CORPUS) (set CORPUS=DIR)"; exit 1; }
	MWL_CORPUS="$(abspath $(CORPUS))" $(BIN)/pytest -m corpus $(PYTEST_ARGS)
	MWL_CORPUS="$(abspath $(CORPUS))" $(BIN)/python -m tests.conformance.run_corpus --report build/conformance

# The fuzz smoke's properties (framing, HL7 decode + map, C-FIND identifiers) with
# 20,000 examples each instead of a hundred: minutes, not seconds.
fuzz: $(VENV)/.test-installed
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -p no:cacheprovider --timeout 3600 tests/unit/test_fuzz_smoke.py $(PYTEST_ARGS)

# Resending senders, the broker killed with SIGKILL and restarted, its redis-server killed,
# MPPS to the RIS; then every check of tests/crash/checks.py (bench/soak.py). Exit 1 on a failure.
SOAK_MESSAGES ?= 10000
SOAK_BROKER_KILLS ?= 2
SOAK_REDIS_KILLS ?= 1
soak: $(VENV)/.test-installed
	$(BIN)/python -m bench.soak --messages $(SOAK_MESSAGES) --broker-kills $(SOAK_BROKER_KILLS) --redis-kills $(SOAK_REDIS_KILLS)

lock: | $(BIN)/python
	$(PIP) install uv==$(UV_VERSION)
	$(BIN)/uv pip compile pyproject.toml requirements/build.in $(LOCK_FLAGS) -o requirements/run.txt
	$(BIN)/uv pip compile pyproject.toml requirements/build.in --extra test $(LOCK_FLAGS) -o requirements/test.txt
	@echo "lock refreshed: review 'git diff requirements/', then run 'make test'"

# A venv of its own, built from the ranges in pyproject.toml (newest versions), never the lock.
test-latest:
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip --disable-pip-version-check -q install --upgrade pip
	.venv-latest/bin/python -m pip --disable-pip-version-check -q install --upgrade -r requirements/build.in -e '.[test]'
	@touch .venv-latest/.test-installed .venv-latest/.run-installed
	mkdir -p build && .venv-latest/bin/python -m pip list --format=freeze > build/latest-versions.txt
	$(MAKE) test VENV=.venv-latest

clean:
	rm -rf $(VENV) .venv-latest .mypy_cache .ruff_cache .pytest_cache
