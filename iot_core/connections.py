"""The one place that opens connections: MongoDB clients and PostgreSQL connections/engines.

Every component asks here instead of building URLs itself, so a change of host, port or
credentials in ``.env`` (or the environment) reaches all of them.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from iot_core.settings import Settings, get_settings

if TYPE_CHECKING:  # heavy imports stay lazy: DAG parsing and the CLI import this module
    import psycopg
    import sqlalchemy
    from pymongo import MongoClient
    from pymongo.database import Database


# ---------------------------------------------------------------- MongoDB
def mongo_uri(settings: Settings | None = None) -> str:
    s = settings or get_settings()
    auth = ""
    if s.mongo_user:
        auth = f"{quote_plus(s.mongo_user)}:{quote_plus(s.mongo_password.get_secret_value())}@"
    return f"mongodb://{auth}{s.mongo_host}:{s.mongo_port}/?directConnection=true"


def mongo_client(settings: Settings | None = None, **kwargs: Any) -> MongoClient:
    """A new MongoClient (tz-aware datetimes in UTC). The caller closes it."""
    from pymongo import MongoClient

    kwargs.setdefault("tz_aware", True)
    kwargs.setdefault("serverSelectionTimeoutMS", 5000)
    return MongoClient(mongo_uri(settings), **kwargs)


def mongo_db(client: MongoClient, settings: Settings | None = None) -> Database:
    return client[(settings or get_settings()).mongo_db]


# ---------------------------------------------------------------- PostgreSQL
def pg_conninfo(role: str = "superuser", database: str | None = None, settings: Settings | None = None) -> dict:
    """Keyword connection parameters for ``role`` (superuser, loader, transformer, analyst, api, airflow, mlflow)."""
    s = settings or get_settings()
    user, password = s.role_credentials(role)
    return {
        "host": s.pg_host,
        "port": s.pg_port,
        "user": user,
        "password": password,
        "dbname": database or s.warehouse_db,
    }


def pg_url(role: str = "superuser", database: str | None = None, driver: str = "postgresql+psycopg",
           settings: Settings | None = None) -> str:
    """An SQLAlchemy-style URL (``driver="postgresql"`` for plain libpq/dlt URLs)."""
    c = pg_conninfo(role, database, settings)
    return (f"{driver}://{quote_plus(c['user'])}:{quote_plus(c['password'])}"
            f"@{c['host']}:{c['port']}/{c['dbname']}")


def pg_connect(role: str = "superuser", database: str | None = None, autocommit: bool = False,
               settings: Settings | None = None) -> psycopg.Connection:
    """A new psycopg 3 connection. The caller closes it (use it as a context manager)."""
    import psycopg

    return psycopg.connect(**pg_conninfo(role, database, settings), autocommit=autocommit, connect_timeout=10)


@contextmanager
def pg_cursor(role: str = "superuser", database: str | None = None, settings: Settings | None = None):
    """Cursor in a transaction that commits on success and rolls back on error."""
    with pg_connect(role, database, settings=settings) as conn, conn.cursor() as cur:
        yield cur


def sqlalchemy_engine(role: str = "superuser", database: str | None = None,
                      settings: Settings | None = None, **kwargs: Any) -> sqlalchemy.Engine:
    import sqlalchemy

    kwargs.setdefault("pool_pre_ping", True)
    return sqlalchemy.create_engine(pg_url(role, database, settings=settings), **kwargs)
