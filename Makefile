# duban (督办) — developer entry points.
#
# Quick start:  make run    (local bot, console delivery, SQLite under ./data/)
#               make test   (test suite; SQLite unless DUBAN_TEST_DATABASE_URL is set)
#
# Every target first makes sure .venv exists and holds `pip install -e '.[dev]'`; run and test
# also make sure of the system packages (scripts/system-deps: the CJK font, and chromium for
# the dashboard test), installing them with apt-get when run as root.
# The install is redone only when pyproject.toml is newer than .venv/.installed.
#
# Overridable variables (environment or command line):
#   PYTHON          interpreter used to create .venv (default: python3.11, else python3 >= 3.11)
#   PYTEST_ARGS     extra pytest arguments, e.g. make test PYTEST_ARGS='-k reminders -x'
#   DUBAN_DELIVERY  delivery backend for `make run` (default: console)
#   DUBAN_*         any other setting is read by the app from the environment as usual
#   DUBAN_TEST_DATABASE_URL  e.g. postgresql+asyncpg://user@127.0.0.1:5432/postgres — the
#                   tests create/drop their own databases there (user needs CREATE DATABASE)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV      := .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
PYTHON    ?=
PIP_FLAGS ?= --quiet --disable-pip-version-check
PYTEST_ARGS ?=
DUBAN_DELIVERY ?= console
DUBAN_CONSOLE ?= true
# Links the bot hands out (charts, ledger downloads, 看板) point here in the quick start.
DUBAN_PUBLIC_URL ?= http://127.0.0.1:8080

.PHONY: help setup run test lint clean

help: ## List targets
	@echo "usage: make <target>"
	@grep -E '^[a-z][a-zA-Z_-]*:.*## ' $(firstword $(MAKEFILE_LIST)) \
	  | awk -F':.*## ' '{ printf "  %-8s %s\n", $$1, $$2 }'

# Create the virtualenv with the first interpreter that is Python >= 3.11.
$(BIN)/python:
	@py=""; \
	for cand in $(PYTHON) python3.11 python3; do \
	  if command -v "$$cand" >/dev/null 2>&1 \
	     && "$$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then \
	    py="$$cand"; break; \
	  fi; \
	done; \
	if [ -z "$$py" ]; then \
	  echo "error: duban needs Python >= 3.11; neither python3.11 nor python3 qualifies" >&2; \
	  echo "       (python3 -V: $$(python3 -V 2>&1)); install 3.11 or set PYTHON=/path/to/python3.11" >&2; \
	  exit 1; \
	fi; \
	echo "==> creating $(VENV) with $$py ($$("$$py" -V 2>&1))"; \
	"$$py" -m venv $(VENV) || { \
	  echo "error: '$$py -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2; \
	  rm -rf $(VENV); exit 1; }

$(STAMP): pyproject.toml | $(BIN)/python
	@echo "==> installing duban with dev extras into $(VENV)"
	$(BIN)/pip install $(PIP_FLAGS) -e '.[dev]'
	@touch $@

setup: $(STAMP) ## Create .venv and install duban[dev] (only when needed)
	@:

run: setup ## Run the bot locally (console delivery, SQLite in ./data, 127.0.0.1:8080)
	@scripts/system-deps
	@mkdir -p data
	DUBAN_DELIVERY='$(DUBAN_DELIVERY)' DUBAN_CONSOLE='$(DUBAN_CONSOLE)' \
	  DUBAN_PUBLIC_URL='$(DUBAN_PUBLIC_URL)' $(BIN)/duban serve

test: setup ## Run the test suite (PYTEST_ARGS=..., DUBAN_TEST_DATABASE_URL=...)
	@scripts/system-deps --with-browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup ## ruff check, ruff format --check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean: ## Remove .venv, ./data and tool caches
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
