"""Streaming survives its database going away: everything arrives, exactly once."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from gen_support import START

from generators import MARKER, MEASUREMENTS, REJECTED_COLLECTION, MongoWriter, build_fleet, documents, stream
from generators.catalog import SEND_DELAY_S
from iot_cli.localstack import mongo
from iot_cli.localstack.process import ManagedProcess, free_port, wait_until
from iot_core.connections import mongo_client, mongo_db

SIM_START = START + timedelta(days=1, hours=7)
SIM_HOURS = 3
WALL_SECONDS = 12


def _due(fleet, collection, bad_rate):
    """Documents whose send time falls in (SIM_START, SIM_END]."""
    delay = timedelta(seconds=SEND_DELAY_S[collection] - 1)
    return documents(fleet, collection, SIM_START - delay, SIM_START + timedelta(hours=SIM_HOURS) - delay,
                     bad_rate=bad_rate)


@pytest.fixture
def own_mongo(services, test_state_dir):
    """A MongoDB-protocol server of our own (we stop and restart it), on a free port."""
    # a bare server without users: its clients send no credentials
    settings = services.model_copy(update={"mongo_port": free_port(), "mongo_user": ""})
    state_dir = test_state_dir / "generator-stream"
    proc = ManagedProcess("mongo-generator-stream", state_dir)
    argv = mongo.server_argv(settings.mongo_port, state_dir / "data")
    (state_dir / "data").mkdir(parents=True, exist_ok=True)
    proc.start(argv)
    wait_until(lambda: mongo.healthy(settings), 60, "test MongoDB", log=proc.log_file)
    yield settings, proc, argv
    proc.stop()


def test_stream_through_a_server_restart_loses_and_duplicates_nothing(own_mongo):
    settings, proc, argv = own_mongo
    fleet = build_fleet(users=2, sensors=3, seed=5, anchor=START)
    client = mongo_client(settings, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000, socketTimeoutMS=3000)
    writer = MongoWriter(mongo_db(client, settings), chunk_size=200)
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("state", stream(
        writer, fleet, SIM_START, speedup=SIM_HOURS * 3600 / WALL_SECONDS, bad_rate=0.05,
        sim_end=SIM_START + timedelta(hours=SIM_HOURS), tick_s=0.2, max_backoff_s=2, drain_timeout_s=90)))
    runner.start()
    time.sleep(WALL_SECONDS / 3)
    proc.stop()  # the database goes away mid-stream ...
    time.sleep(4)
    proc.start(argv)  # ... and comes back on the same port with the same data directory
    wait_until(lambda: mongo.healthy(settings), 60, "restarted test MongoDB", log=proc.log_file)
    runner.join(timeout=180)
    assert not runner.is_alive()
    state = result["state"]
    assert state.failures > 0, "the outage was noticed (and buffered through)"
    assert state.buffered == 0

    db = mongo_db(client, settings)
    refused_expected = 0
    for collection in MEASUREMENTS:
        due = _due(fleet, collection, 0.05)
        first = {}
        for d in due:
            if d["_id"] in first:
                refused_expected += 1
            else:
                first[d["_id"]] = d
        stored = [d["_id"] for d in db[collection].find({}, {"_id": 1})]
        assert len(stored) == len(set(stored)) == len(first), collection
        assert set(stored) == set(first), collection
    assert db.air_quality.count_documents({}) > 3 * SIM_HOURS * 60 * 0.95
    rejected = list(db[REJECTED_COLLECTION].find())
    assert len(rejected) == refused_expected  # the deliberate duplicates, and no retry taken for one
    assert all(r["document"][MARKER] == "duplicate_id" for r in rejected)
    assert db.users.count_documents({}) == 2 and db.devices.count_documents({}) == 7
    client.close()


def test_an_idle_stream_logs_a_line_a_minute_not_a_second(services, caplog):
    """Nothing due (no measurement collections streamed): the stream flushed every tick and logged
    "wrote 0" each time, a line per second in logs/generator.log."""
    import logging

    client = mongo_client(services)
    writer = MongoWriter(mongo_db(client, services), chunk_size=200)
    fleet = build_fleet(users=1, sensors=1, seed=7, anchor=START)
    with caplog.at_level(logging.INFO, logger="generators.stream"):
        state = stream(writer, fleet, SIM_START, duration_s=3, tick_s=0.1, collections=())
    lines = [r.getMessage() for r in caplog.records if r.name == "generators.stream"]
    assert state.flushes >= 10
    assert len([m for m in lines if "idle" in m]) == 1, lines
    assert not [m for m in lines if "wrote 0 " in m], lines
    # the registry documents (users, devices) were written and said so, once
    assert len([m for m in lines if " wrote " in m]) == 1, lines
