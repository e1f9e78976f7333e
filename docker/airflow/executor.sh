#!/usr/bin/env bash
# Starts an Airflow component (docker compose) with the executor the running profile implies:
# the CeleryExecutor when the `celery` profile runs Redis (every component waits for a healthy
# Redis when it is enabled, so its name resolves by now), else the LocalExecutor.
# AIRFLOW_EXECUTOR=<name> forces one (the Celery workers set CeleryExecutor; `celery` means that too).
#   executor.sh api-server | dag-processor | triggerer | celery worker   -> airflow <args>
#   executor.sh python -m MODULE ...                                     -> python -m MODULE ...
set -euo pipefail

choice="${AIRFLOW_EXECUTOR:-auto}"
# .env's AIRFLOW_EXECUTOR is local mode's switch (local | celery): `local` leaves it to the profile
case "$choice" in
  local) choice=auto ;;
  celery) choice=CeleryExecutor ;;
esac
if [ "$choice" = auto ]; then
  if getent hosts redis >/dev/null 2>&1; then choice=CeleryExecutor; else choice=LocalExecutor; fi
fi
export AIRFLOW__CORE__EXECUTOR="$choice"
echo "executor.sh: ${AIRFLOW__CORE__EXECUTOR} for: $*" >&2

if [ "${1:-}" = python ]; then
  exec "$@"
fi
exec airflow "$@"
