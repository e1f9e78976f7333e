"""The extract's progress, kept in the warehouse beside the rows it covers.

``raw._capture_state`` holds, per collection, the change-stream token the next run reads from
(null: the next run takes a snapshot) and the count of consecutive failed loads. A run commits,
in one transaction and only after dlt has loaded its rows: the clean-up of rows its documents
replace (:func:`settle_replaced_rows`), the source deletes it saw, and the new tokens. The
warehouse database commits synchronously (warehouse/init), so a crash of PostgreSQL or of the
loader at any point leaves either the old token (the changes are read again and merged again:
harmless) or the new token with every row it covers.

``raw.source_deletes`` records documents deleted at the source (by a TTL index, an application,
or an erasure) with the time of the deletion. Warehouse history is never deleted because the
source deleted something.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from psycopg import sql

from dlt_pipelines import tables

SCHEMA = "raw"
STATE_TABLE = "_capture_state"
DELETES_TABLE = "source_deletes"

_DDL = f"""
create table if not exists {SCHEMA}.{STATE_TABLE} (
    collection      text primary key,
    resume_token    jsonb,
    snapshot_at     timestamptz,
    captured_until  timestamptz,
    failures        integer not null default 0,
    last_error      text,
    updated_at      timestamptz not null default now()
);
comment on table {SCHEMA}.{STATE_TABLE} is
    'Change capture progress per MongoDB collection: the resume token of the next extract (null: take a snapshot), written with the rows it covers (docs/extract.md)';
create table if not exists {SCHEMA}.{DELETES_TABLE} (
    collection      text not null,
    source_id       text not null,
    deleted_at      timestamptz not null,
    _ingested_at    timestamptz not null,
    primary key (collection, source_id, deleted_at)
);
comment on table {SCHEMA}.{DELETES_TABLE} is
    'Documents deleted at the source (TTL, applications, erasure); the warehouse keeps their history';
"""


@dataclass
class CaptureState:
    collection: str
    resume_token: dict | None = None
    failures: int = 0
    last_error: str | None = None


def ensure_tables(conn) -> None:
    conn.execute(_DDL)


def load_states(conn, collections) -> dict[str, CaptureState]:
    rows = conn.execute(
        sql.SQL("select collection, resume_token, failures, last_error from {}.{} where collection = any(%s)")
        .format(sql.Identifier(SCHEMA), sql.Identifier(STATE_TABLE)), (list(collections),)).fetchall()
    states = {c: CaptureState(c) for c in collections}
    for collection, token, failures, last_error in rows:
        states[collection] = CaptureState(collection, token, failures, last_error)
    return states


@dataclass
class Progress:
    """What a collection's read of this run commits."""

    collection: str
    token: dict | None
    captured_until: datetime | None = None
    snapshot_at: datetime | None = None
    deletes: dict[str, datetime] | None = None
    changed_ids: list[str] | None = None  # documents re-read from the change stream (None: snapshot)
    load_id: str | None = None
    captured_at: datetime | None = None  # capture time of the deletes
    more: bool = False  # the read stopped at a limit: more changes are waiting


def settle_replaced_rows(conn, p: Progress) -> None:
    """Rows the new versions of this run's documents replace: a bucket's items it no longer has, the
    quarantine row of a document that now loads, and the raw row (and items) of a document whose
    new version is quarantined (the source's current state is bad: an outdated good version must
    not stay current, e.g. the consent of a user). Rows of documents this run did not read are
    never touched, so a document deleted at the source keeps its history."""
    if p.load_id is None or p.collection not in tables.PARENT_SCHEMAS:
        return
    parent = sql.Identifier(SCHEMA, p.collection)
    quarantine = sql.Identifier(SCHEMA, tables.QUARANTINE)
    child = sql.Identifier(SCHEMA, tables.child_table(p.collection)) if p.collection in tables.CHILD_SCHEMAS else None
    if p.changed_ids is not None:
        if not p.changed_ids:
            return
        ids = p.changed_ids
        # documents of this run that did not load (quarantined) lose their outdated raw rows
        if child is not None:
            conn.execute(sql.SQL("delete from {} where _parent_id = any(%s) and _dlt_load_id <> %s")
                         .format(child), (ids, p.load_id))
        conn.execute(sql.SQL("delete from {} where _id = any(%s) and _dlt_load_id <> %s").format(parent),
                     (ids, p.load_id))
        conn.execute(sql.SQL("delete from {} where collection = %s and source_id = any(%s) and _dlt_load_id <> %s")
                     .format(quarantine), (p.collection, ids, p.load_id))
        return
    # a snapshot read every document of the collection: the same, by load id
    if child is not None:
        conn.execute(sql.SQL("""
            delete from {child} c using {parent} p
            where c._parent_id = p._id and p._dlt_load_id = %(load)s and c._dlt_load_id <> %(load)s""")
                     .format(child=child, parent=parent), {"load": p.load_id})
        conn.execute(sql.SQL("""
            delete from {child} c using {quarantine} q
            where q.collection = %(coll)s and q._dlt_load_id = %(load)s and c._parent_id = q.source_id""")
                     .format(child=child, quarantine=quarantine), {"load": p.load_id, "coll": p.collection})
    conn.execute(sql.SQL("""
        delete from {parent} p using {quarantine} q
        where q.collection = %(coll)s and q._dlt_load_id = %(load)s and p._id = q.source_id""")
                 .format(parent=parent, quarantine=quarantine), {"load": p.load_id, "coll": p.collection})
    conn.execute(sql.SQL("""
        delete from {quarantine} q using {parent} p
        where q.collection = %(coll)s and p._dlt_load_id = %(load)s and q.source_id = p._id
          and q._dlt_load_id <> %(load)s""")
                 .format(parent=parent, quarantine=quarantine), {"load": p.load_id, "coll": p.collection})


