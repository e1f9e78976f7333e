-- Schemas, extension and least-privilege grants inside the warehouse database (DESIGN §4).
-- Run with psql as the superuser connected to the warehouse database, with the same -v
-- variables as 01_roles_and_databases.sql. Idempotent.
--
--   raw      written by the loader (dlt; raw_staging is its merge scratch space); read by the transformer
--   stage    \
--   agg       } written by the transformer (dbt); read by analysts (no personal fields there:
--   curated  /  e-mail and date of birth stay in raw) and, but curated, by the API
--   ml       predictions, model selection history, forecast run log (transformer writes)
--   ops      platform bookkeeping: task failures, data-quality results, erasures, alerts
--   auth     API keys (hashes): read by the API, written by the superuser (`iot api-key`) only
--
-- Each role can do its job and nothing else; tests/warehouse/test_roles.py tries every role
-- against every schema and operation.

\set ON_ERROR_STOP on

-- TimescaleDB when the server preloads it; plain PostgreSQL otherwise (code detects which).
SELECT 'CREATE EXTENSION IF NOT EXISTS timescaledb'
WHERE EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
  AND current_setting('shared_preload_libraries') LIKE '%timescaledb%' \gexec

REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Every commit to the warehouse is durable, whatever the server's default: the extract commits
-- its change-stream tokens right after the rows they cover, and a crash must not keep the one
-- and lose the other (local mode runs the server with synchronous_commit = off for Airflow).
SELECT format('ALTER DATABASE %I SET synchronous_commit = on', :'warehouse_db') \gexec

SELECT format('CREATE SCHEMA IF NOT EXISTS raw AUTHORIZATION %I', :'loader_user') \gexec
-- dlt merges through a staging dataset next to raw; the loader owns it too
SELECT format('CREATE SCHEMA IF NOT EXISTS raw_staging AUTHORIZATION %I', :'loader_user') \gexec
SELECT format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', s, :'transformer_user')
FROM unnest(ARRAY['stage', 'agg', 'curated', 'ml', 'ops']) AS s \gexec

-- transformer reads raw (tables the loader creates later too)
SELECT format('GRANT USAGE ON SCHEMA raw TO %I', :'transformer_user') \gexec
SELECT format('GRANT SELECT ON ALL TABLES IN SCHEMA raw TO %I', :'transformer_user') \gexec
SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA raw GRANT SELECT ON TABLES TO %I',
              :'loader_user', :'transformer_user') \gexec

-- ops: the transformer owns it; the loader, the API and analysts see only tables granted to them
-- one by one (the loader: the erasure tombstones the extract checks, 03_privacy.sql; the others:
-- the alert tables)
SELECT format('REVOKE ALL ON SCHEMA ops FROM %I', :'loader_user') \gexec
SELECT format('GRANT USAGE ON SCHEMA ops TO %I, %I, %I', :'loader_user', :'analyst_user', :'api_user') \gexec

-- analysts (DBeaver, Grafana): read-only on stage, agg, curated and ml, tables created later too
SELECT format('GRANT USAGE ON SCHEMA stage, agg, curated, ml TO %I', :'analyst_user') \gexec
SELECT format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I', s, :'analyst_user')
FROM unnest(ARRAY['stage', 'agg', 'curated', 'ml']) AS s \gexec
SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT SELECT ON TABLES TO %I',
              :'transformer_user', s, :'analyst_user')
FROM unnest(ARRAY['stage', 'agg', 'curated', 'ml']) AS s \gexec

-- API: reads stage, agg and ml
SELECT format('GRANT USAGE ON SCHEMA stage, agg, ml TO %I', :'api_user') \gexec
SELECT format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I', s, :'api_user')
FROM unnest(ARRAY['stage', 'agg', 'ml']) AS s \gexec
SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT SELECT ON TABLES TO %I',
              :'transformer_user', s, :'api_user')
FROM unnest(ARRAY['stage', 'agg', 'ml']) AS s \gexec

-- API keys live apart from everything dbt and the pipelines can write: the transformer owns
-- ops, so keys there could be created by any model or hook. Owned by the superuser (who runs
-- this file, and `iot api-key`), readable by the API role only.
CREATE SCHEMA IF NOT EXISTS auth AUTHORIZATION CURRENT_USER;
REVOKE ALL ON SCHEMA auth FROM PUBLIC;
CREATE TABLE IF NOT EXISTS auth.api_keys (
    key_id      text primary key,
    name        text not null,
    key_hash    text not null unique,
    created_at  timestamptz not null default now(),
    revoked_at  timestamptz
);
COMMENT ON TABLE auth.api_keys IS 'API keys of `iot api-key`: SHA-256 of each key, never the key itself';
-- keys made before they moved here (ops.api_keys, writable by the transformer) come along once
DO $$
BEGIN
    IF to_regclass('ops.api_keys') IS NOT NULL THEN
        INSERT INTO auth.api_keys (key_id, name, key_hash, created_at, revoked_at)
        SELECT key_id, name, key_hash, created_at, revoked_at FROM ops.api_keys
        ON CONFLICT DO NOTHING;
        DROP TABLE ops.api_keys;
    END IF;
END
$$;
REVOKE ALL ON ALL TABLES IN SCHEMA auth FROM PUBLIC;
SELECT format('GRANT USAGE ON SCHEMA auth TO %I', :'api_user') \gexec
SELECT format('GRANT SELECT ON auth.api_keys TO %I', :'api_user') \gexec

-- every failed Airflow task (orchestration/defaults.py, record_failure): created here, so a user
-- or a dashboard can query it before the first failure; owned by the transformer, which writes it
CREATE TABLE IF NOT EXISTS ops.task_failures (
    id            bigserial primary key,
    dag_id        text not null,
    task_id       text,
    run_id        text,
    try_number    int,
    logical_date  timestamptz,
    exception     text,
    context       jsonb,
    failed_at     timestamptz not null default now()
);
COMMENT ON TABLE ops.task_failures IS 'one row per failed Airflow task try (on_failure_callback of every DAG)';
SELECT format('ALTER TABLE ops.task_failures OWNER TO %I', :'transformer_user') \gexec
SELECT format('ALTER SEQUENCE ops.task_failures_id_seq OWNER TO %I', :'transformer_user') \gexec
-- the dashboard (analyst role) lists failures: which task, when, which try; the exception text
-- stays with the transformer (it may quote data), the Airflow UI shows the log
SELECT format('GRANT SELECT (id, dag_id, task_id, run_id, try_number, logical_date, failed_at) ON ops.task_failures TO %I',
              :'analyst_user') \gexec
