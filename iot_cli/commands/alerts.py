"""`iot alerts evaluate | list | ack | test`: the alert rules (docs/alerts.md)."""

from __future__ import annotations

import getpass
import logging
from datetime import UTC, datetime

import click

AT = click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"])


@click.group("alerts")
def command() -> None:
    """Alert rules: evaluate them, list and acknowledge alerts, check the rule file."""


def _rule_error(e: Exception) -> click.ClickException:
    return click.ClickException(str(e))


@command.command("evaluate")
@click.option("--at", "as_of", type=AT, default=None, help="evaluate as of this UTC time (default: now)")
@click.option("--rules", "rules_path", type=click.Path(dir_okay=False), default=None,
              help="rule file (default: ALERT_RULES_FILE or alerts/rules.yml)")
@click.option("--deliver/--no-deliver", default=True, show_default=True,
              help="send the notifications that are due after the pass")
def evaluate_cmd(as_of: datetime | None, rules_path: str | None, deliver: bool) -> None:
    """One evaluation pass over what is new (what the iot_alerts DAG runs), then delivery."""
    from alerts.delivery import deliver_due
    from alerts.evaluate import evaluate
    from alerts.measures import ContractUnavailable
    from alerts.rules import RuleError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        summary = evaluate(as_of.replace(tzinfo=UTC) if as_of else None, rules_path=rules_path)
    except (RuleError, ContractUnavailable, ValueError) as e:
        raise _rule_error(e) from e
    click.echo(f"{summary['as_of']:%Y-%m-%d %H:%M:%S} UTC: {summary['rules']} rules ({summary['rule_file']} "
               f"version {summary['file_version']}), {summary['observations']} observations, "
               f"transitions {summary['transitions'] or 'none'}, {summary['notifications']} notifications queued "
               f"({summary['seconds']} s)")
    for rule_id, r in summary["per_rule"].items():
        if r.get("skipped"):
            click.echo(f"  {rule_id}: skipped ({r['skipped']})")
    if deliver:
        counts = deliver_due()
        click.echo(f"delivery: {counts['delivered']} delivered, {counts['retry_later']} to retry, "
                   f"{counts['failed']} given up")


@command.command("list")
@click.option("--state", type=click.Choice(["open", "firing", "pending", "resolved", "all"]), default="open",
              show_default=True)
@click.option("--device", default=None)
@click.option("--rule", default=None)
@click.option("--limit", type=int, default=50, show_default=True)
def list_cmd(state: str, device: str | None, rule: str | None, limit: int) -> None:
    """Alerts, newest first."""
    import psycopg

    from alerts.store import list_alerts
    from iot_core.connections import pg_connect

    try:
        with pg_connect("transformer", autocommit=True) as conn:
            rows = list_alerts(conn, state, device, rule, limit=limit)
    except psycopg.errors.UndefinedTable:
        raise click.ClickException("no alerts yet: ops.alert_events does not exist (run `iot alerts evaluate`)") from None
    if not rows:
        click.echo(f"no {state} alerts")
        return
    for a in rows:
        ack = f"  [acked by {a['acked_by']}]" if a["acked_at"] else ""
        click.echo(f"#{a['id']:<6} {a['state']:<8} {a['severity']:<8} {a['rule_id']:<20} {a['device_id']:<14} "
                   f"since {a['started_at']:%Y-%m-%d %H:%M}  {a['message']}{ack}")


@command.command("ack")
@click.argument("alert_ids", type=int, nargs=-1, required=True)
@click.option("--by", default=None, help="who acknowledges (default: the login name)")
@click.option("--note", default=None)
def ack_cmd(alert_ids: tuple[int, ...], by: str | None, note: str | None) -> None:
    """Acknowledge alerts by id (shown by `iot alerts list`)."""
    from alerts.store import acknowledge
    from iot_core.connections import pg_connect

    with pg_connect("transformer") as conn:
        found = acknowledge(conn, list(alert_ids), by or getpass.getuser(), note)
        conn.commit()
    for alert_id, state in found:
        click.echo(f"#{alert_id} ({state}) acknowledged")
    missing = sorted(set(alert_ids) - {i for i, _ in found})
    if missing:
        raise click.ClickException(f"no alert with id {', '.join(map(str, missing))}")


@command.command("test")
@click.option("--rules", "rules_path", type=click.Path(dir_okay=False), default=None,
              help="rule file (default: ALERT_RULES_FILE or alerts/rules.yml)")
@click.option("--send/--no-send", default=True, show_default=True,
              help="POST a test alert to every receiver of ALERT_WEBHOOKS")
def test_cmd(rules_path: str | None, send: bool) -> None:
    """Check the rule file against the warehouse (measures, devices in each scope) and the receivers."""
    from alerts.delivery import receivers, send_sample
    from alerts.evaluate import load_checked_rules
    from alerts.measures import ContractUnavailable
    from alerts.rules import RuleError, format_duration
    from alerts.signals import scope_sql
    from iot_core.connections import pg_connect

    try:
        with pg_connect("transformer", autocommit=True) as conn:
            ruleset, units = load_checked_rules(conn, rules_path)
            click.echo(f"{ruleset.source}: {len(ruleset.rules)} rules, version {ruleset.version}")
            for r in ruleset.rules:
                scope, params = scope_sql(r, active_only=r.kind == "no_data")
                n = conn.execute(f"select count(*) from ({scope}) s", params).fetchone()[0]
                limit = "" if r.limit is None else f" limit {r.limit:g}"
                click.echo(f"  {r.id:<22} {r.kind:<9} {r.measure or 'any':<12}{limit:<14} for "
                           f"{format_duration(r.for_s):<5} {r.severity:<8} {n} devices ({r.scope.describe()})"
                           + ("" if r.enabled else "  [disabled]"))
                missing = sorted(set(r.scope.devices) - {d for (d,) in conn.execute(
                    "select device_id from stage.dim_devices where device_id = any(%s)", (list(r.scope.devices),))})
                if missing:
                    click.echo(f"    warning: not in the device registry: {', '.join(missing)}")
    except (RuleError, ContractUnavailable) as e:
        raise _rule_error(e) from e
    try:
        targets = receivers()
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    if not targets:
        click.echo("no receivers (ALERT_WEBHOOKS is empty): alerts are recorded in ops.alert_events only")
    elif send:
        for name, result in send_sample().items():
            click.echo(f"  receiver {name}: {result}")
    else:
        click.echo("receivers: " + ", ".join(f"{r.name} ({r.url})" for r in targets))
