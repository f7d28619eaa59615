# The same small commands run locally and in CI.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
DEMO ?= .demo
DEMO_DB := sqlite:///$(DEMO)/aiguillage.db
PYTEST_ARGS ?=
## pytest-xdist workers: one per core; 0 runs the tests in pytest's own process, one at a time.
PYTEST_WORKERS ?= auto

.PHONY: install demo test lint format bench bench-api spec spec-check postgres clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

## The main job on the embedded SQLite default: generate a small académie, import it, report,
## then serve it on the API (Ctrl-C to stop); the example requests printed work as printed.
demo: install
	rm -rf $(DEMO)
	$(BIN)/aiguillage sample academie --out $(DEMO)/aaf --pupils 3000 --seed 7 --degree both
	AIGUILLAGE_DATABASE_URL=$(DEMO_DB) $(BIN)/aiguillage db upgrade
	AIGUILLAGE_DATABASE_URL=$(DEMO_DB) $(BIN)/aiguillage import aaf $(DEMO)/aaf --report $(DEMO)/run.json
	AIGUILLAGE_DATABASE_URL=$(DEMO_DB) $(BIN)/aiguillage runs
	AIGUILLAGE_DATABASE_URL=$(DEMO_DB) AIGUILLAGE_DEV_TOKENS=true $(BIN)/aiguillage serve

## Both backends: starts the local PostgreSQL cluster when it is down. A test file runs on one
## worker, so its module and session fixtures (the imported académies, the servers) are built
## once per worker that runs it, not once per test.
test: install postgres
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

postgres:
	bash .ci/postgres-up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy annuaire connectors

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Import benchmark (SQLite), then the read API benchmark (its own PostgreSQL database).
bench: install postgres
	$(PY) bench/aaf_import.py
	$(PY) bench/api.py

bench-api: install postgres
	$(PY) bench/api.py $(BENCH_ARGS)

spec: install
	$(BIN)/aiguillage spec write

spec-check: install
	$(BIN)/aiguillage spec write --check

clean:
	rm -rf $(DEMO) .pytest_cache .mypy_cache .ruff_cache
