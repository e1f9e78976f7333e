"""Counts the restarts supervisord makes: a supervisord event listener, and the reader of its counts.

supervisord reports every change of a process's state; a restart is a start that follows an exit
(``EXITED``) or a failed start (``BACKOFF``), never a start asked for by ``iot stack up``. Each one
is logged (``logs/restart-counter.log``) and counted in ``run/restarts.json`` (0600), which
``iot stack status`` shows. The counts start again from zero when supervisord starts.

Run by supervisord as ``python -m iot_cli.localstack.restarts STATE_DIR``: stdout belongs to the
event protocol, so the log goes to stderr.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

RESTART_FROM_STATES = frozenset({"EXITED", "BACKOFF"})


def counts_file(state_dir: Path) -> Path:
    return state_dir / "run" / "restarts.json"


def read_counts(state_dir: Path) -> dict[str, dict]:
    """Service -> ``{"restarts": n, "last_restart": iso, "last_exit": text}`` since the stack started."""
    try:
        return json.loads(counts_file(state_dir).read_text())
    except (OSError, ValueError):
        return {}


def restarts(state_dir: Path, service: str) -> int:
    return int(read_counts(state_dir).get(service, {}).get("restarts", 0))


def _write(path: Path, counts: dict) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(counts, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def record(counts: dict, event: str, fields: dict[str, str], now: str) -> str | None:
    """Apply one supervisord event to ``counts``; the log line to write, if any."""
    name = fields.get("processname", "")
    entry = counts.setdefault(name, {"restarts": 0})
    if event == "PROCESS_STATE_EXITED" and fields.get("expected") == "0":
        entry["last_exit"] = f"{now} pid {fields.get('pid')} exited unexpectedly"
        return f"{now} {name}: pid {fields.get('pid')} exited unexpectedly"
    if event == "PROCESS_STATE_BACKOFF":
        entry["last_exit"] = f"{now} failed to start (try {fields.get('tries')})"
        return f"{now} {name}: failed to start (try {fields.get('tries')}); supervisord backs off"
    if event == "PROCESS_STATE_FATAL":
        entry["last_exit"] = f"{now} given up after repeated failed starts"
        return f"{now} {name}: given up (FATAL) after repeated failed starts; `make up` starts it again"
    if event == "PROCESS_STATE_STARTING" and fields.get("from_state") in RESTART_FROM_STATES:
        entry["restarts"] += 1
        entry["last_restart"] = now
        return f"{now} {name}: restarting (restart {entry['restarts']} since the stack started)"
    return None


def main(state_dir: str) -> None:
    from supervisor import childutils

    path = counts_file(Path(state_dir))
    counts = read_counts(Path(state_dir))  # `iot stack up` removes the file before supervisord starts
    while True:
        headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        fields = childutils.get_headers(payload.split("\n", 1)[0])
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        line = record(counts, headers.get("eventname", ""), fields, now)
        if line:
            _write(path, counts)
            print(line, file=sys.stderr, flush=True)
        childutils.listener.ok(sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
