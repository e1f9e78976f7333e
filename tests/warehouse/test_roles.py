"""Least privilege, tested (issue 17): every role against every database, schema and operation.

The databases are made by the real init SQL (warehouse/init/01 and 02, as `make up` and the
Docker TimescaleDB run them) under names of their own; the probe tables are created by each
schema's owner *after* the init, so the grants on tables made later (default privileges) are
what is tested. Each operation runs in a transaction that is rolled back, and the read-only
roles are switched to read-write first, so a refusal comes from the grants, not from
``default_transaction_read_only``.
"""

from __future__ import annotations

import psycopg
import pytest

from iot_cli.localstack.postgres import INIT_SQL_DIR, init_sql_variables
from iot_core.connections import pg_connect

ROLES = ("loader", "transformer", "analyst", "api", "airflow", "mlflow", "superuser")
SCHEMAS = ("raw", "raw_staging", "stage", "agg", "curated", "ml", "ops", "auth", "public")
OPERATIONS = {"select": "S", "insert": "I", "create": "C"}
ALL = dict.fromkeys(SCHEMAS, "SIC")
# what each role may do (S select, I insert, C create a table); everything else must be refused
ALLOWED: dict[str, dict[str, str]] = {
    "loader": {"raw": "SIC", "raw_staging": "SIC"},
    "transformer": {"raw": "S", "stage": "SIC", "agg": "SIC", "curated": "SIC", "ml": "SIC", "ops": "SIC"},
    "analyst": {"stage": "S", "agg": "S", "curated": "S", "ml": "S"},
    "api": {"stage": "S", "agg": "S", "ml": "S", "auth": "S"},
    "superuser": ALL,
}
# owner that creates each schema's probe table after the init (auth has its own table)
PROBE_OWNER = {"raw": "loader", "raw_staging": "loader", "stage": "transformer", "agg": "transformer",
               "curated": "transformer", "ml": "transformer", "ops": "transformer", "public": "superuser"}


@pytest.fixture(scope="module")
def databases(services, pg_cluster):
    """Warehouse, Airflow and MLflow databases of their own, made by the init SQL."""
    settings = services.model_copy(update={"warehouse_db": "roles_warehouse", "airflow_db": "roles_airflow",
                                           "mlflow_db": "roles_mlflow"})
    with pg_connect("superuser", database="postgres", autocommit=True, settings=services) as conn:
        for db in ("roles_warehouse", "roles_airflow", "roles_mlflow"):
            conn.execute(f"drop database if exists {db} with (force)")
    variables = init_sql_variables(settings)
    pg_cluster.psql_file(INIT_SQL_DIR / "01_roles_and_databases.sql", "postgres", variables)
    for sql_file in sorted(INIT_SQL_DIR.glob("[0-9][0-9]_*.sql")):  # the warehouse's files: all but 01
        if not sql_file.name.startswith("01_"):
            pg_cluster.psql_file(sql_file, settings.warehouse_db, variables)
    for schema, owner in PROBE_OWNER.items():
        with pg_connect(owner, settings=settings) as conn:
            conn.execute(f"create table {schema}.probe (x int)")
            conn.execute(f"insert into {schema}.probe values (1)")
    return settings


def _attempt(role: str, settings, sql: str) -> bool:
    """Whether ``role`` may run ``sql`` (rolled back either way)."""
    with pg_connect(role, settings=settings) as conn:
        conn.execute("set transaction read write")
        try:
            conn.execute(sql)
        except psycopg.errors.InsufficientPrivilege:
            return False
        finally:
            conn.rollback()
    return True


def _sql(operation: str, schema: str, role: str) -> str:
    table = "auth.api_keys" if schema == "auth" else f"{schema}.probe"
    if operation == "select":
        return f"select * from {table}"
    if operation == "insert":
        return ("insert into auth.api_keys (key_id, name, key_hash) values ('k', 'n', 'h')" if schema == "auth"
                else f"insert into {table} values (2)")
    return f"create table {schema}.made_by_{role} (x int)"


@pytest.mark.parametrize("role", [r for r in ROLES if r not in ("airflow", "mlflow")])
def test_each_role_can_do_its_job_and_nothing_else_in_the_warehouse(databases, role):
    wrong = []
    for schema in SCHEMAS:
        for operation, letter in OPERATIONS.items():
            expected = letter in ALLOWED.get(role, {}).get(schema, "")
            if _attempt(role, databases, _sql(operation, schema, role)) != expected:
                wrong.append(f"{operation} on {schema}: {'refused' if expected else 'allowed'}")
    assert wrong == [], f"{role}: " + "; ".join(wrong)


