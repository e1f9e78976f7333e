"""Great Expectations 1.x checkpoint over the newest raw increment, validated in SQL.

For each raw table the rows of the given dlt load(s) (default: the newest ``_dlt_load_id`` of
that table) are validated against a suite built from the data contract (``iot_core.contract``:
nulls, uniqueness of keys, ranges, choices), so the suite can never disagree with the extract,
the API or dbt. GX runs the expectations as SQL queries on the warehouse (a query asset over
the increment): no rows are read into this process, so memory does not grow with the load (the
former pandas version read whole loads, with COMPLETE results: out of memory on the first load
after a large backfill). GX reports counts (SUMMARY); the rows that broke an expectation are
copied to ``ops.dq_quarantine`` by one ``INSERT … SELECT`` per failed expectation, with the
same condition, inside the database.

Results go to ``ops.data_quality_results`` (one row per expectation). A failed expectation
never raises: the pipeline goes on, and the stage checks keep such rows out of stage
(stage.stg_rejects).

Idempotent: both tables are keyed by (table, load, expectation[, row]); re-validating the same
load overwrites its results and adds no duplicate quarantine rows. GX is imported inside the
function (about 4 s), never at DAG parse time; its progress bars are off (they went to stderr,
which Airflow logs as errors).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from psycopg import sql

from iot_core import contract as spec
from iot_core.connections import pg_connect, pg_url
from iot_core.settings import Settings, get_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    kind: str          # not_null | between | in_set | unique
    column: str
    args: dict = field(default_factory=dict)


def _between(column: str, bounds: tuple) -> Check:
    lo, hi = bounds
    return Check("between", column, {"min_value": lo, "max_value": hi})


def _suites() -> dict[str, tuple[tuple[str, ...], list[Check]]]:
    """table: (row key columns, checks), every bound and choice from the data contract."""
    aq = spec.COLLECTIONS["air_quality"]
    hr = spec.COLLECTIONS["heart_rates"].field("metrics")
    steps = spec.COLLECTIONS["steps"].field("metrics")
    sleeps = spec.COLLECTIONS["sleeps"].field("metrics")
    users = spec.COLLECTIONS["users"]
    devices = spec.COLLECTIONS["devices"]
    return {
        "air_quality": (("_id",), [
            Check("not_null", "_id"), Check("unique", "_id"), Check("not_null", aq.device_field),
            Check("not_null", "ts"), Check("not_null", "ts_utc"),
            *[Check("not_null", m.name) for m in spec.MEASURES],
            *[_between(m.name, (m.minimum, m.maximum)) for m in spec.MEASURES],
        ]),
        "heart_rates__metrics": (("_parent_id", "idx"), [
            Check("not_null", "ts"), Check("not_null", "bpm"), _between("bpm", hr.field("bpm").bounds),
            _between("confidence", hr.field("confidence").bounds),
        ]),
        "steps__metrics": (("_parent_id", "idx"), [
            Check("not_null", "ts"), Check("not_null", "steps"), _between("steps", steps.field("steps").bounds),
        ]),
        "sleeps__metrics": (("_parent_id", "idx"), [
            Check("not_null", "start_ts"), Check("not_null", "end_ts"),
            _between("duration", sleeps.field("duration").bounds),
        ]),
        "users": (("_id",), [
            Check("not_null", "user_id"), Check("unique", "user_id"),
            _between("age", users.field("age").bounds), _between("height", users.field("height").bounds),
            Check("in_set", "gender", {"value_set": list(users.field("gender").choices)}),
        ]),
        "devices": (("_id",), [
            Check("not_null", "device_id"), Check("unique", "device_id"),
            Check("in_set", "kind", {"value_set": list(devices.field("kind").choices)}),
        ]),
    }


SUITES = _suites()

# what the dashboard's Data health page reads (as the analyst): the verdicts and counts, never
# `details` (GX's partial unexpected values are raw data) nor ops.dq_quarantine (raw rows)
ANALYST_COLUMNS = ("table_name", "load_id", "expectation", "column_name", "success", "element_count",
                   "unexpected_count", "unexpected_percent", "validated_at")


def analyst_grants(settings: Settings) -> list[str]:
    return [f"grant select ({', '.join(ANALYST_COLUMNS)}) on ops.data_quality_results to "
            f'"{settings.analyst_user}"']

DDL = """
create table if not exists ops.data_quality_results (
    table_name text not null,
    load_id text not null,
    expectation text not null,
    column_name text not null,
    success boolean not null,
    element_count bigint,
    unexpected_count bigint,
    unexpected_percent double precision,
    details jsonb,
    validated_at timestamptz not null,
    primary key (table_name, load_id, expectation, column_name)
);
create table if not exists ops.dq_quarantine (
    table_name text not null,
    row_key text not null,
    load_id text not null,
    expectation text not null,
    column_name text not null,
    observed_value text,
    reason text not null,
    quarantined_at timestamptz not null,
    primary key (table_name, row_key, expectation, column_name)
);
"""


def _expectation(gx, check: Check):
    e = gx.expectations
    if check.kind == "not_null":
        return e.ExpectColumnValuesToNotBeNull(column=check.column)
    if check.kind == "unique":
        return e.ExpectColumnValuesToBeUnique(column=check.column)
    if check.kind == "between":
        return e.ExpectColumnValuesToBeBetween(column=check.column, **check.args)
    if check.kind == "in_set":
        return e.ExpectColumnValuesToBeInSet(column=check.column, **check.args)
    raise ValueError(check.kind)


def unexpected_condition(check: Check, increment: sql.Composable) -> sql.Composable:
    """The SQL condition of the rows that break ``check`` (what GX counts as unexpected):
    nulls are ignored except by not_null; NaN is above every number in PostgreSQL, so it
    breaks a range."""
    col = sql.Identifier(check.column)
    if check.kind == "not_null":
        return sql.SQL("{} is null").format(col)
    if check.kind == "between":
        return sql.SQL("{c} is not null and not ({c} >= {lo} and {c} <= {hi})").format(
            c=col, lo=sql.Literal(check.args["min_value"]), hi=sql.Literal(check.args["max_value"]))
    if check.kind == "in_set":
        return sql.SQL("{c} is not null and not ({c} = any({values}))").format(
            c=col, values=sql.Literal(list(check.args["value_set"])))
    if check.kind == "unique":
        return sql.SQL("{c} in (select {c} from ({inc}) as d where {c} is not null group by {c} "
                       "having count(*) > 1)").format(c=col, inc=increment)
    raise ValueError(check.kind)


def _increment(table: str, load_ids: list[str]) -> sql.Composable:
    return sql.SQL("select * from raw.{} where _dlt_load_id = any({})").format(
        sql.Identifier(table), sql.Literal(load_ids))


def _load_ids(conn, table: str, load_ids: list[str] | None) -> list[str]:
    if conn.execute("select to_regclass(%s)", (f"raw.{table}",)).fetchone()[0] is None:
        return []
    if load_ids:
        return list(load_ids)
    row = conn.execute(sql.SQL("select max(_dlt_load_id) from raw.{}").format(sql.Identifier(table))).fetchone()
    return [row[0]] if row and row[0] else []


def _connection_string(settings: Settings) -> str:
    # psycopg2: GX's postgres datasource builds its SQLAlchemy engine with that driver
    return pg_url("transformer", driver="postgresql+psycopg2", settings=settings)


def _jsonable(v):
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return str(v)
    if hasattr(v, "item"):
        return _jsonable(v.item())
    if isinstance(v, datetime):
        return v.isoformat()
    return v


def _context(gx):
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # tqdm bars go to stderr, which Airflow logs as ERROR lines
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def validate_raw_increment(load_ids: list[str] | None = None, tables: list[str] | None = None,
                           settings: Settings | None = None) -> dict:
    """Validate the raw increment; returns ``{table: {"success", "rows", "failed_expectations", "quarantined_rows"}}``."""
    import great_expectations as gx

    s = settings or get_settings()
    context = _context(gx)
    datasource = context.data_sources.add_postgres("warehouse", connection_string=_connection_string(s))
    summary: dict[str, dict] = {}
    now = datetime.now(UTC)
    views: list[str] = []
    with pg_connect("transformer", settings=s) as conn:
        conn.execute(DDL)
        for statement in analyst_grants(s):
            conn.execute(statement)
        conn.commit()
        try:
            for table in tables or list(SUITES):
                _validate_table(gx, context, datasource, conn, table, load_ids, summary, views, now)
        finally:
            conn.rollback()
            for view in views:
                conn.execute(sql.SQL("drop view if exists ops.{}").format(sql.Identifier(view)))
            conn.commit()
    return summary


def _validate_table(gx, context, datasource, conn, table: str, load_ids: list[str] | None, summary: dict,
                    views: list[str], now: datetime) -> None:
    """One table's increment: GX counts in SQL, results and quarantined rows written."""
    key_columns, checks = SUITES[table]
    used_loads = _load_ids(conn, table, load_ids)
    increment = _increment(table, used_loads) if used_loads else None
    if increment is None or conn.execute(
            sql.SQL("select not exists ({})").format(increment)).fetchone()[0]:
        summary[table] = {"success": True, "rows": 0, "failed_expectations": 0, "quarantined_rows": 0}
        return
    load_key = ",".join(sorted(used_loads))
    # the increment as a view, validated as a table asset: GX runs a query asset once on
    # its own to learn the columns, and psycopg2 downloads the whole result (+190 MB for
    # 1.3 M heart-rate samples); a table's columns come from the catalogue
    view = f"dq_increment_{table}_{hashlib.sha1(load_key.encode()).hexdigest()[:12]}"
    conn.execute(sql.SQL("create or replace view ops.{} as {}").format(sql.Identifier(view), increment))
    conn.commit()
    views.append(view)
    asset = datasource.add_table_asset(name=table, table_name=view, schema_name="ops")
    suite = context.suites.add(gx.ExpectationSuite(name=f"raw_{table}"))
    for check in checks:
        suite.add_expectation(_expectation(gx, check))
    validation = context.validation_definitions.add(gx.ValidationDefinition(
        name=f"raw_{table}_increment", data=asset.add_batch_definition_whole_table("increment"), suite=suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=f"raw_{table}_checkpoint", validation_definitions=[validation],
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": 0}))
    result = checkpoint.run()

    failed = quarantined = rows = 0
    for run_result in result.run_results.values():
        for r in run_result.results:
            cfg = r.expectation_config
            column = cfg.kwargs.get("column", "")
            res = r.result or {}
            rows = max(rows, res.get("element_count") or 0)
            conn.execute(
                "insert into ops.data_quality_results values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "on conflict (table_name, load_id, expectation, column_name) do update set "
                "success = excluded.success, element_count = excluded.element_count, "
                "unexpected_count = excluded.unexpected_count, unexpected_percent = excluded.unexpected_percent, "
                "details = excluded.details, validated_at = excluded.validated_at",
                (table, load_key, cfg.type, column, bool(r.success), res.get("element_count"),
                 res.get("unexpected_count"), res.get("unexpected_percent"),
                 json.dumps({k: _jsonable(v) for k, v in cfg.kwargs.items() if k != "batch_id"}), now))
            if r.success:
                continue
            failed += 1
            check = next(c for c in checks if c.column == column and _expectation(gx, c).expectation_type
                         == cfg.type)
            quarantined += _quarantine_rows(conn, table, key_columns, check, cfg.type, load_key, used_loads,
                                            now)
    conn.commit()
    summary[table] = {"success": bool(result.success), "rows": rows, "failed_expectations": failed,
                      "quarantined_rows": quarantined}
    log.info("GX %s: %d rows, %d failed expectations, %d rows quarantined", table, rows, failed, quarantined)


def _quarantine_rows(conn, table: str, key_columns: tuple[str, ...], check: Check, expectation: str, load_key: str,
                     load_ids: list[str], now: datetime) -> int:
    """Copy the rows breaking ``check`` to ops.dq_quarantine inside the database; their number."""
    increment = _increment(table, load_ids)
    statement = sql.SQL("""
        insert into ops.dq_quarantine
        select {table}, concat_ws('#', {keys}), {load}, {expectation}, {column}, {observed}::text, {reason}, {now}
        from ({increment}) as increment
        where {condition}
        on conflict do nothing""").format(
        table=sql.Literal(table), keys=sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(k))
                                                          for k in key_columns),
        load=sql.Literal(load_key), expectation=sql.Literal(expectation), column=sql.Literal(check.column),
        observed=sql.Identifier(check.column), reason=sql.Literal(f"{expectation}({check.column})"),
        now=sql.Literal(now), increment=increment, condition=unexpected_condition(check, increment))
    conn.execute(statement)
    return conn.execute(sql.SQL("select count(*) from ops.dq_quarantine where table_name = {} and load_id = {} "
                                "and expectation = {} and column_name = {}").format(
        sql.Literal(table), sql.Literal(load_key), sql.Literal(expectation), sql.Literal(check.column))).fetchone()[0]
