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
)
sql_dir="${IOT_INIT_SQL_DIR:-/warehouse-init}"  # mounted by docker-compose.yml
psql_as_superuser=(psql -X -q -v ON_ERROR_STOP=1 --username "${POSTGRES_USER}")

echo "iot: roles and databases"
"${psql_as_superuser[@]}" --dbname postgres "${vars[@]}" -f "${sql_dir}/01_roles_and_databases.sql"
echo "iot: warehouse schemas and grants in ${WAREHOUSE_DB}"
"${psql_as_superuser[@]}" --dbname "${WAREHOUSE_DB}" "${vars[@]}" -f "${sql_dir}/02_warehouse_schemas.sql"
