"""`iot retention`: apply every warehouse layer's retention once and report the health of
TimescaleDB's background jobs (the same code as the daily iot_retention DAG)."""

from __future__ import annotations

import logging

import click


@click.command("retention")
def command() -> None:
    """Age out old rows per layer (RETENTION_RAW_DAYS, _STAGE_, _PREDICTIONS_, _AGG_; empty = keep):
    TimescaleDB policies for hypertables and continuous aggregates, batched deletes for plain
    tables. Records what it did in ops.retention_runs and new job failures in
    ops.timescaledb_job_errors."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from warehouse.job_health import record_job_errors
    from warehouse.retention import apply_retention

    actions = apply_retention(progress=True)
    deleted = sum(a.rows_deleted or 0 for a in actions)
    policies = sum(a.action.startswith("policy") for a in actions)
    click.echo(f"retention: {len(actions)} tables, {deleted} rows deleted, {policies} TimescaleDB policies checked")
    health = record_job_errors()
    click.echo(f"timescaledb jobs: {health.summary()}")
