"""The app's database writes hold on SQLite in any host project, whatever its ``DATABASES``.

A stock ``startproject`` uses SQLite with deferred transactions, a rollback
journal and a 5 s busy timeout. Under concurrent sessions a deferred
transaction that reads and then writes fails at once with "database is
locked" (SQLite cannot wait there without risking a deadlock), so the app
does not rely on the host's settings:

- every new SQLite connection gets WAL (readers never block the writer) and a
  longer busy timeout, unless ``WS_GATEWAY["SQLITE_TUNING"]`` is off;
- each of the app's write units (:func:`write_unit`) runs in one
  ``BEGIN IMMEDIATE`` transaction, which takes the write lock up front where
  SQLite can wait for it, and is run again with backoff should SQLite still
  report the database locked or busy.

Other databases are left alone: there a write unit is a plain ``atomic()``.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from django.db import DEFAULT_DB_ALIAS, OperationalError, connections, transaction

from .conf import gateway_settings

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# Messages of SQLite's SQLITE_BUSY / SQLITE_LOCKED family.
_LOCKED = ("database is locked", "database table is locked", "database is busy")
_FIRST_BACKOFF_S = 0.01
_MAX_BACKOFF_S = 0.5


def tune_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created`` receiver: WAL and a busy timeout on each new SQLite connection."""
    if connection.vendor != "sqlite" or not gateway_settings.SQLITE_TUNING:
        return
    timeout_ms = int(gateway_settings.SQLITE_BUSY_TIMEOUT_S * 1000)
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        if cursor.fetchone()[0] < timeout_ms:
            cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
        if connection.is_in_memory_db():
            return
        cursor.execute("PRAGMA journal_mode")
        if cursor.fetchone()[0].lower() == "wal":
            return
        try:
            # Persistent in the file: done once, by the first connection that gets the lock.
            cursor.execute("PRAGMA journal_mode = WAL")
        except OperationalError as exc:
            log.warning("could not switch SQLite %s to WAL: %s", connection.settings_dict["NAME"], exc)


def is_locked(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and any(text in str(exc).lower() for text in _LOCKED)


@contextmanager
def immediate(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """``transaction.atomic()``; on SQLite an outermost one begins IMMEDIATE (takes the write lock)."""
    conn: Any = connections[using]  # SQLite's wrapper (transaction_mode)
    if conn.vendor != "sqlite" or conn.in_atomic_block:
        with transaction.atomic(using=using):
            yield
        return
    conn.ensure_connection()
    host_mode = conn.transaction_mode
    conn.transaction_mode = "IMMEDIATE"  # read by the BEGIN that atomic() issues; this thread only
    try:
        with transaction.atomic(using=using):
            conn.transaction_mode = host_mode
            yield
    finally:
        conn.transaction_mode = host_mode


def write_unit(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` as one immediate transaction, again with backoff while SQLite reports a lock.

    ``fn`` must only touch the database (it may run more than once). Inside a
    caller's transaction it just runs: only the outermost unit can be retried.
    """

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        conn = connections[DEFAULT_DB_ALIAS]
        if conn.vendor != "sqlite" or conn.in_atomic_block:
            with immediate():
                return fn(*args, **kwargs)
        deadline = time.monotonic() + gateway_settings.SQLITE_BUSY_TIMEOUT_S
        backoff = _FIRST_BACKOFF_S
        attempt = 1
        while True:
            try:
                with immediate():
                    return fn(*args, **kwargs)
            except OperationalError as exc:
                if not is_locked(exc) or time.monotonic() + backoff > deadline:
                    raise
                log.info("%s: %s (attempt %d), retrying", fn.__qualname__, exc, attempt)
            time.sleep(backoff * (0.5 + random.random()))  # jitter: lockstep retries collide again
            backoff = min(backoff * 2, _MAX_BACKOFF_S)
            attempt += 1

    return run
