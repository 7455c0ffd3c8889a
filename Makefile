# The two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Tests and benchmarks run on the real engines production uses.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/interlock
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: install demo test test-fast bench migrations clean terraform-provider terraform-docs

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
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python bench/terraform_apply.py
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python bench/xds_fanout.py
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python bench/xds_envoy_convergence.py
	$(BIN)/python bench/xds_translate.py
	$(BIN)/python bench/health_probe.py
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python bench/health_envoy_failover.py

migrations: install
	$(BIN)/python -m django makemigrations tenants mesh xds health --settings=service.settings

# The Terraform provider and a filesystem mirror of it in terraform/build/mirror
# (prints the CLI configuration to use; docs/terraform.md).
terraform-provider: install
	$(BIN)/python -m terraform.provider.mirror --out terraform/build/mirror

# docs/terraform.md from the provider's schema descriptions.
terraform-docs: install
	$(BIN)/python -m terraform.provider.docs

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
