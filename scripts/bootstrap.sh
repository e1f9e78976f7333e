#!/usr/bin/env bash
# Creates .venv and installs the project with the locked dependency set; installs Debian's
# PostgreSQL server and redis-server when missing. Safe to re-run; fast when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || {
  echo "Python 3.11 is required (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2; exit 1; }

stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ requirements.lock -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "==> installing dependencies (locked set in requirements.lock)"
  .venv/bin/python -m pip install -q --disable-pip-version-check uv
  .venv/bin/uv pip sync -q --python .venv/bin/python requirements.lock
  .venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .
  touch "$stamp"
fi

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing PostgreSQL server (Debian package)"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql
  else
    echo "PostgreSQL server binaries are missing: sudo apt-get install postgresql" >&2; exit 1
  fi
fi

# Redis: the Celery broker of AIRFLOW_EXECUTOR=celery (iot_cli/localstack/celery_mode.py) and of
# the Celery test in `make test`
if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing redis-server (Debian package)"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server
  else
    echo "redis-server is missing (AIRFLOW_EXECUTOR=celery and its test need it): sudo apt-get install redis-server" >&2
  fi
fi
