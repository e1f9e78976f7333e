"""Health of TimescaleDB's background jobs (compression, retention, continuous-aggregate refresh).

A policy that keeps failing fails quietly: chunks stay uncompressed, old chunks stay, an
aggregate stops following its source. :func:`record_job_errors` copies the failures TimescaleDB
keeps in ``timescaledb_information.job_errors`` into ``ops.timescaledb_job_errors`` (one row per
failed execution, idempotent) and summarises the last 24 hours; ``make status`` shows that
summary as its ``timescaledb-jobs`` line, the daily ``iot_retention`` DAG records it too.

Known problem: TimescaleDB 2.28.3 on PostgreSQL 15.20 records every job execution as failed
with ``cannot drop portal "" while it is being set up`` although the job's work is committed
(seen on a hand-built 2.28.3; on PostgreSQL 15.18 the same build runs its jobs cleanly). The
summary names it, because the remedy is a version change, not a data fix (docs/warehouse.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from iot_core.connections import pg_connect
from iot_core.settings import Settings, get_settings

KNOWN_PROBLEMS = {
    "cannot drop portal": "known TimescaleDB 2.28.3 / PostgreSQL 15.20 problem (work is committed; "
                          "run PostgreSQL 15.18 or another tested pair: docs/warehouse.md)",
}
WINDOW_HOURS = 24

ERRORS_DDL = """
create table if not exists ops.timescaledb_job_errors (
    job_id       int         not null,
    proc_name    text,
    relation     text,
    start_time   timestamptz not null,
    finish_time  timestamptz,
    sqlerrcode   text,
    err_message  text,
    recorded_at  timestamptz not null default now(),
    primary key (job_id, start_time)
);
comment on table ops.timescaledb_job_errors is
    'Failed executions of TimescaleDB background jobs (policies), copied from timescaledb_information.job_errors'
"""

# finished (or crashed) executions only: a job still running is listed there too, without a message
RECORD_SQL = """
insert into ops.timescaledb_job_errors (job_id, proc_name, relation, start_time, finish_time, sqlerrcode, err_message)
select e.job_id, e.proc_name,
       coalesce(c.view_schema || '.' || c.view_name, j.hypertable_schema || '.' || j.hypertable_name),
       e.start_time, e.finish_time, e.sqlerrcode, e.err_message
from timescaledb_information.job_errors as e
left join timescaledb_information.jobs as j on j.job_id = e.job_id
left join timescaledb_information.continuous_aggregates as c
  on c.materialization_hypertable_schema = j.hypertable_schema
 and c.materialization_hypertable_name = j.hypertable_name
where e.start_time is not null and (e.finish_time is not null or e.pid is null)
on conflict (job_id, start_time) do nothing
"""


@dataclass
class JobHealth:
    timescaledb: bool
    version: str = ""
    jobs: int = 0
    recorded: int = 0                  # failures newly copied into ops by this call
    failures: int = 0                  # failed executions in the last WINDOW_HOURS
    failing_jobs: tuple[str, ...] = ()  # "job_id proc_name relation"
    last_error: str | None = None
    known_problem: str | None = None

    @property
    def healthy(self) -> bool:
        return not self.timescaledb or self.failures == 0

    def summary(self) -> str:
        if not self.timescaledb:
            return "plain PostgreSQL: no TimescaleDB jobs (retention by the iot_retention DAG)"
        head = f"TimescaleDB {self.version}, {self.jobs} jobs"
        if self.healthy:
            return f"{head}, no failures in {WINDOW_HOURS} h"
        text = (f"{head}, {self.failures} failed runs in {WINDOW_HOURS} h of {', '.join(self.failing_jobs)}; "
                f"last: {self.last_error}")
        return f"{text} [{self.known_problem}]" if self.known_problem else text


def known_problem(message: str | None) -> str | None:
    """The explanation of a known version problem the error message shows, if any."""
    return next((text for needle, text in KNOWN_PROBLEMS.items() if message and needle in message), None)


def record_job_errors(settings: Settings | None = None) -> JobHealth:
    """Copy new job failures into ops and summarise the last 24 hours (as the transformer, which
    owns the policies; job_errors shows a role its own jobs)."""
    s = settings or get_settings()
    with pg_connect("transformer", settings=s, autocommit=True) as conn:
        version = conn.execute("select extversion from pg_extension where extname = 'timescaledb'").fetchone()
        if version is None:
            return JobHealth(timescaledb=False)
        conn.execute(ERRORS_DDL)
        recorded = conn.execute(RECORD_SQL).rowcount
        jobs = conn.execute("select count(*) from timescaledb_information.jobs where job_id >= 1000").fetchone()[0]
        rows = conn.execute(
            "select job_id, proc_name, relation, count(*), max(start_time) from ops.timescaledb_job_errors "
            "where start_time > now() - make_interval(hours => %s) group by 1, 2, 3 order by 5 desc",
            (WINDOW_HOURS,)).fetchall()
        last = conn.execute("select err_message from ops.timescaledb_job_errors "
                            "where start_time > now() - make_interval(hours => %s) "
                            "order by start_time desc limit 1", (WINDOW_HOURS,)).fetchone()
        server = conn.execute("show server_version").fetchone()[0]
    last_error = last[0] if last else None
    return JobHealth(timescaledb=True, version=f"{version[0]} on PostgreSQL {server.split()[0]}", jobs=jobs,
                     recorded=recorded, failures=sum(r[3] for r in rows),
                     failing_jobs=tuple(f"{r[0]} {r[1]} {r[2] or ''}".strip() for r in rows),
                     last_error=last_error, known_problem=known_problem(last_error))
