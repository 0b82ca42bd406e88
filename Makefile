# One target per task, used by people, hooks and CI alike.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint check bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/switchhook serve

test: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# What CI runs: every layer of checks, so the README's promises (layers, strict types) hold on every landing.
check: lint test

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .switchhook .pytest_cache .mypy_cache .ruff_cache
