# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
INSTALLED := $(VENV)/.installed

.PHONY: install demo test bench bench-distributed dev stack clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required")'
	$(PYTHON) -m venv $(VENV)

# uv resolves nothing here: constraints.txt pins the whole tree, so every install is the same set.
# pip is the fallback where uv cannot be installed. The pipeline and its sandbox distribution
# (sandbox/: the simulated world, the demo, `make dev`) go in together.
$(INSTALLED): $(BIN)/python pyproject.toml sandbox/pyproject.toml constraints.txt
	@if $(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"; then \
		$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -c constraints.txt -e '.[dev,celery,k8s]' -e ./sandbox; \
	else \
		$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,celery,k8s]' -e ./sandbox; \
	fi
	@touch $@

install: $(INSTALLED)

demo: install
	$(BIN)/python -m nightly_pipeline_sandbox.demo

test: install
	$(BIN)/pytest

# The quick form of every benchmark that needs nothing but this machine (under 5 minutes in all);
# bench/README.md gives the full forms. bench/distributed.py needs the PostgreSQL server on
# 127.0.0.1:5432 and Redis: `make bench-distributed` runs its quick form.
BENCH_QUICK := sandbox_proxy.py crawl.py contacts.py odoo_sync.py night.py fleet.py

bench: install
	@set -e; for script in $(BENCH_QUICK); do \
		echo "== bench/$$script --quick"; \
		$(BIN)/python bench/$$script --quick; \
	done

# The Dagster UI on the demo's instance, with the demo's sandbox back on the ports the demo used.
dev: install
	DAGSTER_HOME=$(CURDIR)/.nightly_pipeline $(BIN)/python -m nightly_pipeline_sandbox.dev --host 127.0.0.1 --port 3000

# The distributed stack on this machine (README: Scaling out): Dagster's storage in the PostgreSQL
# server on 127.0.0.1:5432 (database created on first start), steps on two Celery workers with the
# Redis on 127.0.0.1:6379, the daemon and the UI on :3000. Ctrl-C stops every process it started.
STACK_PG_URL ?= postgresql+psycopg2://postgres@127.0.0.1:5432/nightly_dagster
stack: install
	DAGSTER_HOME=$(CURDIR)/.nightly_pipeline DAGSTER_PG_URL=$(STACK_PG_URL) DAGSTER_EXECUTOR=celery \
		$(BIN)/nightly-pipeline stack up --workers 2

bench-distributed: install
	$(BIN)/python bench/distributed.py --quick

clean:
	rm -rf $(VENV) .nightly_pipeline .pytest_cache
