"""A PostgreSQL crash (SIGKILL of the postmaster and its backends) right after a load, or in the
middle of one, loses nothing: the warehouse commits durably and the extract's progress lives in
the warehouse, committed after the rows it covers."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta

import factories as f
import pytest

from iot_cli.localstack import postgres
from iot_cli.localstack.process import free_port
from iot_core.connections import pg_connect
from iot_core.settings import PROJECT_ROOT, Settings

TRIALS = 10
EXTRACT = [sys.executable, "-m", "iot_cli.main", "extract", "--no-progress"]


@pytest.fixture
def own_cluster(services, test_state_dir):
    """A PostgreSQL cluster of this test's own (it is killed on purpose), with the warehouse init."""
    port = free_port()
    settings = Settings(**{**services.model_dump(), "pg_port": port})
    cluster = postgres.cluster_for(settings, data_dir=test_state_dir / "pg-crash" / "data")
    cluster.init()
    cluster.start()
    cluster.apply_init_sql(settings)
    env = {**os.environ, "PG_PORT": str(port), "LOCAL_DIR": str(test_state_dir / "crash-local")}
    yield cluster, settings, env
    cluster.stop(mode="immediate")


def crash(cluster) -> None:
    """SIGKILL the postmaster and every backend of the cluster, as a machine crash would."""
    pid = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for p in [pid, *map(int, children)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while cluster.running() and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.mark.slow
def test_postgres_killed_after_or_during_loads_loses_and_duplicates_nothing(fresh, own_cluster):
    cluster, settings, env = own_cluster
    rnd = random.Random(7)
    fresh.devices.insert_many([f.device("aq-1"), f.device("w-1", kind="watch", owner="u-1")])
    fresh.users.insert_one(f.user("u-1", ["w-1"]))
    written = 0
    for trial in range(TRIALS):
        start = f.BASE + timedelta(days=trial)
        fresh.air_quality.insert_many([f.air_quality("aq-1", start + timedelta(seconds=10 * i), i=i) for i in range(300)])
        fresh.users.update_one({"_id": "u-1"}, {"$set": {"height": 150 + trial}})
        written += 300
        proc = subprocess.Popen(EXTRACT, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if trial % 2 == 0:  # right after a load
            proc.wait(timeout=300)
        else:  # somewhere in the middle of one
            time.sleep(rnd.uniform(0.5, 4.0))
        crash(cluster)
        proc.wait(timeout=300)
        cluster.start()

    done = subprocess.run(EXTRACT + ["--json"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    with pg_connect("loader", settings=settings) as conn:
        assert conn.execute("select count(*), count(distinct _id) from raw.air_quality").fetchone() == (written, written)
        assert conn.execute("select height from raw.users").fetchall() == [(150 + TRIALS - 1,)]
        assert conn.execute("show synchronous_commit").fetchone() == ("on",)
    assert fresh.air_quality.count_documents({}) == written
