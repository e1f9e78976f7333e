"""`iot generate` end to end against the test server."""

from __future__ import annotations

from datetime import UTC, datetime

from click.testing import CliRunner

from iot_cli.main import cli


def test_backfill_then_stream_from_the_command_line(clean_mongo):
    db = clean_mongo
    runner = CliRunner()
    result = runner.invoke(cli, ["generate", "--backfill", "1", "--users", "2", "--sensors", "2", "--seed", "9",
                                 "--bad-rate", "0.02", "--chunk-size", "1000"])
    assert result.exit_code == 0, result.output
    assert "backfill done" in result.output
    assert db.users.count_documents({}) == 2 and db.devices.count_documents({}) == 6
    assert db.air_quality.count_documents({}) > 2 * 1440 * 0.97  # yesterday at least, one a minute
    assert db.steps.count_documents({}) >= 2 * 96 and db.heart_rates.count_documents({}) >= 2 * 5
    newest = max(int(d["_id"].rsplit(":", 1)[1]) for d in db.air_quality.find({}, {"_id": 1}))
    assert newest <= datetime.now(UTC).timestamp(), "nothing from the future"

    before = db.air_quality.count_documents({})
    result = runner.invoke(cli, ["generate", "--stream", "--speedup", "600", "--duration", "2", "--users", "2",
                                 "--sensors", "2", "--seed", "9", "--bad-rate", "0"])
    assert result.exit_code == 0, result.output
    assert "stream stopped" in result.output and "0 undelivered" in result.output
    assert db.air_quality.count_documents({}) > before  # the next simulated minutes arrived
    assert db.users.count_documents({}) == 2  # the registry is not written twice

    result = runner.invoke(cli, ["generate", "--users", "2"])
    assert result.exit_code != 0 and "--backfill" in result.output


def test_stream_exits_cleanly_on_sigterm(clean_mongo):
    """`make up` runs the stream in the background and stops it with SIGTERM."""
    import os
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "iot_cli.main", "generate", "--stream", "--speedup", "120",
                             "--users", "1", "--sensors", "1", "--bad-rate", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    deadline = time.monotonic() + 60
    while clean_mongo.devices.count_documents({}) < 3 and time.monotonic() < deadline:
        time.sleep(0.3)  # running: the registry has been written
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "stream stopped" in output and "0 undelivered" in output
    assert "wrote" in output  # a log line per flush
