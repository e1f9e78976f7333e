-- Pseudonymous research ids and erasure tombstones (issue 14, docs/privacy.md). Run with psql as
-- the superuser connected to the warehouse database, with the -v variables of 01/02 plus
-- pseudonym_secret (setting PSEUDONYM_SECRET). Idempotent.
--
--   vault               owned by the superuser; no other role has USAGE: the keyed-hash secret
--   ops.research_id(t)  HMAC-SHA256 of a user id with that secret (hex): the id `curated` carries
--                       instead of the user id; executable by the transformer and the superuser only

\set ON_ERROR_STOP on

CREATE SCHEMA IF NOT EXISTS vault;
REVOKE ALL ON SCHEMA vault FROM PUBLIC;
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA vault;

CREATE TABLE IF NOT EXISTS vault.pseudonym_key (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    secret   bytea NOT NULL,
    set_at   timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON vault.pseudonym_key FROM PUBLIC;
-- The secret is set once: changing PSEUDONYM_SECRET later would give every user a new research id
-- (a break in every longitudinal study), so a later value is ignored here; rotating it is a
-- deliberate migration (docs/privacy.md).
INSERT INTO vault.pseudonym_key (secret) VALUES (convert_to(:'pseudonym_secret', 'UTF8'))
ON CONFLICT (only_row) DO NOTHING;

CREATE OR REPLACE FUNCTION ops.research_id(user_id text) RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog
AS $fn$
    SELECT encode(vault.hmac(convert_to(user_id, 'UTF8'), (SELECT secret FROM vault.pseudonym_key), 'sha256'), 'hex')
$fn$;
COMMENT ON FUNCTION ops.research_id(text) IS
    'Pseudonymous research id of a user: HMAC-SHA256 with the platform secret (PSEUDONYM_SECRET); curated tables carry it instead of the user id';
REVOKE ALL ON FUNCTION ops.research_id(text) FROM PUBLIC;
SELECT format('GRANT EXECUTE ON FUNCTION ops.research_id(text) TO %I', :'transformer_user') \gexec

-- Erasure (privacy/erasure.py): what was erased, with a keyed hash of the user id and counts
-- per place, nothing else; and tombstones (keyed hashes of the erased user and device ids) that
-- the extract reads, so documents of an erased user or device arriving later are not loaded.
CREATE TABLE IF NOT EXISTS ops.erasures (
    id bigserial PRIMARY KEY,
    user_key text NOT NULL,
    erased_at timestamptz NOT NULL DEFAULT now(),
    device_count int NOT NULL,
    deleted_rows jsonb NOT NULL
);
-- deployments from before: the old table kept an unkeyed SHA-256 of the user id (guessable for
-- short ids): the column goes, the keyed hash replaces it
ALTER TABLE ops.erasures ADD COLUMN IF NOT EXISTS user_key text;
ALTER TABLE ops.erasures DROP COLUMN IF EXISTS user_id_sha256;
UPDATE ops.erasures SET user_key = 'unknown (erased before keyed hashes)' WHERE user_key IS NULL;
ALTER TABLE ops.erasures ALTER COLUMN user_key SET NOT NULL;
COMMENT ON TABLE ops.erasures IS
    'Right to erasure: one row per `iot erase-user` run: a keyed hash of the user id (HMAC with PSEUDONYM_SECRET), devices and rows removed per place';
CREATE TABLE IF NOT EXISTS ops.erasure_tombstones (
    kind text NOT NULL CHECK (kind IN ('user', 'device')),
    key_hash text NOT NULL,
    erased_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, key_hash)
);
COMMENT ON TABLE ops.erasure_tombstones IS
    'Keyed hashes (HMAC-SHA256 with PSEUDONYM_SECRET) of erased user and device ids: the extract does not load documents naming them';
-- the extract reads the tombstones (never loads an erased user's documents back): the loader sees
-- this one ops table and nothing else there (02 revokes the schema; this file runs after it)
SELECT format('GRANT USAGE ON SCHEMA ops TO %I', :'loader_user') \gexec
SELECT format('GRANT SELECT ON ops.erasure_tombstones TO %I', :'loader_user') \gexec
