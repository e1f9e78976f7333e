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
