# The two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Tests and benchmarks run on the real engines production uses.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/interlock
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: install demo test test-fast bench migrations clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: install
	$(BIN)/interlock dev --demo

test: install
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: install
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python bench/api_write.py

migrations: install
	$(BIN)/python -m django makemigrations tenants mesh --settings=service.settings

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
