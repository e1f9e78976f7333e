"""`iot transform`: build the warehouse layers (dbt stage / agg / curated) from raw."""

from __future__ import annotations

import click


@click.command("transform")
@click.option("--select", "-s", "select", multiple=True,
              help="dbt selection, e.g. tag:stage, tag:daily, +agg_user_daily (repeatable; default: everything).")
@click.option("--full-refresh", is_flag=True, help="Rebuild incremental models from scratch.")
@click.option("--validate/--no-validate", default=True, show_default=True,
              help="Run the Great Expectations checkpoint over the newest raw increment first.")
@click.option("--docs", is_flag=True, help="Also generate the dbt docs site (dbt_project/target/index.html).")
def command(select: tuple[str, ...], full_refresh: bool, validate: bool, docs: bool) -> None:
    """Validate the raw increment, then `dbt build` (models and their tests) on the selection.

    dbt prints one line per model and test as it goes; a failing model or test exits non-zero."""
    from dbt_project.runner import DbtFailure, build, run_dbt

    if validate:
        from quality import validate_raw_increment

        for table, outcome in validate_raw_increment().items():
            click.echo(f"validate raw.{table}: {outcome['rows']} rows, {outcome['failed_expectations']} failed "
                       f"expectations, {outcome['quarantined_rows']} rows quarantined")
    try:
        result = build(select=list(select), full_refresh=full_refresh)
    except DbtFailure as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"dbt build: {len(result.statuses)} nodes ok")
    if docs:
        res = run_dbt(["docs", "generate"])
        if not res.success:
            raise click.ClickException(f"dbt docs generate failed: {res.exception}")
        click.echo("docs written to dbt_project/target/index.html (serve: dbt docs serve --project-dir dbt_project)")
