"""Every file in dags/ loads in Airflow's DagBag and follows the DAG conventions of DESIGN §5.

It runs against whatever DAG files exist, so a new DAG is checked the moment it lands.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from iot_core.settings import PROJECT_ROOT

DAGS_DIR = PROJECT_ROOT / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    # safe_mode=False: parse every module, not only those that mention "airflow" and "dag"
    return DagBag(dag_folder=str(DAGS_DIR), safe_mode=False)


def test_every_dag_file_imports_without_errors(dagbag):
    errors = "\n\n".join(f"{path}:\n{err}" for path, err in dagbag.import_errors.items())
    assert not dagbag.import_errors, f"DAG import errors:\n{errors}"


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_each_file_defines_the_dag_it_is_named_after(dagbag, dag_file: Path):
    # Airflow 3's dag.test() runs DAGs from the DAGs folder and tests find them by file name
    assert dag_file.stem in dagbag.dags, (
        f"{dag_file.name} defines {[d for d, dag in dagbag.dags.items() if Path(dag.fileloc) == dag_file]}, "
        f"expected a DAG with dag_id {dag_file.stem!r}")


def _dags(dagbag):
    assert dagbag.dags or not DAG_FILES, "no DAG loaded from dags/"
    return sorted(dagbag.dags.values(), key=lambda d: d.dag_id)


def test_every_dag_is_documented_and_tagged(dagbag):
    problems = []
    for dag in _dags(dagbag):
        if not dag.tags:
            problems.append(f"{dag.dag_id}: no tags")
        if not (dag.doc_md or dag.description):
            problems.append(f"{dag.dag_id}: no doc_md / docstring / description")
    assert not problems, "\n".join(problems)


def test_every_dag_retries_with_back_off_by_default(dagbag):
    # DAG-level defaults (orchestration.defaults.DEFAULT_ARGS); a task may still opt out on purpose,
    # e.g. pure bookkeeping that only reads an XCom
    problems = []
    for dag in _dags(dagbag):
        args = dag.default_args or {}
        if (args.get("retries") or 0) < 1:
            problems.append(f"{dag.dag_id}: default_args retries={args.get('retries')}")
        if not args.get("retry_exponential_backoff"):
            problems.append(f"{dag.dag_id}: default_args without retry_exponential_backoff")
    assert not problems, "\n".join(problems)


def test_every_task_has_an_owner_and_a_failure_callback(dagbag):
    problems = []
    for dag in _dags(dagbag):
        for task in dag.tasks:
            where = f"{dag.dag_id}.{task.task_id}"
            if task.owner in (None, "", "airflow"):
                problems.append(f"{where}: owner is {task.owner!r} (use orchestration.defaults.DEFAULT_ARGS)")
            if not task.on_failure_callback:
                problems.append(f"{where}: no on_failure_callback")
    assert not problems, "\n".join(problems)


# the hot path: what a fresh reading waits for (issue 16); every other DAG is batch work
HOT_PATH_DAGS = {"iot_raw_extract", "iot_stage_transform", "iot_forecast", "iot_alerts"}


def test_hot_path_tasks_have_their_own_pool_queue_and_go_first(dagbag):
    """Batch dbt tasks once filled every executor slot and the extract, stage and forecast waited
    3-5 minutes a run: each task must be in the pool (and Celery queue) of its kind, hot ones
    weighted far above batch ones (absolute weights, so a long batch chain does not add up)."""
    from orchestration.defaults import BATCH_POOL, BATCH_PRIORITY, HOT_POOL, HOT_PRIORITY

    problems = []
    for dag in _dags(dagbag):
        hot = dag.dag_id in HOT_PATH_DAGS
        expected = (HOT_POOL, HOT_POOL, HOT_PRIORITY) if hot else (BATCH_POOL, BATCH_POOL, BATCH_PRIORITY)
        for t in dag.tasks:
            got = (t.pool, t.queue, t.priority_weight)
            if not hot and got[:2] == expected[:2] and BATCH_PRIORITY <= t.priority_weight < HOT_PRIORITY:
                got = expected  # batch weights differ by schedule (batch_args), all below the hot path's
            if got != expected or str(getattr(t.weight_rule, "value", t.weight_rule)) != "absolute":
                problems.append(f"{dag.dag_id}.{t.task_id}: pool/queue/weight {got} {t.weight_rule}, expected {expected}")
    assert not problems, "\n".join(problems)
    assert HOT_PATH_DAGS - {"iot_alerts"} <= set(dagbag.dags)


def test_frequent_batch_work_is_queued_before_daily_and_weekly_work(dagbag):
    """A curated run (every 15 minutes) took 3-15 minutes for 2 models, queued behind training,
    export and agg tasks of the same weight: waiting batch tasks now go by how often their DAG runs."""
    def weight(dag_id):
        weights = {t.priority_weight for t in dagbag.dags[dag_id].tasks}
        assert len(weights) == 1, (dag_id, weights)
        return weights.pop()

    assert weight("iot_curated_transform") > weight("iot_master_dag") > weight("iot_agg_transform_daily")
    assert weight("iot_master_dag") > weight("iot_train_models") == weight("iot_export_csv")


def test_batch_tasks_yield_the_cpu_and_hot_tasks_do_not(dagbag):
    """Every batch task lowers its priority and its database sessions' (run_as_batch_work, or
    export_dbt_env which calls it); a hot task never does."""
    from orchestration.background import run_as_batch_work
    from orchestration.dbt_tasks import export_dbt_env

    problems = []
    for dag in _dags(dagbag):
        hot = dag.dag_id in HOT_PATH_DAGS
        for t in dag.tasks:
            callbacks = t.on_execute_callback or []
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            yields = any(c in (run_as_batch_work, export_dbt_env) for c in callbacks)
            if yields == hot:
                problems.append(f"{dag.dag_id}.{t.task_id}: on_execute_callback {callbacks} ({'hot' if hot else 'batch'})")
    assert not problems, "\n".join(problems)


def test_pools_leave_the_hot_path_a_slot_whatever_batch_work_waits(monkeypatch):
    from iot_core.settings import Settings
    from orchestration.pools import pool_specs

    specs = {p.name: p.slots for p in pool_specs(Settings(airflow_parallelism=6, airflow_batch_slots=3))}
    assert specs == {"hot": 3, "batch": 3}
    # a batch pool as large as the executor would let batch work take every slot again
    with pytest.raises(ValueError, match="AIRFLOW_BATCH_SLOTS"):
        pool_specs(Settings(airflow_parallelism=4, airflow_batch_slots=4))
