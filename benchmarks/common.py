"""Shared helpers for the benchmarks: timing, peak memory and the JSON result file."""

from __future__ import annotations

import json
import platform
import resource
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@contextmanager
def timer():
    """``with timer() as t: ...`` then ``t()`` gives the elapsed seconds."""
    start = time.perf_counter()
    end = None

    def elapsed() -> float:
        return (end or time.perf_counter()) - start

    try:
        yield elapsed
    finally:
        end = time.perf_counter()


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process (or of its waited-for children) in MB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024


def write_result(name: str, result: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        **result,
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    print(json.dumps(payload, indent=2, default=str))
    return path


def start_throwaway_servers(state_dir: Path, mongo: bool = False, env: dict[str, str] | None = None):
    """A PostgreSQL cluster (and optionally a MongoDB-protocol server) on free ports under
    ``state_dir``, with the platform's init SQL applied; the settings point at them.

    Returns ``(settings, cluster, mongo_process_or_None)``; the caller stops both.
    """
    import os

    from iot_cli.localstack import mongo as mongo_server
    from iot_cli.localstack import postgres
    from iot_cli.localstack.process import free_port
    from iot_core.settings import get_settings

    os.environ.update({"PG_PORT": str(free_port()), "LOCAL_DIR": str(state_dir), **(env or {})})
    if mongo:
        os.environ["MONGO_PORT"] = str(free_port())
    get_settings.cache_clear()
    settings = get_settings()
    cluster = postgres.cluster_for(settings, data_dir=state_dir / "pg" / "data")
    cluster.init()
    cluster.start()
    cluster.apply_init_sql(settings)
    mongo_proc = mongo_server.start(settings, state_dir) if mongo else None
    return settings, cluster, mongo_proc


def create_second_warehouse(settings, cluster, name: str):
    """Another warehouse database on the same server, with the same schemas, roles and grants:
    every warehouse init file after 01, as the platform's own init runs them."""
    from iot_cli.localstack.postgres import init_sql_variables
    from iot_core.connections import pg_connect

    other = settings.model_copy(update={"warehouse_db": name})
    with pg_connect("superuser", database="postgres", autocommit=True, settings=settings) as conn:
        conn.execute(f"create database {name}")
        conn.execute(f"revoke create, temporary on database {name} from public")
        conn.execute(f"grant connect on database {name} to {settings.loader_user}, {settings.transformer_user}")
        conn.execute(f"grant temporary on database {name} to {settings.transformer_user}")
    cluster.apply_warehouse_sql(name, init_sql_variables(other))
    return other
