"""``iot generate``: simulate devices into MongoDB, as history (``--backfill DAYS``) or live
(``--stream``)."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime, timedelta

import click


@click.command(name="generate")
@click.option("--backfill", "backfill_days", type=click.IntRange(min=0), default=None,
              help="Write DAYS whole days of history before today plus today so far, then exit.")
@click.option("--stream", "streaming", is_flag=True, help="Send readings in real time until stopped.")
@click.option("--speedup", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Simulated seconds per wall-clock second (stream).")
@click.option("--duration", type=click.FloatRange(min=0), default=None,
              help="Stop streaming after this many wall-clock seconds.")
@click.option("--users", type=click.IntRange(min=0), default=None, help="Wearable users [settings: GENERATOR_USERS].")
@click.option("--sensors", type=click.IntRange(min=0), default=None,
              help="Air-quality sensors [settings: GENERATOR_SENSORS].")
@click.option("--seed", type=int, default=None, help="Same seed, same documents [settings: GENERATOR_SEED].")
@click.option("--bad-rate", type=click.FloatRange(0, 1), default=None,
              help="Share of malformed documents [settings: GENERATOR_BAD_RATE].")
@click.option("--chunk-size", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--no-resume", is_flag=True, help="Backfill: rewrite everything instead of continuing.")
@click.option("--catch-up-hours", type=click.FloatRange(min=0), default=None,
              help="Stream: first write what the devices sent since the newest stored reading, at most this "
                   "many hours back (0: off) [settings: GENERATOR_CATCH_UP_HOURS].")
def command(backfill_days, streaming, speedup, duration, users, sensors, seed, bad_rate, chunk_size, no_resume,
            catch_up_hours):
    """Simulate wearables and air-quality sensors into MongoDB (see docs/generators.md)."""
    # streaming catches SIGTERM from the first moment (a stop during start-up still ends cleanly);
    # a backfill keeps the default handlers: interrupting it is safe, the next run resumes
    stop = threading.Event()
    signals = (signal.SIGTERM, signal.SIGINT) if streaming else ()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in signals}
    try:
        _run(stop, backfill_days, streaming, speedup, duration, users, sensors, seed, bad_rate, chunk_size,
             no_resume, catch_up_hours)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(stop, backfill_days, streaming, speedup, duration, users, sensors, seed, bad_rate, chunk_size, no_resume,
         catch_up_hours):
    from generators import MongoWriter, build_fleet, catch_up, stream
    from generators import backfill_days as run_backfill
    from iot_core.connections import mongo_client, mongo_db
    from iot_core.settings import get_settings

    if (backfill_days is None) == (not streaming):
        raise click.UsageError("choose exactly one of --backfill DAYS or --stream")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    users = settings.generator_users if users is None else users
    sensors = settings.generator_sensors if sensors is None else sensors
    seed = settings.generator_seed if seed is None else seed
    bad_rate = settings.generator_bad_rate if bad_rate is None else bad_rate
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)

    # a short server-selection timeout lets the stream notice an outage and buffer quickly
    client = mongo_client(settings, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000, socketTimeoutMS=20000)
    try:
        writer = MongoWriter(mongo_db(client, settings), chunk_size=chunk_size)
        if backfill_days is not None:
            fleet = build_fleet(users, sensors, seed, anchor=today - timedelta(days=backfill_days))
            stats = run_backfill(writer, fleet, backfill_days, now, bad_rate=bad_rate, resume=not no_resume)
            click.echo(f"backfill done: {stats.inserted} inserted, {stats.updated} updated, "
                       f"{stats.already_present} already present ({stats.kept} registry documents changed since by "
                       f"another writer kept), {stats.rejected} refused into rejected_writes "
                       f"({dict(sorted(stats.by_collection.items()))})")
            return
        fleet = build_fleet(users, sensors, seed, anchor=today)
        hours = settings.generator_catch_up_hours if catch_up_hours is None else catch_up_hours
        if hours > 0:  # after a stop (`make down`), what the devices sent meanwhile, so readings go on unbroken
            caught = catch_up(writer, fleet, now, timedelta(hours=hours), bad_rate=bad_rate, progress=False)
            if caught is not None:
                click.echo(f"caught up: {caught.inserted} inserted, {caught.updated} updated, "
                           f"{caught.already_present} already present")
        state = stream(writer, fleet, sim_start=now, speedup=speedup, bad_rate=bad_rate, duration_s=duration,
                       stop=stop, drain_timeout_s=15)
        click.echo(f"stream stopped at simulated {state.sim_now:%Y-%m-%d %H:%M:%S}Z: {state.stats.inserted} "
                   f"inserted, {state.stats.updated} updated, {state.stats.rejected} refused into rejected_writes, "
                   f"{state.buffered} undelivered")
    finally:
        client.close()
