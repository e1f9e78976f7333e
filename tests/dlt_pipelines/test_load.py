"""First load, incremental load with new and late documents, idempotent re-runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import factories as f

from dlt_pipelines import load_raw


def seed_registry(db, now):
    db.devices.insert_many([f.device("aq-1", ingested_at=now), f.device("aq-2", ingested_at=now),
                            f.device("w-1", kind="watch", owner="u-1", ingested_at=now)])
    db.users.insert_one(f.user("u-1", ["w-1"], ingested_at=now))


def test_first_load_lands_every_collection_typed(fresh, raw):
    now = f.ms(datetime.now(UTC))
    seed_registry(fresh, now)
    fresh.air_quality.insert_many([f.air_quality("aq-1", f.BASE + timedelta(minutes=i), now, i) for i in range(50)])
    fresh.heart_rates.insert_many([f.heart_rate("w-1", f.BASE + timedelta(hours=4 * i), 5, now) for i in range(3)])
    fresh.steps.insert_one(f.steps("w-1", f.BASE, now))
    fresh.sleeps.insert_one(f.sleep("w-1", f.BASE, now))

    result = load_raw()

    assert result["loaded"]["air_quality"] == 50
    assert result["loaded"]["heart_rates__metrics"] == 15
    assert raw("select count(*), count(distinct _id) from raw.air_quality") == [(50, 50)]
    assert raw("select iaq, temperature, co2, iaq_accuracy, ts from raw.air_quality where _id = %s",
               (f"aq:aq-1:{int(f.BASE.timestamp())}",)) == [(50.0, 21.5, 600.0, 3.0, f.BASE.isoformat())]
    assert raw("select count(*), sum(sample_count) from raw.heart_rates") == [(3, 15)]
    assert raw("select bpm, confidence from raw.heart_rates__metrics where idx = 2 order by _parent_id limit 1") \
        == [(62.0, 2.0)]
    assert raw("select count(*), sum(steps) from raw.steps__metrics") == [(15, 1050)]
    assert raw("select data_type from information_schema.columns where table_schema = 'raw'"
               " and table_name = 'steps__metrics' and column_name = 'steps'") == [("bigint",)]
    assert raw("select count(*) from pg_indexes where schemaname = 'raw' and indexname like '%%_ingested_idx'") \
        == [(7,)]
    assert raw("select duration from raw.sleeps__metrics") == [(25_800_000,)]
    assert raw("select devices from raw.users") == [(["w-1"],)]
    assert raw("select kind, lat, manufacturer_name, history->0->>'action' from raw.devices where _id = 'aq-1'") \
        == [("air_quality", 55.9, "Bosch", "INSTALLED")]
    assert raw("select count(*) from raw.quarantine") == [(0,)]
    assert raw("select count(*) from raw.air_quality where _dlt_load_id is null or _ingested_at is null") == [(0,)]


def test_incremental_loads_new_and_late_documents_and_rerun_changes_nothing(fresh, raw):
    now = f.ms(datetime.now(UTC))
    seed_registry(fresh, now)
    fresh.air_quality.insert_many([f.air_quality("aq-1", f.BASE + timedelta(minutes=i), now) for i in range(20)])
    load_raw()
    snapshot = raw("select _id, _dlt_load_id from raw.air_quality order by _id")

    # a re-run with nothing new changes nothing
    again = load_raw()
    assert again["documents"] == 0
    assert raw("select _id, _dlt_load_id from raw.air_quality order by _id") == snapshot

    # new readings, and a late one: old ts (a month ago) but ingested now
    later = f.ms(datetime.now(UTC))
    fresh.air_quality.insert_many([f.air_quality("aq-2", f.BASE + timedelta(minutes=i), later) for i in range(5)])
    fresh.air_quality.insert_one(f.air_quality("aq-1", f.BASE - timedelta(days=30), later))
    result = load_raw()
    assert result["loaded"]["air_quality"] == 6
    assert raw("select count(*), count(distinct _id) from raw.air_quality") == [(26, 26)]
    assert raw("select count(*) from raw.air_quality where ts = %s",
               ((f.BASE - timedelta(days=30)).isoformat(),)) == [(1,)]
    # the first batch was not touched by the second load
    assert raw("select _id, _dlt_load_id from raw.air_quality where devid = 'aq-1' and ts >= %s order by _id",
               (f.BASE.isoformat(),)) == snapshot


def test_an_idle_run_skips_dlt_and_the_next_run_starts_where_the_last_ended(fresh, raw, services):
    import shutil

    from dlt_pipelines.pipeline import PIPELINE_NAME

    now = f.ms(datetime.now(UTC))
    seed_registry(fresh, now)
    fresh.air_quality.insert_many([f.air_quality("aq-1", f.BASE + timedelta(minutes=i), now) for i in range(3)])
    load_raw()
    loads = raw("select count(*) from raw._dlt_loads")

    idle = load_raw()  # nothing new: no load package at all
    assert idle["load_ids"] == [] and idle["documents"] == 0
    assert raw("select count(*) from raw._dlt_loads") == loads

    # a fresh worker (no local dlt state): the progress is in the warehouse, so it is idle too
    shutil.rmtree(services.local_dir / "dlt" / PIPELINE_NAME)
    restored = load_raw()
    assert restored["load_ids"] == [] and restored["documents"] == 0 and restored["snapshots"] == []

    # documents written after the idle runs are read
    later = f.ms(datetime.now(UTC))
    fresh.air_quality.insert_one(f.air_quality("aq-2", f.BASE, later))
    assert load_raw()["loaded"]["air_quality"] == 1
    assert raw("select count(*), count(distinct _id) from raw.air_quality") == [(4, 4)]
