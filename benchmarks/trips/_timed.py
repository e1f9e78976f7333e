"""Child process of the trip benchmark: run one tool, timing its start-up and its job separately.

``python -m benchmarks.trips._timed RESULT.json seed|seed-s3|project ARGS...``

The parent starts this process and measures it from outside (wall, CPU and peak RSS of the whole
process, i.e. what a user waits for). Inside, the tool's imports run first; the job itself (the
seed's script body, or the ``iot trips`` command) is then timed on its own:

- ``seed``: imports what the seed script imports (pandas, pyarrow, and the pyarrow modules its reads
  import lazily), then runs the script's own file with ``runpy`` under its command line: its code,
  unchanged, in this interpreter.
- ``seed-s3``: the same, with the script's file-system calls on ``s3://`` paths routed to pyarrow's
  S3 filesystem (``BENCH_S3_ENDPOINT``), so that it reads an S3 lake as its user would (its code unchanged).
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


def _route_seed_to_s3(endpoint: str) -> None:
    """Send the seed's file-system calls on s3:// paths to pyarrow's S3 filesystem (other paths unchanged)."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    scheme, _, host = endpoint.partition("://")
    fs = pafs.S3FileSystem(endpoint_override=host, scheme=scheme,
                           region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))

    def s3(path) -> str | None:
        path = os.fspath(path)
        return path[len("s3://"):] if path.startswith("s3://") else None

    listdir, exists, makedirs = os.listdir, os.path.exists, os.makedirs
    read_table, write_table = pq.read_table, pq.write_table

    def s3_listdir(path="."):
        if (key := s3(path)) is None:
            return listdir(path)
        return [info.base_name for info in fs.get_file_info(pafs.FileSelector(key))]

    def s3_exists(path):
        if (key := s3(path)) is None:
            return exists(path)
        return fs.get_file_info(key).type != pafs.FileType.NotFound

    def s3_makedirs(path, *a, **k):
        if s3(path) is None:
            makedirs(path, *a, **k)   # S3 has no folders to make

    def s3_read_table(source, *a, **k):
        if (key := s3(source)) is None:
            return read_table(source, *a, **k)
        return read_table(key, *a, filesystem=fs, **k)

    def s3_write_table(table, where, *a, **k):
        if (key := s3(where)) is None:
            return write_table(table, where, *a, **k)
        return write_table(table, key, *a, filesystem=fs, **k)

    os.listdir, os.path.exists, os.makedirs = s3_listdir, s3_exists, s3_makedirs
    pq.read_table, pq.write_table = s3_read_table, s3_write_table


def _peak_rss_mb() -> float:
    """This process's peak resident memory since its exec (VmHWM). ru_maxrss would also count the parent's
    memory at the spawn: the child of a vfork shares it until exec(), which folds its high-water mark in."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


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
    elif tool == "seed-s3":
        # The seed's script, unchanged, reading and writing an S3 lake (--lake s3://bucket/prefix) through
        # pyarrow's S3 filesystem: the five file-system calls it makes are routed to S3 for s3:// paths
        # (os.listdir, os.path.exists, os.makedirs, pq.read_table, pq.write_table); its code is not touched.
        import runpy

        import pandas  # noqa: F401
        import pyarrow.dataset  # noqa: F401
        import pyarrow.pandas_compat  # noqa: F401

        _route_seed_to_s3(os.environ["BENCH_S3_ENDPOINT"])
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
                   "peak_rss_mb": _peak_rss_mb(),
                   "job_wall_s": round(wall, 3), "job_cpu_s": round(cpu, 3),
                   # where wall time beyond CPU time goes: blocks read from disk (not the page cache),
                   # waits of the job's own (I/O, locks), and preemptions by other processes
                   "job_disk_blocks_read": after.ru_inblock - before.ru_inblock,
                   "job_voluntary_switches": after.ru_nvcsw - before.ru_nvcsw,
                   "job_involuntary_switches": after.ru_nivcsw - before.ru_nivcsw}, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
