-- Roles and databases of the platform (DESIGN §4). Run with psql as the cluster superuser,
-- connected to the `postgres` database, with -v variables for every name and password:
--   loader_user loader_password transformer_user transformer_password analyst_user
--   analyst_password api_user api_password airflow_user airflow_password mlflow_user
--   mlflow_password warehouse_db airflow_db mlflow_db
-- Idempotent: re-running it creates what is missing and re-syncs passwords from .env.
-- Used by the local launcher (iot_cli.localstack.postgres) and by the Docker TimescaleDB
-- container (docker/timescaledb/initdb.sh): one source of truth.

\set ON_ERROR_STOP on

SELECT format('CREATE ROLE %I LOGIN', r) FROM unnest(ARRAY[
    :'loader_user', :'transformer_user', :'analyst_user', :'api_user', :'airflow_user', :'mlflow_user'
]) AS r WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r)
\gexec

SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'loader_user', :'loader_password') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'transformer_user', :'transformer_password') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'analyst_user', :'analyst_password') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'api_user', :'api_password') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'airflow_user', :'airflow_password') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'mlflow_user', :'mlflow_password') \gexec

-- Analysts and the API only read (their grants allow nothing else either; this makes an
-- accidental write fail early with "read-only transaction").
SELECT format('ALTER ROLE %I SET default_transaction_read_only = on', r)
FROM unnest(ARRAY[:'analyst_user', :'api_user']) AS r \gexec

SELECT format('CREATE DATABASE %I', :'warehouse_db')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'warehouse_db') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'airflow_db', :'airflow_user')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'airflow_db') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'mlflow_db', :'mlflow_user')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'mlflow_db') \gexec

-- Who connects where (least privilege, tests/warehouse/test_roles.py): PostgreSQL lets PUBLIC
-- connect to every database by default, so each database names its roles explicitly.
--   warehouse: loader, transformer, analyst, api        airflow: airflow        mlflow: mlflow
--   postgres and template1 (maintenance): the superuser only
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', d)
FROM unnest(ARRAY[:'warehouse_db', :'airflow_db', :'mlflow_db', 'postgres', 'template1']) AS d \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I, %I, %I, %I', :'warehouse_db',
              :'loader_user', :'transformer_user', :'analyst_user', :'api_user') \gexec
SELECT format('GRANT TEMPORARY ON DATABASE %I TO %I', :'warehouse_db', :'transformer_user') \gexec
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', :'airflow_db', :'airflow_user') \gexec
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', :'mlflow_db', :'mlflow_user') \gexec
-- roles of other services never reach the warehouse, even if granted by hand before
SELECT format('REVOKE ALL ON DATABASE %I FROM %I, %I', :'warehouse_db', :'airflow_user', :'mlflow_user') \gexec
