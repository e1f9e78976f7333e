#!/usr/bin/env bash
# Runs once, when the TimescaleDB container starts on an empty data volume
# (/docker-entrypoint-initdb.d, after the image's own TimescaleDB set-up scripts): roles,
# databases, schemas and grants from warehouse/init/*.sql, the same SQL local mode runs,
# with names and passwords from .env. Re-run it after changing passwords in .env:
#   docker compose exec timescaledb bash /docker-entrypoint-initdb.d/010_iot_warehouse.sh
set -euo pipefail

vars=(
  -v "loader_user=${LOADER_USER}" -v "loader_password=${LOADER_PASSWORD}"
  -v "transformer_user=${TRANSFORMER_USER}" -v "transformer_password=${TRANSFORMER_PASSWORD}"
  -v "analyst_user=${ANALYST_USER}" -v "analyst_password=${ANALYST_PASSWORD}"
  -v "api_user=${API_USER}" -v "api_password=${API_PASSWORD}"
  -v "airflow_user=${AIRFLOW_DB_USER}" -v "airflow_password=${AIRFLOW_DB_PASSWORD}"
  -v "mlflow_user=${MLFLOW_DB_USER}" -v "mlflow_password=${MLFLOW_DB_PASSWORD}"
  -v "warehouse_db=${WAREHOUSE_DB}" -v "airflow_db=${AIRFLOW_DB}" -v "mlflow_db=${MLFLOW_DB}"
  -v "pseudonym_secret=${PSEUDONYM_SECRET}"
)
sql_dir="${IOT_INIT_SQL_DIR:-/warehouse-init}"  # mounted by docker-compose.yml
psql_as_superuser=(psql -X -q -v ON_ERROR_STOP=1 --username "${POSTGRES_USER}")

# The image's own init creates the extension in template1 and postgres, so every database made
# later (Airflow's, MLflow's) would carry TimescaleDB and its background jobs. It belongs in the
# warehouse database only (02_warehouse_schemas.sql creates it there).
for db in template1 postgres; do
  echo "iot: no TimescaleDB in ${db}"
  "${psql_as_superuser[@]}" --dbname "${db}" -c "DROP EXTENSION IF EXISTS timescaledb"
done
# telemetry off (the image reads TIMESCALEDB_TELEMETRY too; this holds whatever it did), where
# the server loads TimescaleDB at all
"${psql_as_superuser[@]}" --dbname postgres <<'SQL'
SELECT 'ALTER SYSTEM SET timescaledb.telemetry_level = ''off'''
WHERE current_setting('shared_preload_libraries') LIKE '%timescaledb%' \gexec
SQL

echo "iot: roles and databases"
"${psql_as_superuser[@]}" --dbname postgres "${vars[@]}" -f "${sql_dir}/01_roles_and_databases.sql"
# every file after 01, in name order: schemas and grants, privacy (research ids), ...
for sql_file in "${sql_dir}"/[0-9][0-9]_*.sql; do
  case "$(basename "${sql_file}")" in 01_*) continue ;; esac
  echo "iot: $(basename "${sql_file}") in ${WAREHOUSE_DB}"
  "${psql_as_superuser[@]}" --dbname "${WAREHOUSE_DB}" "${vars[@]}" -f "${sql_file}"
done
