"""Two dbt runs of the same models at once (the hourly master DAG beside the stage hot path, or
`iot transform` beside either): each model is built by one run at a time (macros/model_lock.sql),
so both runs succeed and the warehouse ends as one run would leave it.

Without the lock, two concurrent builds of the stage layer failed one of them (a table model's
`__dbt_tmp` relation, or a merge of the same new key, met the other run's) in one round of three.
"""

from __future__ import annotations

import os
import subprocess
import time
from datetime import timedelta

from dbt_support import DAY, FIRST_LOAD_AT, snapshot
from raw_fixture import RawWriter

from dbt_project.runner import PROFILES_DIR, PROJECT_DIR, build, dbt_env, dbt_executable
from iot_core.connections import pg_connect
from iot_core.locks import MODEL_LOCK_NAMESPACE


def test_dbt_takes_the_model_locks_others_take():
    """Erasure (privacy) blocks dbt builds with the locks of iot_core.locks: the macro must use the same key."""
    macro = (PROJECT_DIR / "macros" / "model_lock.sql").read_text()
    assert f"{{% macro model_lock_namespace() -%}}{MODEL_LOCK_NAMESPACE}{{%- endmacro %}}" in macro


def start_build(settings, target_dir, select="tag:stage") -> subprocess.Popen:
    """A `dbt build` in a process of its own, as an Airflow task or `iot transform` runs it."""
    env = {**os.environ, **dbt_env(settings)}
    return subprocess.Popen([dbt_executable(), "build", "--select", select, "--exclude-resource-type", "unit_test",
                             "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROFILES_DIR),
                             "--target-path", str(target_dir), "--log-path", str(target_dir)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def waiting_for(conn, model: str) -> int:
    """How many sessions wait for the model lock of ``model`` (``schema.identifier``)."""
    return conn.execute("select count(*) from pg_locks where locktype = 'advisory' and classid = %s"
                        " and objid = hashtext(%s)::oid and not granted", (MODEL_LOCK_NAMESPACE, model)).fetchone()[0]


def test_two_runs_of_the_stage_layer_at_once_both_succeed_and_build_each_model_once(built, tmp_path):
    new_steps = [(DAY + timedelta(hours=19, minutes=i), 25) for i in range(15)]
    with pg_connect("loader", settings=built) as conn:
        RawWriter(conn, load_id="load-concurrent").bucket(
            "steps", "st:w1:concurrent", "w1", DAY + timedelta(hours=19), DAY + timedelta(hours=19, minutes=15),
            new_steps, FIRST_LOAD_AT + timedelta(days=3))

    with pg_connect("superuser", settings=built) as holder, pg_connect("superuser", settings=built,
                                                                        autocommit=True) as watcher:
        # this session plays a third run in the middle of building stage.stg_steps
        holder.execute("select pg_advisory_xact_lock(%s, hashtext('stage.stg_steps'))", (MODEL_LOCK_NAMESPACE,))
        runs = [start_build(built, tmp_path / name) for name in ("master", "hot_path")]
        deadline = time.monotonic() + 240
        while waiting_for(watcher, "stage.stg_steps") < 2 and time.monotonic() < deadline \
                and all(run.poll() is None for run in runs):
            time.sleep(0.2)
        queued = waiting_for(watcher, "stage.stg_steps")
        before = watcher.execute("select count(*) from stage.stg_steps where device_id = 'w1' and steps = 25"
                                 ).fetchone()[0]
        holder.rollback()  # the third run ends: the lock is released
        outputs = [run.communicate(timeout=300)[0] for run in runs]

    assert queued == 2, "both runs should wait for the model another run is building"
    assert before == 0
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, "\n".join(line for line in output.splitlines() if "rror" in line)[-3000:]
    with pg_connect("superuser", settings=built) as conn:
        assert conn.execute("select count(*), count(distinct (device_id, time)) from stage.stg_steps"
                            " where device_id = 'w1' and steps = 25").fetchone() == (15, 15)
        assert conn.execute("select count(*) - count(distinct (device_id, time)) from stage.stg_steps"
                            ).fetchone() == (0,)
    # and the warehouse is what one run leaves: another run changes nothing
    after = snapshot(built)
    build(select=["tag:stage"], settings=built)
    assert snapshot(built) == after
