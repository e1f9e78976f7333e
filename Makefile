# The two commands of the README: `make up` (platform on embedded defaults) and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
IOT    := $(VENV)/bin/iot

.PHONY: help install up down status logs test test-long lint format demo bench lock

help:
	@echo "make up       start the platform locally (PostgreSQL, MongoDB protocol, Airflow 3, MLflow, simulator)"
	@echo "make down     stop what 'make up' started (data is kept in .local/)"
	@echo "make status   health of every service (non-zero exit when one is unhealthy)"
	@echo "make logs     follow the service logs"
	@echo "make test     ruff + pytest against real throw-away servers"
	@echo "make test-long  the long tests: whole-platform stacks (lifecycle, outages, secrets, Celery) and the malformed-input campaigns"
	@echo "make demo     backfill a week, extract -> transform -> train -> replay forecasts, print ratios, save a plot"
	@echo "make bench    run the benchmarks (JSON in benchmarks/results/)"

install:
	@scripts/bootstrap.sh

up: install
	@$(IOT) stack up

down:
	@$(IOT) stack down

status:
	@$(IOT) stack status

logs:
	@$(IOT) stack logs

lint: install
	$(VENV)/bin/ruff check .

test: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -m "not long"

# whole platforms on their own ports (tests/foundation/test_stack_*.py, test_celery_stack.py) and the
# malformed-input campaigns (tests/dbt_project/test_malformed_campaign*.py); .ci/run runs them
test-long: install
	$(PY) -m pytest -m long

demo: up
	@$(IOT) demo

bench: install
	$(PY) -m benchmarks

# regenerate the locked dependency set after editing pyproject.toml
lock:
	$(VENV)/bin/uv pip compile -q --python-version 3.11 --prerelease=if-necessary-or-explicit --extra dev pyproject.toml -o requirements.lock
