"""Child process of the trip benchmark: run one tool, timing its start-up and its job separately.

``python -m benchmarks.trips._timed RESULT.json seed|project ARGS...``

The parent starts this process and measures it from outside (wall, CPU and peak RSS of the whole
process, i.e. what a user waits for). Inside, the tool's imports run first; the job itself (the
seed's script body, or the ``iot trips`` command) is then timed on its own:

- ``seed``: imports what the seed script imports (pandas, pyarrow, and the pyarrow modules its reads
  import lazily), then runs the script's own file with ``runpy`` under its command line: its code,
  unchanged, in this interpreter.
- ``project``: imports the ``iot trips`` click command, DuckDB, tqdm and the settings module
  (pydantic-settings, which the command's option defaults read), then calls the command in-process.

``startup_s`` is the time from the parent's launch (``BENCH_LAUNCHED_AT``, epoch seconds) to the start
of the job: interpreter start-up plus imports.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> int:
    result_path, tool, *args = argv
    if tool == "seed":
        # The seed's imports, and the modules its first reads import lazily (measured: pyarrow.dataset
        # and pandas_compat behind pq.read_table().to_pandas()): start-up, not job.
        import argparse  # noqa: F401
        import concurrent.futures  # noqa: F401
        import runpy

        import pandas  # noqa: F401
        import pyarrow.dataset  # noqa: F401
        import pyarrow.pandas_compat  # noqa: F401
        import pyarrow.parquet  # noqa: F401

        script = args[0]

        def job() -> None:
            sys.argv = [script, *args[1:]]
            runpy.run_path(script, run_name="__main__")
    elif tool == "project":
        # imported lazily by the job: count them as start-up, as for the seed
        import concurrent.futures  # noqa: F401

        import duckdb  # noqa: F401
        import tqdm  # noqa: F401

        import iot_core.settings  # noqa: F401  (pydantic-settings: read by the command's option defaults)
        from iot_cli.commands.trips import command

        def job() -> None:
            command.main(args, prog_name="iot trips", standalone_mode=False)
    else:
        raise SystemExit(f"unknown tool {tool!r}")

    launched = float(os.environ.get("BENCH_LAUNCHED_AT", "nan"))
    startup = time.time() - launched
    startup_cpu = _cpu_s()
    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, wall0 = _cpu_s(), time.perf_counter()
    job()
    wall, cpu = time.perf_counter() - wall0, _cpu_s() - cpu0
    after = resource.getrusage(resource.RUSAGE_SELF)
    with open(result_path, "w") as out:
        json.dump({"startup_s": round(startup, 3), "startup_cpu_s": round(startup_cpu, 3),
                   "job_wall_s": round(wall, 3), "job_cpu_s": round(cpu, 3),
                   # where wall time beyond CPU time goes: blocks read from disk (not the page cache),
                   # waits of the job's own (I/O, locks), and preemptions by other processes
                   "job_disk_blocks_read": after.ru_inblock - before.ru_inblock,
                   "job_voluntary_switches": after.ru_nvcsw - before.ru_nvcsw,
                   "job_involuntary_switches": after.ru_nivcsw - before.ru_nivcsw}, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
