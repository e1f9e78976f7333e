"""Backfill throughput of the simulators against a plain ``insert_many`` of the same documents.

Both paths write into the same throw-away MongoDB-protocol server (started here, on a free port)
in one run: (1) ``generators.backfill`` (generation + chunked unordered insert_many + _ingested_at),
(2) the baseline: the very same documents built beforehand, inserted with plain
``insert_many(ordered=False)`` in chunks of the same size. A ratio near 1 means generation is not
the bottleneck. Generation alone (no database) is timed too.

    .venv/bin/python -m benchmarks.generate [--quick] [--sensors N] [--users N] [--hours H]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.common import peak_rss_mb, timer, write_result

START = datetime(2026, 11, 2, tzinfo=UTC)
CHUNK = 2000


def _points(collection: str, doc: dict) -> int:
    """Measured values in a document: 7 readings per air-quality document, one per metric entry."""
    if collection == "air_quality":
        return len(doc["readings"])
    return len(doc["metrics"])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke-run size")
    parser.add_argument("--sensors", type=int, default=None)
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--hours", type=float, default=None)
    parser.add_argument("--rounds", type=int, default=None,
                        help="measure each path this many times, alternating order; the best time counts")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    sensors = args.sensors or (3 if args.quick else 40)
    users = args.users or (2 if args.quick else 20)
    hours = args.hours or (6 if args.quick else 24)

    from iot_cli.localstack import mongo
    from iot_cli.localstack.process import free_port

    state = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    os.chmod(state, 0o755)
    os.environ.update({"MONGO_PORT": str(free_port()), "MONGO_DB": "bench_generate"})
    from iot_core.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()

    @contextmanager
    def fresh_server():
        """Every measurement gets a new server with an empty data directory (dropping collections
        between runs left SecantusDB slower run after run)."""
        data_dir = state / f"data-{len(list(state.glob('data-*')))}"
        server = mongo.start(settings, state, data_dir=data_dir)
        try:
            yield
        finally:
            server.stop()
            shutil.rmtree(data_dir, ignore_errors=True)

    try:
        result = _run(settings, fresh_server, sensors, users, hours, rounds)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    result["workload"].update({"server": mongo.server_kind(), "quick": args.quick})
    write_result("generate", result)
    return 0


def _run(settings, fresh_server, sensors: int, users: int, hours: float, rounds: int) -> dict:
    from generators import MEASUREMENTS, MongoWriter, backfill, build_fleet, documents
    from generators.catalog import SEND_DELAY_S
    from generators.writer import utc_now_ms
    from iot_core.connections import mongo_client, mongo_db

    fleet = build_fleet(users=users, sensors=sensors, seed=42, anchor=START)
    end = START + timedelta(hours=hours)
    # generation alone, and the prebuilt documents the baseline inserts (what backfill writes)
    with timer() as gen_time:
        prebuilt = {c: documents(fleet, c, START, end - timedelta(seconds=SEND_DELAY_S[c])) for c in MEASUREMENTS}
    docs = sum(len(v) for v in prebuilt.values())
    points = sum(_points(c, d) for c, v in prebuilt.items() for d in v)
    print(f"workload: {docs} documents, {points} data points; generated in {gen_time():.2f}s", flush=True)

    def plain_insert(db) -> float:
        now = utc_now_ms()
        stamped = {c: [{**d, "_ingested_at": now} for d in v] for c, v in prebuilt.items()}
        with timer() as elapsed:
            for collection, items in stamped.items():
                for lo in range(0, len(items), CHUNK):
                    db[collection].insert_many(items[lo:lo + CHUNK], ordered=False)
        return elapsed()

    def project_backfill(db) -> float:
        with timer() as elapsed:
            stats = backfill(MongoWriter(db, chunk_size=CHUNK), fleet, START, end, progress=False)
        stored = sum(db[c].count_documents({}) for c in MEASUREMENTS)
        assert stored == docs == sum(stats.by_collection[c] for c in MEASUREMENTS), (stored, docs)
        return elapsed()

    # alternate the order each round (the machine is shared; best time of each path counts)
    times: dict[str, list[float]] = {"plain": [], "backfill": []}
    for round_no in range(rounds):
        order = ("plain", "backfill") if round_no % 2 == 0 else ("backfill", "plain")
        for name in order:
            with fresh_server(), mongo_client(settings) as client:
                db = mongo_db(client, settings)
                times[name].append(plain_insert(db) if name == "plain" else project_backfill(db))
            print(f"round {round_no + 1}: {name} {times[name][-1]:.2f}s", flush=True)
    def rates(seconds: float) -> dict:
        return {"seconds": round(seconds, 3), "docs_per_s": round(docs / seconds),
                "points_per_s": round(points / seconds)}

    project, baseline = rates(min(times["backfill"])), rates(min(times["plain"]))
    return {
        "workload": {"sensors": sensors, "users": users, "hours": hours, "documents": docs, "data_points": points,
                     "chunk_size": CHUNK, "rounds": rounds},
        "all_seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "generation_only": rates(gen_time()),
        "backfill": project,
        "baseline_plain_insert_many": baseline,
        "ratio_backfill_vs_plain_insert": round(baseline["seconds"] / project["seconds"], 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