def test_the_loader_reads_the_erasure_tombstones_and_no_other_ops_table(databases):
    """The extract skips erased users' documents by the tombstones (dlt_pipelines/tombstones.py)."""
    assert _attempt("loader", databases, "select * from ops.erasure_tombstones")
    assert not _attempt("loader", databases, "select * from ops.probe")
    assert not _attempt("loader", databases, "insert into ops.erasure_tombstones (kind, key_hash) values ('user', 'x')")


def _connects(role: str, settings, database: str) -> bool:
    try:
        with pg_connect(role, database=database, settings=settings) as conn:
            conn.execute("select 1")
    except psycopg.OperationalError as e:
        assert "permission denied for database" in str(e), e
        return False
    return True


def test_each_role_connects_only_to_its_own_databases(databases):
    s = databases
    allowed = {
        s.warehouse_db: {"loader", "transformer", "analyst", "api", "superuser"},
        s.airflow_db: {"airflow", "superuser"},
        s.mlflow_db: {"mlflow", "superuser"},
        "postgres": {"superuser"},
        "template1": {"superuser"},
    }
    wrong = [f"{role} -> {db}: {'refused' if role in who else 'allowed'}"
             for db, who in allowed.items() for role in ROLES if _connects(role, s, db) != (role in who)]
    assert wrong == []


def test_the_transformer_cannot_touch_api_keys(databases):
    for sql in ("select * from auth.api_keys",
                "insert into auth.api_keys (key_id, name, key_hash) values ('k', 'n', 'h')",
                "update auth.api_keys set revoked_at = null", "delete from auth.api_keys",
                "create table auth.keys2 (x int)", "drop table auth.api_keys"):
        assert not _attempt("transformer", databases, sql), sql
    # ... nor any other pipeline role; the API only reads them
    for role in ("loader", "analyst"):
        assert not _attempt(role, databases, "select * from auth.api_keys"), role
    for sql in ("update auth.api_keys set revoked_at = null", "delete from auth.api_keys"):
        assert not _attempt("api", databases, sql), sql


def test_only_the_transformer_makes_temporary_tables(databases):
    assert _attempt("transformer", databases, "create temporary table scratch (x int)")
    for role in ("loader", "analyst", "api"):
        assert not _attempt(role, databases, "create temporary table scratch (x int)"), role


def test_analyst_and_api_sessions_are_read_only_by_default(databases):
    for role in ("analyst", "api"):
        with pg_connect(role, settings=databases) as conn:
            assert conn.execute("show default_transaction_read_only").fetchone()[0] == "on"


def test_keys_made_before_the_move_are_kept(databases, pg_cluster):
    """An install whose keys were in ops.api_keys (written by the transformer) keeps them in auth."""
    with pg_connect("transformer", settings=databases, autocommit=True) as conn:
        conn.execute("create table ops.api_keys (key_id text primary key, name text not null, key_hash text "
                     "not null unique, created_at timestamptz not null default now(), revoked_at timestamptz)")
        conn.execute("insert into ops.api_keys (key_id, name, key_hash) values ('old1', 'before', 'hash-old1')")
    pg_cluster.psql_file(INIT_SQL_DIR / "02_warehouse_schemas.sql", databases.warehouse_db,
                         init_sql_variables(databases))
    with pg_connect("superuser", settings=databases) as conn:
        assert conn.execute("select name, key_hash from auth.api_keys where key_id = 'old1'").fetchall() == [
            ("before", "hash-old1")]
        assert conn.execute("select to_regclass('ops.api_keys')").fetchone()[0] is None


def test_the_task_failure_log_exists_from_the_init_and_only_the_transformer_writes_it(databases):
    """ops.task_failures was created by the first failure's callback: until then a user's query
    (or a dashboard) on it failed with "relation does not exist"."""
    from orchestration.defaults import FAILURE_INSERT

    with pg_connect("superuser", settings=databases) as conn:
        owner = conn.execute("select tableowner from pg_tables where schemaname = 'ops' and tablename = 'task_failures'"
                             ).fetchone()
    assert owner == (databases.transformer_user,)
    # the callback's own insert, as the transformer
    assert _attempt("transformer", databases, FAILURE_INSERT.replace("%s", "null").replace("(null,", "('dag',", 1))
    for role in ("loader", "analyst", "api"):
        assert not _attempt(role, databases, "select * from ops.task_failures"), role


def test_the_loader_reads_the_erasure_tombstones_and_nothing_else_in_ops(databases):
    """The extract (loader) checks ops.erasure_tombstones on every run: with ops revoked from the
    loader, every extract failed with "permission denied for schema ops"."""
    assert _attempt("loader", databases, "select to_regclass('ops.erasure_tombstones')")
    assert _attempt("loader", databases, "select kind, key_hash from ops.erasure_tombstones")
    for sql in ("select * from ops.probe", "select * from ops.task_failures",
                "insert into ops.erasure_tombstones (kind, key_hash) values ('user', 'h')"):
        assert not _attempt("loader", databases, sql), sql
