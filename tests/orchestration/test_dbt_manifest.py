"""The dbt manifest the Cosmos DAGs render from: written before Airflow parses the DAG files,
once however many processes ask at the same time, and never seen half-written."""

from __future__ import annotations

import json
import subprocess
import threading

from iot_cli.localstack import airflow
from orchestration import dbt_tasks


def test_concurrent_callers_share_one_parse_and_read_a_whole_manifest(tmp_path, monkeypatch):
    manifest = tmp_path / "target" / "manifest.json"
    monkeypatch.setattr(dbt_tasks, "MANIFEST_PATH", manifest)
    parses = []
    real_run = subprocess.run

    def counting_run(args, **kwargs):
        if "parse" in args:
            parses.append(args)
        return real_run(args, **kwargs)

    monkeypatch.setattr(dbt_tasks.subprocess, "run", counting_run)
    results, errors = [], []

    def call():
        try:
            results.append(json.loads(dbt_tasks.ensure_manifest().read_text())["metadata"]["project_name"])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == ["iot_warehouse"] * 3
    assert len(parses) == 1, "the waiting callers must find the fresh manifest, not parse again"
    assert sorted(p.name for p in manifest.parent.iterdir()) == [".manifest.lock", "manifest.json"]


def test_the_stack_writes_the_manifest_before_airflow_starts(tmp_path):
    """On a fresh checkout under load, a DAG file running `dbt parse` hit Airflow's import timeout
    every time and the Cosmos DAGs (master, agg, curated) never appeared; `iot stack up` now
    prepares the manifest first."""
    if dbt_tasks.MANIFEST_PATH.exists():
        dbt_tasks.MANIFEST_PATH.touch()  # fresh: nothing to do, and nothing to break for other tests
    airflow.prepare_dbt_manifest(tmp_path / "log")
    assert dbt_tasks._manifest_fresh()
    assert json.loads(dbt_tasks.MANIFEST_PATH.read_text())["nodes"]
