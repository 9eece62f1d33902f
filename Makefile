# Studio's two commands:
#   make run    set up (virtualenv, install, migrate, demo) and run the studio on embedded defaults
#   make test   set up and run the whole test suite (SQLite, then PostgreSQL)
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
# The PostgreSQL server the second pass of the suite runs on (pytest-django creates test_<name>).
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test

# The studio's own packages, byte-compiled before anything runs: an environment that sets
# PYTHONDONTWRITEBYTECODE (as container images often do) would otherwise compile them again in
# every process it starts (a node, a replica, a job: ~0.1 s each).
PACKAGES := portal tracking endpoints labs commands training data environments compute workspaces studio modelformat client

.PHONY: run test test-sqlite test-postgres lint venv bytecode

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

bytecode: $(VENV)/.installed
	$(BIN)/python -m compileall -q $(PACKAGES) manage.py

run: $(VENV)/.installed bytecode
	$(BIN)/python manage.py studio

test: $(VENV)/.installed-dev lint test-sqlite test-postgres

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test-sqlite: $(VENV)/.installed-dev bytecode
	env -u DATABASE_URL $(BIN)/python -m pytest

test-postgres: $(VENV)/.installed-dev bytecode
	@if $(BIN)/python -c "import psycopg,sys; psycopg.connect('$(TEST_POSTGRES_URL)'.replace('postgres://','postgresql://'), connect_timeout=3).close()" 2>/dev/null; then \
		DATABASE_URL=$(TEST_POSTGRES_URL) $(BIN)/python -m pytest -m "not browser"; \
	elif [ "$$CI" = "true" ]; then \
		echo "PostgreSQL is not reachable at $(TEST_POSTGRES_URL), and CI=true: failing."; exit 1; \
	else \
		echo "SKIPPED the PostgreSQL pass: no server at $(TEST_POSTGRES_URL) (set TEST_POSTGRES_URL)."; \
	fi
