-- Schemas, extension and least-privilege grants inside the warehouse database (DESIGN §4).
-- Run with psql as the superuser connected to the warehouse database, with the same -v
-- variables as 01_roles_and_databases.sql. Idempotent.
--
--   raw      written by the loader (dlt; raw_staging is its merge scratch space); read by the transformer
--   stage    \
--   agg       } written by the transformer (dbt); agg and curated read by analysts;
--   curated  /  stage, agg and ml read by the API
--   ml       predictions, model selection history, forecast run log (transformer writes)
--   ops      platform bookkeeping: task failures, data-quality results, erasures, API keys

\set ON_ERROR_STOP on

-- TimescaleDB when the server preloads it; plain PostgreSQL otherwise (code detects which).
SELECT 'CREATE EXTENSION IF NOT EXISTS timescaledb'
WHERE EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
  AND current_setting('shared_preload_libraries') LIKE '%timescaledb%' \gexec

REVOKE CREATE ON SCHEMA public FROM PUBLIC;

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

-- loader records data-quality results and reads the failure log schema
SELECT format('GRANT USAGE ON SCHEMA ops TO %I, %I', :'loader_user', :'api_user') \gexec

-- analysts: read-only on agg and curated
SELECT format('GRANT USAGE ON SCHEMA agg, curated TO %I', :'analyst_user') \gexec
SELECT format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I', s, :'analyst_user')
FROM unnest(ARRAY['agg', 'curated']) AS s \gexec
SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT SELECT ON TABLES TO %I',
              :'transformer_user', s, :'analyst_user')
FROM unnest(ARRAY['agg', 'curated']) AS s \gexec

-- API: reads stage, agg and ml
SELECT format('GRANT USAGE ON SCHEMA stage, agg, ml TO %I', :'api_user') \gexec
SELECT format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I', s, :'api_user')
FROM unnest(ARRAY['stage', 'agg', 'ml']) AS s \gexec
SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT SELECT ON TABLES TO %I',
              :'transformer_user', s, :'api_user')
FROM unnest(ARRAY['stage', 'agg', 'ml']) AS s \gexec
