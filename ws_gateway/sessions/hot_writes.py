"""The transcript's hot writes as SQL built once, not compiled by the ORM on every call.

Every prompt stores its row before its turn starts, and every reply when it
ends; with 50 sessions at once those writes are most of a busy process's CPU.
Through the ORM, ``bulk_create`` of one row and the session row's update cost
~1.2 ms of CPU together (measured on SQLite, mostly query compilation); the
same statements built once from the models' fields cost ~0.15 ms, and in a group commit
every session's rows go in one ``executemany`` (see :func:`~ws_gateway.writes.batched`). Values still
go through each field's own ``get_db_prep_save`` (JSON, time zones), and the
statements are plain SQL that SQLite and PostgreSQL both take.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS, connections

from ..models import StoredSession, TranscriptMessage
from ..writes import batched

_ROW_FIELDS = [f for f in TranscriptMessage._meta.concrete_fields if not f.primary_key]
_LAST_ACTIVE = StoredSession._meta.get_field("last_active")


@functools.cache
def _insert_sql(vendor: str) -> str:
    q = connections[DEFAULT_DB_ALIAS].ops.quote_name
    columns = ", ".join(q(str(f.column)) for f in _ROW_FIELDS)
    marks = ", ".join(["%s"] * len(_ROW_FIELDS))
    return f"INSERT INTO {q(TranscriptMessage._meta.db_table)} ({columns}) VALUES ({marks})"


@functools.cache
def _update_sql(vendor: str) -> str:
    q = connections[DEFAULT_DB_ALIAS].ops.quote_name
    fields = {f.name: f for f in StoredSession._meta.concrete_fields}

    def col(name: str) -> str:
        return str(q(str(fields[name].column)))

    return (
        f"UPDATE {q(StoredSession._meta.db_table)} SET {col('message_count')} = %s, "
        f"{col('last_active')} = %s, "
        f"{col('preview')} = CASE WHEN {col('preview')} = '' THEN %s ELSE {col('preview')} END "
        f"WHERE {col('id')} = %s"
    )


def _insert(batches: list[list[TranscriptMessage]]) -> None:
    conn = connections[DEFAULT_DB_ALIAS]
    sql = _insert_sql(conn.vendor)
    rows = [row for rows in batches for row in rows]
    params = [[f.get_db_prep_save(f.pre_save(row, True), conn) for f in _ROW_FIELDS] for row in rows]
    with conn.cursor() as cursor:
        cursor.executemany(sql, params)


def _update(updates: list[tuple[str, int, datetime, str]]) -> None:
    conn = connections[DEFAULT_DB_ALIAS]
    sql = _update_sql(conn.vendor)
    params = [
        [count, _LAST_ACTIVE.get_db_prep_save(last_active, conn), preview, key]
        for key, count, last_active, preview in updates
    ]
    with conn.cursor() as cursor:
        cursor.executemany(sql, params)


_insert_batched = batched(_insert)
_update_batched = batched(_update)


def insert_rows(rows: Iterable[TranscriptMessage]) -> None:
    """INSERT transcript rows (unsaved instances), with the other sessions' of a group commit."""
    _insert_batched(list(rows))


def update_session(key: str, message_count: int, last_active: datetime, preview: str) -> None:
    """The session row after an append: its count, its activity, and ``preview`` if it had none
    (with the other sessions' of a group commit, after their rows)."""
    _update_batched((key, message_count, last_active, preview))
