"""Great Expectations 1.x checkpoint over the newest raw increment.

For each raw table the rows of the given dlt load(s) (default: the newest ``_dlt_load_id`` of
that table) are validated against a suite of types, nulls and ranges. Results go to
``ops.data_quality_results`` (one row per expectation), the rows that broke an expectation to
``ops.dq_quarantine`` with the expectation as the reason. A failed expectation never raises: the
pipeline goes on, and the stage checks keep such rows out of stage (stage.stg_rejects).

Idempotent: both tables are keyed by (table, load, expectation[, row]); re-validating the same
load overwrites its results and adds no duplicate quarantine rows. GX is imported inside the
function (about 4 s), never at DAG parse time.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from iot_core.connections import pg_connect
from iot_core.settings import Settings, get_settings

log = logging.getLogger(__name__)

ISO_OR_EPOCH = r"^\s*(-?\d{9,11}(\.\d+)?|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?))\s*$"


@dataclass(frozen=True)
class Check:
    kind: str          # not_null | between | regex | in_set | unique | numeric
    column: str
    args: dict = field(default_factory=dict)


READING_RANGES = {"iaq": (0, 500), "temperature": (-40, 85), "humidity": (0, 100), "pressure": (30, 110),
                  "voc": (0, 1000), "co2": (0, 10000), "iaq_accuracy": (0, 3)}

SUITES: dict[str, tuple[tuple[str, ...], list[Check]]] = {
    # table: (row key columns, checks)
    "air_quality": (("_id",), [
        Check("not_null", "_id"), Check("unique", "_id"), Check("not_null", "devid"), Check("not_null", "ts"),
        Check("regex", "ts", {"regex": ISO_OR_EPOCH}),
        *[Check("numeric", c) for c in READING_RANGES],
        *[Check("not_null", c) for c in READING_RANGES],
        *[Check("between", c, {"min_value": lo, "max_value": hi}) for c, (lo, hi) in READING_RANGES.items()],
    ]),
    "heart_rates__metrics": (("_parent_id", "idx"), [
        Check("not_null", "ts"), Check("not_null", "bpm"), Check("numeric", "bpm"),
        Check("between", "bpm", {"min_value": 25, "max_value": 250}),
        Check("between", "confidence", {"min_value": 0, "max_value": 3}),
    ]),
    "steps__metrics": (("_parent_id", "idx"), [
        Check("not_null", "ts"), Check("not_null", "steps"), Check("between", "steps", {"min_value": 0, "max_value": 400}),
    ]),
    "sleeps__metrics": (("_parent_id", "idx"), [
        Check("not_null", "start_ts"), Check("not_null", "end_ts"),
        Check("between", "duration", {"min_value": 0, "max_value": 86_400_000}),
    ]),
    "users": (("_id",), [
        Check("not_null", "user_id"), Check("unique", "user_id"),
        Check("between", "age", {"min_value": 0, "max_value": 120}),
        Check("in_set", "gender", {"value_set": ["male", "female", "other"]}),
    ]),
    "devices": (("_id",), [
        Check("not_null", "device_id"), Check("unique", "device_id"),
        Check("in_set", "kind", {"value_set": ["watch", "phone", "air_quality"]}),
    ]),
}

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
    if check.kind == "regex":
        return e.ExpectColumnValuesToMatchRegex(column=check.column, **check.args)
    if check.kind == "in_set":
        return e.ExpectColumnValuesToBeInSet(column=check.column, **check.args)
    if check.kind == "numeric":
        return e.ExpectColumnValuesToBeInTypeList(column=check.column, type_list=["float64", "Float64", "int64", "Int64"])
    raise ValueError(check.kind)


def _read_increment(conn, table: str, load_ids: list[str] | None):
    import pandas as pd

    if conn.execute("select to_regclass(%s)", (f"raw.{table}",)).fetchone()[0] is None:
        return None, []
    if not load_ids:
        row = conn.execute(f"select max(_dlt_load_id) from raw.{table}").fetchone()
        load_ids = [row[0]] if row and row[0] else []
    if not load_ids:
        return None, []
    cur = conn.execute(f"select * from raw.{table} where _dlt_load_id = any(%s)", (load_ids,))
    columns = [d.name for d in cur.description]
    df = pd.DataFrame(cur.fetchall(), columns=columns)
    for c in READING_RANGES if table == "air_quality" else ():
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    for c in ("bpm", "confidence", "steps", "duration", "age"):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df, load_ids


def _jsonable(v):
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return str(v)
    if hasattr(v, "item"):
        return _jsonable(v.item())
    if isinstance(v, datetime):
        return v.isoformat()
    return v


def validate_raw_increment(load_ids: list[str] | None = None, tables: list[str] | None = None,
                           settings: Settings | None = None) -> dict:
    """Validate the raw increment; returns ``{table: {"success", "failed_expectations", "quarantined_rows"}}``."""
    import great_expectations as gx

    s = settings or get_settings()
    context = gx.get_context(mode="ephemeral")
    datasource = context.data_sources.add_pandas("raw_increment")
    summary: dict[str, dict] = {}
    now = datetime.now(UTC)
    with pg_connect("transformer", settings=s) as conn:
        conn.execute(DDL)
        conn.commit()
        for table in tables or list(SUITES):
            key_columns, checks = SUITES[table]
            df, used_loads = _read_increment(conn, table, load_ids)
            if df is None or df.empty:
                summary[table] = {"success": True, "rows": 0, "failed_expectations": 0, "quarantined_rows": 0}
                continue
            load_key = ",".join(sorted(used_loads))
            batch_definition = datasource.add_dataframe_asset(name=table).add_batch_definition_whole_dataframe("increment")
            suite = context.suites.add(gx.ExpectationSuite(name=f"raw_{table}"))
            for check in checks:
                suite.add_expectation(_expectation(gx, check))
            validation = context.validation_definitions.add(
                gx.ValidationDefinition(name=f"raw_{table}_increment", data=batch_definition, suite=suite))
            checkpoint = context.checkpoints.add(gx.Checkpoint(
                name=f"raw_{table}_checkpoint", validation_definitions=[validation],
                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": list(key_columns)}))
            result = checkpoint.run(batch_parameters={"dataframe": df})

            failed = quarantined = 0
            for run_result in result.run_results.values():
                for r in run_result.results:
                    cfg = r.expectation_config
                    column = cfg.kwargs.get("column", "")
                    res = r.result or {}
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
                    rows = []
                    for item in res.get("unexpected_index_list") or []:
                        row_key = "#".join(str(item.get(k)) for k in key_columns)
                        observed = item.get(column)
                        rows.append((table, row_key, load_key, cfg.type, column, None if observed is None else
                                     str(_jsonable(observed)), f"{cfg.type}({column})", now))
                    if rows:
                        with conn.cursor() as cur:
                            cur.executemany("insert into ops.dq_quarantine values (%s, %s, %s, %s, %s, %s, %s, %s) "
                                            "on conflict do nothing", rows)
                        quarantined += len(rows)
            conn.commit()
            summary[table] = {"success": bool(result.success), "rows": len(df), "failed_expectations": failed,
                              "quarantined_rows": quarantined}
            log.info("GX %s: %d rows, %d failed expectations, %d rows quarantined", table, len(df), failed, quarantined)
    return summary
