"""Benchmark of the dbt transform (stage / agg / curated) on a throw-away PostgreSQL.

1. Incremental stage run (`dbt run`, models only: tests scan whole tables by design) after one
   minute of new data, with 1 day and with 30 days of history already transformed (goal: time
   ratio 30 d / 1 d at most 1.5: an incremental run must cost what is new, not what is old).
   The two histories live in two databases of the same server, and the runs alternate between
   them for several rounds (order swapped every round), so both sides share the same machine
   load; the ratio is that of the medians. Baseline: the full build of stage on the 30 days.
2. A full build (`dbt build --full-refresh`: models and their tests) of 30 days for 100 sensors
   and 50 users, with its slowest nodes.

    .venv/bin/python -m benchmarks.transform            # 100 sensors, 50 users, 1 and 30 days
    .venv/bin/python -m benchmarks.transform --quick    # 10 sensors, 5 users, 1 and 3 days
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
    create_second_warehouse,
    peak_rss_mb,
    start_throwaway_servers,
    timer,
    write_result,
)

log = logging.getLogger("benchmarks.transform")

SHORT_HISTORY_DB = "iot_warehouse_bench_1day"


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
    parser.add_argument("--rounds", type=int, default=5, help="incremental runs per history (median taken)")
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
    settings, cluster, _ = start_throwaway_servers(state_dir)
    try:
        from benchmarks.transform.workload import generate
        from dbt_project.runner import build
        from iot_core.connections import pg_connect
        from tests.dbt_project.raw_fixture import create_ml_predictions, create_raw_tables

        end = datetime(2026, 11, 21, tzinfo=UTC)
        minute = timedelta(minutes=1)
        result: dict = {"sizes": {"sensors": sensors, "users": users, "history_days": days,
                                  "incremental_rounds": args.rounds}}
        histories = {"1_day": create_second_warehouse(settings, cluster, SHORT_HISTORY_DB),
                     f"{days}_days": settings}
        history_days = {"1_day": 1, f"{days}_days": days}

        for label, wh in histories.items():
            with pg_connect("loader", settings=wh) as conn:
                create_raw_tables(conn)
                log.info("generating %s of raw data", label)
                generate(conn, sensors, users, end - timedelta(days=history_days[label]), end)
            with pg_connect("transformer", settings=wh) as conn:
                create_ml_predictions(conn)

        model_seconds: dict[str, dict[str, float]] = {}

        def timed_build(label: str, wh, select: list[str], full_refresh: bool = False, command: str = "run") -> float:
            # one target directory per database: dbt's partial parse stays valid for each
            target = state_dir / f"dbt-target-{wh.warehouse_db}"
            os.environ["DBT_TARGET_PATH"] = str(target)
            with timer() as t:
                build(select=select, full_refresh=full_refresh, settings=wh, command=command)
            log.info("%s: %.2f s", label, t())
            run_results = json.loads((target / "run_results.json").read_text())
            slowest = sorted(run_results["results"], key=lambda r: -r["execution_time"])[:8]
            model_seconds[label] = {r["unique_id"].split(".")[2]: round(r["execution_time"], 2) for r in slowest}
            return round(t(), 2)

        # --- stage built on each history; on the long one this full build is the baseline
        timed_build("initial stage build, 1 day", histories["1_day"], ["tag:stage"], full_refresh=True)
        full_stage = timed_build(f"full build of stage, {days} days (baseline)", histories[f"{days}_days"],
                                 ["tag:stage"], full_refresh=True)

        # --- rounds: one new minute in both databases, then the incremental run on each, the
        # order swapped every round so neither side always runs first
        times: dict[str, list[float]] = {label: [] for label in histories}
        for i in range(args.rounds):
            new_from = end + i * minute
            for wh in histories.values():
                with pg_connect("loader", settings=wh) as conn:
                    generate(conn, sensors, 0, new_from, new_from + minute, registry=False)
            order = list(histories) if i % 2 == 0 else list(reversed(histories))
            for label in order:
                times[label].append(timed_build(f"incremental stage run {i + 1}, +1 minute on {label}",
                                                histories[label], ["tag:stage"]))
        median = {label: round(statistics.median(ts), 2) for label, ts in times.items()}
        long_label = f"{days}_days"

        # --- full build of everything (models and tests) on the whole long history
        full_build = None
        if not args.incremental_only:
            full_build = timed_build(f"full build of all models and tests, {days} days",
                                     histories[long_label], [], full_refresh=True, command="build")

        long_wh = histories[long_label]
        result["incremental_stage_after_1_minute"] = {
            "history_1_day_s": median["1_day"],
            f"history_{days}_days_s": median[long_label],
            "ratio_long_to_1_day": round(median[long_label] / median["1_day"], 2),
            "ratio_per_round": [round(a / b, 2) for a, b in zip(times[long_label], times["1_day"], strict=True)],
            "runs_s": times,
            "goal_ratio_at_most": 1.5,
            f"baseline_full_stage_build_{days}_days_s": full_stage,
            "speedup_vs_full_build": round(full_stage / median[long_label], 1),
        }
        result["full_build"] = {
            "days": days, "seconds": full_build,
            "stage_readings_rows": _row_count(long_wh, "stage.stg_sensor_readings"),
            "iaq_minutely_rows": _row_count(long_wh, "stage.iaq_minutely"),
            "heart_rate_rows": _row_count(long_wh, "stage.stg_heart_rate"),
            "agg_user_daily_rows": None if full_build is None else _row_count(long_wh, "agg.agg_user_daily"),
            "curated_research_minutely_rows":
                None if full_build is None else _row_count(long_wh, "curated.curated_research_minutely"),
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
