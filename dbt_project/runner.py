"""Run dbt on this project with the connection settings of :mod:`iot_core.settings`.

``dbt_env()`` is the single place that turns settings into the ``DBT_*`` environment
``profiles.yml`` reads; the CLI (`iot transform`), the Airflow DAGs (cosmos) and the tests all
use it, so they run the same models against the same database with the same variables.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from iot_core.settings import Settings, get_settings

log = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parent
PROFILES_DIR = PROJECT_DIR
MANIFEST_PATH = PROJECT_DIR / "target" / "manifest.json"


def timescaledb_present(settings: Settings | None = None) -> bool:
    """True when the TimescaleDB extension is installed in the warehouse database."""
    from iot_core.connections import pg_connect

    with pg_connect("transformer", settings=settings, autocommit=True) as conn:
        return conn.execute("select 1 from pg_extension where extname = 'timescaledb'").fetchone() is not None


def dbt_executable() -> str:
    """The dbt script of the running interpreter's environment (the project venv)."""
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else (shutil.which("dbt") or "dbt")


def dbt_env(settings: Settings | None = None, timescaledb: bool | None = None) -> dict[str, str]:
    """Environment variables that profiles.yml and dbt_project.yml read."""
    s = settings or get_settings()
    user, password = s.role_credentials("transformer")
    if timescaledb is None:
        try:
            timescaledb = timescaledb_present(s)
        except Exception:  # noqa: BLE001 - parse-only use (no database) must still work
            log.warning("could not check for TimescaleDB; building plain PostgreSQL tables")
            timescaledb = False
    return {
        "DBT_PG_HOST": s.pg_host,
        "DBT_PG_PORT": str(s.pg_port),
        "DBT_PG_DBNAME": s.warehouse_db,
        "DBT_PG_USER": user,
        "DBT_ENV_SECRET_PG_PASSWORD": password,
        "DBT_DAY_TIMEZONE": s.day_timezone,
        "DBT_TIMESCALEDB": "true" if timescaledb else "false",
        "DBT_PROFILES_DIR": str(PROFILES_DIR),
        "DBT_PROJECT_DIR": str(PROJECT_DIR),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        # a model's tests only, not the relationship tests of its (maybe not yet built) children
        "DBT_INDIRECT_SELECTION": "cautious",
        # continuous aggregates are never refreshed over what stage retention drops (macros/timescale.sql)
        **{f"DBT_RETENTION_{layer.upper()}_DAYS": str(getattr(s, f"retention_{layer}_days") or "")
           for layer in ("stage", "agg")},
    }


@dataclass
class DbtResult:
    success: bool
    args: list[str]
    statuses: dict[str, str] = field(default_factory=dict)  # node unique_id -> status
    exception: str | None = None

    def failed_nodes(self) -> list[str]:
        return [n for n, st in self.statuses.items() if st not in ("success", "pass", "skipped", "warn", "no-op")]


def run_dbt(args: Sequence[str], settings: Settings | None = None, timescaledb: bool | None = None) -> DbtResult:
    """Run one dbt command in-process (``dbtRunner``) with the project's environment.

    Example: ``run_dbt(["build", "--select", "tag:stage"])``.
    """
    from dbt.cli.main import dbtRunner

    env = dbt_env(settings, timescaledb)
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    full_args = [*args, "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROFILES_DIR)]
    try:
        log.info("dbt %s", " ".join(args))
        res = dbtRunner().invoke(full_args)
    finally:
        for k, v in previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    statuses: dict[str, str] = {}
    results = getattr(res.result, "results", None) or []
    for r in results:
        node = getattr(r, "node", None)
        statuses[getattr(node, "unique_id", str(node))] = str(getattr(r.status, "value", r.status))
    return DbtResult(success=bool(res.success), args=list(args), statuses=statuses,
                     exception=repr(res.exception) if res.exception else None)


def build(select: Sequence[str] = (), full_refresh: bool = False, settings: Settings | None = None,
          command: str = "build") -> DbtResult:
    """``dbt build`` (models, then their tests) for the selection (all when empty);
    ``command="run"`` builds the models without testing them."""
    args = [command]
    if select:
        args += ["--select", *select]
    if full_refresh:
        args.append("--full-refresh")
    result = run_dbt(args, settings=settings)
    if not result.success:
        raise DbtFailure(result)
    return result


def parse(settings: Settings | None = None) -> Path:
    """``dbt parse``: writes target/manifest.json, which the Airflow DAGs render from."""
    result = run_dbt(["parse"], settings=settings)
    if not result.success:
        raise DbtFailure(result)
    return MANIFEST_PATH


class DbtFailure(RuntimeError):
    def __init__(self, result: DbtResult):
        self.result = result
        super().__init__(f"dbt {' '.join(result.args)} failed: {result.failed_nodes() or result.exception}")
