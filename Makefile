# brandlift: `make run` (demo on SQLite, nothing else needed) and `make test` (Postgres + Redis).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export OPENBLAS_NUM_THREADS ?= 1
export PYTHONDONTWRITEBYTECODE = 1

.PHONY: run test browser test-postgres test-sqlite lint format bench services migrate serve worker clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	BRANDLIFT_API_KEYS="$${BRANDLIFT_API_KEYS:-demo-key:admin}" $(BIN)/brandlift demo

services:
	bash scripts/services.sh

test: $(STAMP) services browser test-postgres test-sqlite

# Debian's chromium for the dashboard's browser test (skipped, with the reason, without it).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  echo "installing Debian's chromium for the dashboard browser test"; \
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; } \
	    || echo "WARNING: chromium could not be installed; the browser test will be skipped"; }

test-postgres: $(STAMP)
	$(BIN)/pytest -q

test-sqlite: $(STAMP)
	BRANDLIFT_TEST_BACKEND=sqlite $(BIN)/pytest -q -m "not postgres_only"

lint: $(STAMP)
	$(BIN)/ruff check app tests bench migrations
	$(BIN)/ruff format --check app tests bench migrations
	$(BIN)/mypy app

format: $(STAMP)
	$(BIN)/ruff check --fix app tests bench migrations
	$(BIN)/ruff format app tests bench migrations

migrate: $(STAMP)
	$(BIN)/brandlift migrate

serve: $(STAMP)
	$(BIN)/brandlift serve

worker: $(STAMP)
	$(BIN)/brandlift worker

bench: $(STAMP) services
	$(BIN)/python bench/run_all.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
