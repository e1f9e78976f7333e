"""`iot extract [--collection NAME ...]`: load new MongoDB documents into the warehouse `raw` schema once.

The same load the Airflow DAG `iot_raw_extract` runs, outside Airflow, with a progress display.
"""

from __future__ import annotations

import json
import logging

import click

from dlt_pipelines.contract import COLLECTIONS


@click.command("extract")
@click.option("--collection", "collections", multiple=True, type=click.Choice(COLLECTIONS),
              help="Collection to load (repeatable); default: all of them.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show dlt's progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(collections: tuple[str, ...], progress: bool, as_json: bool) -> None:
    """Extract MongoDB -> raw (incremental on _ingested_at, merge on _id, bad documents quarantined)."""
    from dlt_pipelines import load_raw

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = load_raw(list(collections) or None, progress=progress)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"read {result['documents']} documents up to {result['window_end']}")
    for table, rows in sorted(result["loaded"].items()):
        click.echo(f"  raw.{table:<24} {rows:>10} rows")
    quarantined = sum(result["quarantined"].values())
    click.echo(f"  raw.{'quarantine':<24} {quarantined:>10} rows"
               + (f"  ({', '.join(f'{k}: {v}' for k, v in sorted(result['reasons'].items()))})" if quarantined else ""))
