"""Benchmark of the dbt transform (stage / agg / curated) on a throw-away PostgreSQL.

1. Incremental stage run (`dbt run`, models only: tests scan whole tables by design) after one
   minute of new data, with 1 day and with 30 days of history
   already transformed (goal: time ratio 30 d / 1 d at most 1.5: an incremental run must cost
   what is new, not what is old). Baseline side by side: a full rebuild of stage on the same
   30 days.
2. A full build (models and their tests) of 30 days for 100 sensors and 50 users.

    .venv/bin/python -m benchmarks.transform            # 100 sensors, 50 users, 1 and 30 days
    .venv/bin/python -m benchmarks.transform --quick    # 10 sensors, 5 users, 1 and 3 days
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.common import peak_rss_mb, start_throwaway_servers, timer, write_result

log = logging.getLogger("benchmarks.transform")


def _start_cluster(state_dir: Path):
    settings, cluster, _ = start_throwaway_servers(state_dir)
    return settings, cluster


def _row_count(settings, table: str) -> int:
    from iot_core.connections import pg_connect

    with pg_connect("superuser", settings=settings) as conn:
        return conn.execute(f"select count(*) from {table}").fetchone()[0]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="benchmarks.transform", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--sensors", type=int)
    parser.add_argument("--users", type=int)
    parser.add_argument("--days", type=int, help="long history in days (default 30, quick 3)")
    parser.add_argument("--incremental-only", action="store_true", help="skip the full build (part 2)")
    args = parser.parse_args(argv)
    sensors = args.sensors or (10 if args.quick else 100)
    users = args.users or (5 if args.quick else 50)
    days = args.days or (3 if args.quick else 30)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    state_dir = Path(tempfile.mkdtemp(prefix="iot-bench-transform-"))
    os.chmod(state_dir, 0o755)
    # dbt's logs and artefacts of this run stay out of the project (other runs may be going on)
    os.environ["DBT_LOG_PATH"] = str(state_dir / "dbt-logs")
    os.environ["DBT_TARGET_PATH"] = str(state_dir / "dbt-target")
    settings, cluster = _start_cluster(state_dir)
    try:
        from benchmarks.transform.workload import generate
        from dbt_project.raw_fixture import create_ml_predictions, create_raw_tables
        from dbt_project.runner import build
        from iot_core.connections import pg_connect

        end = datetime(2026, 11, 21, tzinfo=UTC)
        last_day = end - timedelta(days=1)
        first_day = end - timedelta(days=days)
        minute = timedelta(minutes=1)
        result: dict = {"sizes": {"sensors": sensors, "users": users, "history_days": days}}

        with pg_connect("loader", settings=settings) as conn:
            create_raw_tables(conn)
            log.info("generating 1 day of raw data")
            generate(conn, sensors, users, last_day, end)
        with pg_connect("transformer", settings=settings) as conn:
            create_ml_predictions(conn)

        model_seconds: dict[str, dict[str, float]] = {}

        def timed_build(label: str, select: list[str], full_refresh: bool = False, command: str = "run") -> float:
            with timer() as t:
                build(select=select, full_refresh=full_refresh, settings=settings, command=command)
            log.info("%s: %.2f s", label, t())
            run_results = json.loads((state_dir / "dbt-target" / "run_results.json").read_text())
            slowest = sorted(run_results["results"], key=lambda r: -r["execution_time"])[:6]
            model_seconds[label] = {r["unique_id"].split(".")[-1]: round(r["execution_time"], 2) for r in slowest}
            return round(t(), 2)

        # --- 1 day of history, then one new minute
        timed_build("initial stage build, 1 day", ["tag:stage"])
        with pg_connect("loader", settings=settings) as conn:
            generate(conn, sensors, 0, end, end + minute, registry=False)
        inc_1d = timed_build("incremental stage run, +1 minute on 1 day", ["tag:stage"])

        # --- the older days (ingested earlier), rebuilt in full, then one new minute
        with pg_connect("loader", settings=settings) as conn:
            log.info("generating %d more days of raw data", days - 1)
            generate(conn, sensors, users, first_day, last_day, registry=False)
        full_stage = timed_build(f"full rebuild of stage, {days} days (baseline)", ["tag:stage"], full_refresh=True)
        with pg_connect("loader", settings=settings) as conn:
            generate(conn, sensors, 0, end + minute, end + 2 * minute, registry=False)
        inc_long = timed_build(f"incremental stage run, +1 minute on {days} days", ["tag:stage"])

        # --- full build of everything (models and tests) on the whole history
        full_build = None
        if not args.incremental_only:
            full_build = timed_build(f"full build of all models and tests, {days} days", [], full_refresh=True,
                                     command="build")

        result["incremental_stage_after_1_minute"] = {
            "history_1_day_s": inc_1d,
            f"history_{days}_days_s": inc_long,
            "ratio_long_to_1_day": round(inc_long / inc_1d, 2),
            "goal_ratio_at_most": 1.5,
            f"baseline_full_stage_rebuild_{days}_days_s": full_stage,
            "speedup_vs_full_rebuild": round(full_stage / inc_long, 1),
        }
        result["full_build"] = {
            "days": days, "seconds": full_build,
            "stage_readings_rows": _row_count(settings, "stage.stg_sensor_readings"),
            "iaq_minutely_rows": _row_count(settings, "stage.iaq_minutely"),
            "heart_rate_rows": _row_count(settings, "stage.stg_heart_rate"),
            "agg_user_daily_rows": None if full_build is None else _row_count(settings, "agg.agg_user_daily"),
        }
        result["slowest_nodes_s"] = model_seconds
        result["peak_rss_mb"] = round(peak_rss_mb(), 1)
        name = "transform_quick" if args.quick else ("transform_incremental" if args.incremental_only else "transform")
        write_result(name, result)
        return result
    finally:
        cluster.stop(mode="fast")
        shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
