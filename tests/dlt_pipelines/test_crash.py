"""Crash safety: SIGKILL the extract at random points, rerun; raw holds every document exactly once."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import factories as f

from dlt_pipelines.pipeline import PIPELINE_NAME
from iot_core.settings import PROJECT_ROOT

TRIALS = 10
EXTRACT = [sys.executable, "-m", "iot_cli.main", "extract", "--no-progress"]


def test_sigkill_at_random_points_then_rerun_loses_and_duplicates_nothing(fresh, raw, services):
    rnd = random.Random(4)
    fresh.devices.insert_many([f.device("aq-1"), f.device("w-1", kind="watch", owner="u-1")])
    # one uninterrupted run (registry only) tells how long a run takes on this machine right now
    started = time.monotonic()
    subprocess.run(EXTRACT, cwd=PROJECT_ROOT, env=os.environ.copy(), capture_output=True, check=True)
    run_seconds = time.monotonic() - started
    written = 0
    kills = 0
    for trial in range(TRIALS):
        now = f.ms(datetime.now(UTC))
        start = f.BASE + timedelta(days=trial)
        fresh.air_quality.insert_many(
            [f.air_quality("aq-1", start + timedelta(seconds=10 * i), now, i) for i in range(400)])
        fresh.heart_rates.insert_many([f.heart_rate("w-1", start + timedelta(hours=4 * i), 20, now) for i in range(6)])
        written += 400
        proc = subprocess.Popen(EXTRACT, cwd=PROJECT_ROOT, env=os.environ.copy(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # anywhere from start-up (imports) to the end of the load
        try:
            proc.wait(timeout=rnd.uniform(0.3, min(run_seconds, 10.0)))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
    assert kills >= 3, "the random delays should interrupt most runs"

    # a worker with the local state (pending packages included) finishes the job ...
    done = subprocess.run(EXTRACT, cwd=PROJECT_ROOT, env=os.environ.copy(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert raw("select count(*), count(distinct _id) from raw.air_quality") == [(written, written)]
    assert raw("select count(*), count(distinct (_parent_id, idx)) from raw.heart_rates__metrics") \
        == [(TRIALS * 6 * 20, TRIALS * 6 * 20)]
    # the killed runs' CSV directories went with the next run (it holds the extract lock)
    import_files = services.local_dir / "dlt" / PIPELINE_NAME / "import_files"
    assert sorted(p.name for p in import_files.iterdir()) == []

    # ... and a fresh worker without local state resumes from the state stored in the warehouse
    shutil.rmtree(services.local_dir / "dlt", ignore_errors=True)
    fresh.air_quality.insert_one(f.air_quality("aq-1", f.BASE - timedelta(days=1)))
    time.sleep(0.01)
    again = subprocess.run(EXTRACT + ["--json"], cwd=PROJECT_ROOT, env=os.environ.copy(), capture_output=True,
                           text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert '"documents": 1' in again.stdout
    assert raw("select count(*), count(distinct _id) from raw.air_quality") == [(written + 1, written + 1)]
