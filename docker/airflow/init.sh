#!/usr/bin/env bash
# airflow-init (docker compose): migrate Airflow's metadata database and write the fixed
# development login of SimpleAuthManager (AIRFLOW_ADMIN_USER / AIRFLOW_ADMIN_PASSWORD from .env);
# create or resize the pools `hot` and `batch` (orchestration/pools.py).
# Idempotent: every `docker compose up` runs it again before the Airflow components start.
set -euo pipefail

echo "airflow-init: migrating the metadata database"
airflow db migrate

echo "airflow-init: pools hot and batch (AIRFLOW_PARALLELISM, AIRFLOW_BATCH_SLOTS)"
python -m orchestration.pools

python - <<'PY'
import json
import os
from pathlib import Path

path = Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps({os.environ["AIRFLOW_ADMIN_USER"]: os.environ["AIRFLOW_ADMIN_PASSWORD"]}))
path.chmod(0o600)
print(f"airflow-init: login {os.environ['AIRFLOW_ADMIN_USER']!r} written to {path}")
PY
