"""Long-run check of the TimescaleDB path: 30 days through the pipeline with the policies run,
then the hot path on compressed history (issue 18).

Two warehouse databases on one throw-away TimescaleDB server get the same 30 generated days
(benchmarks.transform.workload, ending now) and the same full dbt run. In one, every policy job
is run once (CALL run_job: compression of stage and agg, the continuous aggregate's refresh,
ml.predictions' retention and compression, after warehouse.retention applied the settings), so
all stage chunks older than 7 days are compressed; in the other the compression policies are
removed, so its history stays row-based. Then, for several rounds, one new minute of readings
goes into both and the incremental stage run (`dbt run -s tag:stage`, the hot path) runs on each,
alternating which goes first, with TimescaleDB's decompression limit at 1,000 tuples on the
compressed side (it decompressed all history before the bounded merges). Goal: median time with
compressed history at most 1.2 x the uncompressed one. JSON in benchmarks/results/timescale.json,
a plot of the rounds beside it.

Needs TimescaleDB in the PostgreSQL binaries found (PG_BIN; docs/warehouse.md); without it the
benchmark says so and stops.

    PG_BIN=/opt/pgts/usr/lib/postgresql/15/bin .venv/bin/python -m benchmarks.timescale          # 10 sensors, 5 users
    PG_BIN=/opt/pgts/usr/lib/postgresql/15/bin .venv/bin/python -m benchmarks.timescale --quick  # 5 sensors, 2 users
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.common import (
    RESULTS_DIR,
    create_second_warehouse,
    peak_rss_mb,
    start_throwaway_servers,
    timer,
    write_result,
)

log = logging.getLogger("benchmarks.timescale")

UNCOMPRESSED_DB = "iot_warehouse_bench_rowstore"
GOAL_RATIO = 1.2
DECOMPRESSION_LIMIT = 1000


def _run_all_policy_jobs(settings) -> dict[str, int]:
    """CALL run_job for every policy of the warehouse (what the background workers do over days)."""
    from iot_core.connections import pg_connect

    done: dict[str, int] = {}
    with pg_connect("superuser", settings=settings, autocommit=True) as conn:
        jobs = conn.execute("select job_id, proc_name from timescaledb_information.jobs where job_id >= 1000 "
                            "order by proc_name = 'policy_compression' desc, job_id").fetchall()
        for job_id, proc in jobs:
            with timer() as t:
                conn.execute("call run_job(%s)", (job_id,))
            log.info("run_job %s (%s): %.1f s", job_id, proc, t())
            done[proc] = done.get(proc, 0) + 1
    return done


def _remove_compression_policies(settings) -> int:
    from iot_core.connections import pg_connect

    with pg_connect("transformer", settings=settings, autocommit=True) as conn:
        tables = conn.execute("select format('%I.%I', hypertable_schema, hypertable_name) "
                              "from timescaledb_information.jobs where proc_name = 'policy_compression'").fetchall()
        for (table,) in tables:
            conn.execute("select remove_compression_policy(%s::regclass, if_exists => true)", (table,))
    return len(tables)


def _decompress_all(settings) -> int:
    """The background scheduler may have compressed old chunks already (their policy ran when the
    tables were created): undo it on the row-store side."""
    from iot_core.connections import pg_connect

    with pg_connect("superuser", settings=settings, autocommit=True) as conn:
        chunks = conn.execute("select format('%I.%I', chunk_schema, chunk_name) from timescaledb_information.chunks "
                              "where is_compressed").fetchall()
        for (chunk,) in chunks:
            conn.execute("select decompress_chunk(%s::regclass)", (chunk,))
    return len(chunks)


def _chunk_stats(settings) -> dict:
    from iot_core.connections import pg_connect

    with pg_connect("superuser", settings=settings) as conn:
        rows = conn.execute(
            "select hypertable_schema || '.' || hypertable_name, count(*), count(*) filter (where is_compressed) "
            "from timescaledb_information.chunks group by 1 order by 1").fetchall()
        size = conn.execute("select pg_size_pretty(sum(hypertable_size(format('%I.%I', hypertable_schema, "
                            "hypertable_name)::regclass))) from timescaledb_information.hypertables "
                            "where hypertable_schema = 'stage'").fetchone()[0]
    return {"stage_hypertables_size": size,
            "chunks": {name: {"chunks": n, "compressed": c} for name, n, c in rows}}


def _plot(times: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    rounds = range(1, len(next(iter(times.values()))) + 1)
    for label, ts in times.items():
        ax.plot(list(rounds), ts, marker="o", label=label)
    ax.set_xlabel("round (one new minute each)")
    ax.set_ylabel("incremental stage run (s)")
    ax.set_ylim(bottom=0)
    ax.set_title("Hot path on 30 days of history: compressed vs row-store chunks")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="benchmarks.timescale", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--sensors", type=int)
    parser.add_argument("--users", type=int)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5, help="incremental runs per database (median taken)")
    args = parser.parse_args(argv)
    sensors = args.sensors or (5 if args.quick else 10)
    users = args.users or (2 if args.quick else 5)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from iot_cli.localstack import postgres

    bin_dir = postgres.find_bin_dir()
    if bin_dir is None or not postgres.timescaledb_installed(bin_dir):
        message = (f"TimescaleDB is not installed for the PostgreSQL binaries in {bin_dir}: set PG_BIN to a "
                   "PostgreSQL 15 bin directory whose pkglibdir holds TimescaleDB 2.28.3 (docs/warehouse.md)")
        log.warning("benchmarks.timescale skipped: %s", message)
        return {"skipped": message}

    state_dir = Path(tempfile.mkdtemp(prefix="iot-bench-timescale-"))
    os.chmod(state_dir, 0o755)
    os.environ["DBT_LOG_PATH"] = str(state_dir / "dbt-logs")
    settings, cluster, _ = start_throwaway_servers(state_dir)
    try:
        from benchmarks.transform.workload import generate
        from dbt_project.runner import build, timescaledb_present
        from iot_core.connections import pg_connect
        from tests.dbt_project.raw_fixture import create_ml_predictions, create_raw_tables
        from warehouse.retention import apply_retention

        assert timescaledb_present(settings), "the warehouse database did not get the extension"
        end = datetime.now(UTC).replace(second=0, microsecond=0)
        minute = timedelta(minutes=1)
        sides = {"compressed": settings, "row_store": create_second_warehouse(settings, cluster, UNCOMPRESSED_DB)}
        result: dict = {"sizes": {"sensors": sensors, "users": users, "history_days": args.days,
                                  "rounds": args.rounds},
                        "timescaledb": None, "setup_s": {}}

        model_seconds: dict[str, list[dict[str, float]]] = {}

        def timed(label: str, wh, select: list[str], command: str = "run") -> float:
            target = state_dir / f"dbt-target-{wh.warehouse_db}"
            os.environ["DBT_TARGET_PATH"] = str(target)
            with timer() as t:
                build(select=select, settings=wh, command=command)
            log.info("%s: %.2f s", label, t())
            if label.startswith("round"):  # where the time of an incremental run goes, per model
                run_results = json.loads((target / "run_results.json").read_text())
                model_seconds.setdefault(label.rsplit(" on ", 1)[1], []).append(
                    {r["unique_id"].split(".")[2]: round(r["execution_time"], 2) for r in run_results["results"]})
            return round(t(), 2)

        for label, wh in sides.items():
            with pg_connect("loader", settings=wh) as conn:
                create_raw_tables(conn)
                log.info("%s: generating %d days of raw data", label, args.days)
                with timer() as t:
                    generate(conn, sensors, users, end - timedelta(days=args.days), end)
                result["setup_s"][f"generate_{label}"] = round(t(), 1)
            with pg_connect("transformer", settings=wh) as conn:
                create_ml_predictions(conn)
            result["setup_s"][f"first_full_run_{label}"] = timed(f"{label}: first run of every model", wh, [])

        with pg_connect("superuser", settings=settings) as conn:
            result["timescaledb"] = conn.execute(
                "select extversion || ' on PostgreSQL ' || current_setting('server_version') "
                "from pg_extension where extname = 'timescaledb'").fetchone()[0]

        # the compressed side: retention settings applied, every policy job run once
        apply_retention(settings, progress=True)
        with timer() as t:
            result["policy_jobs_run"] = _run_all_policy_jobs(settings)
        result["setup_s"]["policy_jobs"] = round(t(), 1)
        result["removed_compression_policies_row_store"] = _remove_compression_policies(sides["row_store"])
        result["decompressed_chunks_row_store"] = _decompress_all(sides["row_store"])
        result["chunks"] = {label: _chunk_stats(wh) for label, wh in sides.items()}
        with pg_connect("superuser", settings=settings, autocommit=True) as conn:
            conn.execute(f"alter database {settings.warehouse_db} set "
                         f"timescaledb.max_tuples_decompressed_per_dml_transaction = {DECOMPRESSION_LIMIT}")

        times: dict[str, list[float]] = {label: [] for label in sides}
        for i in range(args.rounds):
            new_from = end + i * minute
            for wh in sides.values():
                with pg_connect("loader", settings=wh) as conn:
                    generate(conn, sensors, 0, new_from, new_from + minute, registry=False)
            order = list(sides) if i % 2 == 0 else list(reversed(sides))
            for label in order:
                times[label].append(timed(f"round {i + 1}: incremental stage run on {label}", sides[label],
                                          ["tag:stage"]))
        median = {label: round(statistics.median(ts), 2) for label, ts in times.items()}
        ratio = round(median["compressed"] / median["row_store"], 2)
        # the compressed chunks stayed compressed: the hot path wrote only the newest chunk
        partial = {}
        with pg_connect("superuser", settings=settings) as conn:
            partial = dict(conn.execute(
                "select c.hypertable_name, count(*) from timescaledb_information.chunks as c "
                "join _timescaledb_catalog.chunk as k on k.schema_name = c.chunk_schema and k.table_name = c.chunk_name "
                "where c.hypertable_schema = 'stage' and k.status & 8 = 8 group by 1").fetchall())
        daily = {label: timed(f"incremental agg run (tag:daily) on {label}", wh, ["tag:daily"])
                 for label, wh in sides.items()}
        result["incremental_stage_after_1_minute"] = {
            "compressed_history_s": median["compressed"],
            "row_store_history_s": median["row_store"],
            "ratio_compressed_to_row_store": ratio,
            "ratio_per_round": [round(a / b, 2) for a, b in zip(times["compressed"], times["row_store"], strict=True)],
            "runs_s": times,
            "goal_ratio_at_most": GOAL_RATIO,
            "met": ratio <= GOAL_RATIO,
            "decompression_limit_on_compressed_side": DECOMPRESSION_LIMIT,
            "chunks_partially_decompressed_after_rounds": partial,
        }
        result["incremental_agg_daily_s"] = daily
        result["incremental_stage_model_median_s"] = {
            side: {model: round(statistics.median(run[model] for run in runs), 2) for model in runs[0]}
            for side, runs in model_seconds.items()}
        result["peak_rss_mb"] = round(peak_rss_mb(), 1)
        name = "timescale_quick" if args.quick else "timescale"
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        _plot(times, RESULTS_DIR / f"{name}.png")
        result["plot"] = f"benchmarks/results/{name}.png"
        write_result(name, result)
        log.info("ratio %.2f (goal <= %.1f): %s", ratio, GOAL_RATIO, json.dumps(median))
        return result
    finally:
        cluster.stop(mode="fast")
        shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
