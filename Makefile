# azwait — `make help` lists the targets. Every target installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv demo test unit integration lint bench bench-startup clean packer-check

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

$(STAMP): agent/pyproject.toml agent/requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r agent/requirements.lock -r tests/requirements.txt
	$(BIN)/pip install --quiet --no-deps -e agent
	touch $@

venv: $(STAMP) ## Create .venv with azwait and the pinned dependencies

demo: $(STAMP) ## Watch azwait hold a worker until the simulated VM turns Succeeded
	tests/demo.sh $(BIN)

test: lint unit integration packer-check ## The test command: lint, unit, integration, packaging checks

unit: $(STAMP) ## Unit tests (pure logic)
	$(BIN)/python -m pytest -q tests/unit

integration: $(STAMP) ## The real azwait executable against azwait sim on loopback
	$(BIN)/python -m pytest -q tests/integration

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check agent tests
	$(BIN)/mypy --config-file agent/pyproject.toml agent/azwait

packer-check: ## Validate the Packer template offline (installs packer and shellcheck if missing)
	tests/packer/check.sh

bench: $(STAMP) ## Start-up, marker, memory and detection-delay benchmarks (medians)
	$(BIN)/python tests/perf/bench_agent.py

clean: ## Remove the venv and build output
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