def record_deletes(conn, p: Progress) -> None:
    """The source deletes of documents the warehouse holds (raw or quarantine). Deletes of documents
    it never held (an erased user's, one deleted before it was ever loaded) say nothing about its
    history, and their ids would be personal data kept for nothing."""
    ids, times = zip(*p.deletes.items(), strict=True)
    held = [sql.SQL("exists (select 1 from {} q where q.collection = %(coll)s and q.source_id = d.source_id)")
            .format(sql.Identifier(SCHEMA, tables.QUARANTINE))]
    if p.collection in tables.PARENT_SCHEMAS:
        held.append(sql.SQL("exists (select 1 from {} r where r._id = d.source_id)")
                    .format(sql.Identifier(SCHEMA, p.collection)))
    conn.execute(sql.SQL("""
        insert into {deletes} (collection, source_id, deleted_at, _ingested_at)
        select %(coll)s, d.source_id, d.deleted_at, d.deleted_at
        from unnest(%(ids)s::text[], %(times)s::timestamptz[]) as d(source_id, deleted_at)
        where {held}
        on conflict do nothing""").format(deletes=sql.Identifier(SCHEMA, DELETES_TABLE),
                                          held=sql.SQL(" or ").join(held)),
        {"coll": p.collection, "ids": list(ids), "times": list(times)})


def commit(conn, progress: list[Progress]) -> None:
    """Replaced rows, source deletes and tokens of a run, in one transaction (``conn`` not in autocommit)."""
    with conn.transaction():
        for p in progress:
            settle_replaced_rows(conn, p)
            if p.deletes:
                record_deletes(conn, p)
            conn.execute(sql.SQL("""
                insert into {} as s (collection, resume_token, snapshot_at, captured_until, failures, last_error, updated_at)
                values (%(collection)s, %(token)s, %(snapshot_at)s, %(until)s, 0, null, now())
                on conflict (collection) do update set
                    resume_token = excluded.resume_token,
                    snapshot_at = coalesce(excluded.snapshot_at, s.snapshot_at),
                    captured_until = coalesce(excluded.captured_until, s.captured_until),
                    failures = 0, last_error = null, updated_at = now()
            """).format(sql.Identifier(SCHEMA, STATE_TABLE)),
                {"collection": p.collection, "token": json.dumps(p.token) if p.token is not None else None,
                 "snapshot_at": p.snapshot_at, "until": p.captured_until})


def record_failure(conn, collections, error: str) -> None:
    """One more failed load for ``collections`` (the token stays: the next run reads the same changes)."""
    with conn.transaction():
        for collection in collections:
            conn.execute(sql.SQL("""
                insert into {} as s (collection, failures, last_error, updated_at) values (%s, 1, %s, now())
                on conflict (collection) do update set failures = s.failures + 1, last_error = excluded.last_error,
                                                       updated_at = now()
            """).format(sql.Identifier(SCHEMA, STATE_TABLE)), (collection, error[:4000]))


# A quiet collection's token is rewritten at most this often (an idle run writes nothing else).
TOKEN_REFRESH_SECONDS = 600


def refresh_tokens(conn, tokens: dict[str, dict]) -> None:
    """Newer tokens of collections without changes (the server's position moved past other
    collections' changes): kept so that resuming never needs history the server has pruned."""
    with conn.transaction():
        for collection, token in tokens.items():
            conn.execute(sql.SQL("""
                update {} set resume_token = %s, updated_at = now()
                where collection = %s and resume_token is not null
                  and updated_at < now() - make_interval(secs => %s)
            """).format(sql.Identifier(SCHEMA, STATE_TABLE)), (json.dumps(token), collection, TOKEN_REFRESH_SECONDS))
