# The two commands a user needs: `make demo` and `make test`. Both set everything up from scratch.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format tools clean crds

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Binaries the tests and `sedna up` start; installed with apt-get when missing.
tools:
	@bash scripts/ensure-tools.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: $(STAMP) tools lint
	$(BIN)/pytest -q

demo: $(STAMP) tools
	$(BIN)/sedna demo

crds: $(STAMP)
	$(BIN)/sedna crds --write deploy/crds
	$(BIN)/sedna ksm-config --write deploy/kube-state-metrics/sedna-crs.yaml

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
