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
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from django.db import DEFAULT_DB_ALIAS, OperationalError, connections, transaction

from . import pacing
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


def release(using: str = DEFAULT_DB_ALIAS) -> None:
    """Hand a pooled connection back after a unit of work (outside any transaction).

    Threads that live long and write now and then (a turn waiting for a person) would
    otherwise keep a connection of the pool for their whole life."""
    conn = connections[using]
    if conn.settings_dict.get("OPTIONS", {}).get("pool") and not conn.in_atomic_block:
        conn.close()


def write_unit(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` as one immediate transaction, again with backoff while SQLite reports a lock.

    ``fn`` must only touch the database (it may run more than once). Inside a
    caller's transaction it just runs: only the outermost unit can be retried.
    """

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        conn = connections[DEFAULT_DB_ALIAS]
        if conn.in_atomic_block:
            with immediate():
                return fn(*args, **kwargs)
        try:
            return _run_unit(fn, *args, **kwargs)
        finally:
            release()

    return run


def _run_unit(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """The outermost unit: one transaction; on SQLite again with backoff while locked."""
    if connections[DEFAULT_DB_ALIAS].vendor == "sqlite":
        return _retried(fn, *args, **kwargs)
    with immediate():
        return fn(*args, **kwargs)


def _retried(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """SQLite: run again with backoff while the database is reported locked or busy."""
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


class _Pending:
    """One thread's write unit waiting for a shared transaction."""

    __slots__ = ("call", "done", "error", "result")

    def __init__(self, call: Callable[[], Any]) -> None:
        self.call = call
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommit:
    """Group commit: the write units of many threads share one transaction.

    A thread that finds no commit running becomes the leader: it takes every
    unit queued so far and commits them together, while units arriving
    meanwhile queue for the next commit. Each caller still returns only after
    its own unit is committed (an acknowledged prompt is stored), but 50
    sessions writing at once cost two transactions, not fifty in a row on
    SQLite's single writer. Should the shared transaction fail, each unit is
    run again on its own, so one bad unit fails only its own caller.
    """

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._queue: list[_Pending] = []
        self._committing = False
        self.commits = 0  # transactions attempted (a shared one that fails is followed by single ones)

    def run(self, call: Callable[[], R]) -> R:
        if connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return call()  # inside the caller's (or a batch's) transaction already
        item = _Pending(call)
        with self._cv:
            self._queue.append(item)
            while not item.done:
                if self._committing:
                    self._cv.wait()
                    continue
                self._committing = True
                batch, self._queue = self._queue, []
                self._cv.release()
                try:
                    with pacing.urgent.running_now():  # callers wait on it: streams give way
                        self.commits += _commit(batch)
                finally:
                    for pending in batch:  # never leave a caller waiting on a unit that was lost
                        if not pending.done:
                            pending.error, pending.done = RuntimeError("the shared write was aborted"), True
                    self._cv.acquire()
                    self._committing = False
                    self._cv.notify_all()
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[no-any-return]


def _commit(batch: list[_Pending]) -> int:
    """Commit ``batch`` (one transaction, or one per unit if that fails); the transactions tried."""
    try:
        results = write_unit(_run_all)(batch)
    except Exception as exc:
        if len(batch) == 1:
            batch[0].error, batch[0].done = exc, True
            return 1
        log.info("a shared write of %d units failed (%s); running them one by one", len(batch), exc)
        return 1 + sum(_commit([item]) for item in batch)
    for item, result in zip(batch, results, strict=True):
        item.result, item.done = result, True
    return 1


# The statements of the shared transaction that runs on this thread, if any (see batched).
_shared = threading.local()
T = TypeVar("T")


def batched(flush: Callable[[list[T]], None]) -> Callable[[T], None]:
    """A write made together with the same write of the other units of a shared transaction.

    Inside a group commit, each call adds its item and ``flush(items)`` runs once, after
    every unit has run (in the order the writes were first used): fifty sessions' rows in one
    ``executemany``, one round trip on PostgreSQL instead of fifty. Anywhere else it runs at once.
    """

    def add(item: T) -> None:
        pending: dict[Any, list[Any]] | None = getattr(_shared, "pending", None)
        if pending is None:
            flush([item])
        else:
            pending.setdefault(flush, []).append(item)

    return add


def _run_all(batch: list[_Pending]) -> list[Any]:
    _shared.pending = {}
    try:
        results = [item.call() for item in batch]
        for flush, items in _shared.pending.items():
            flush(items)
        return results
    finally:
        _shared.pending = None


_group = GroupCommit()


def grouped(fn: Callable[P, R]) -> Callable[P, R]:
    """A :func:`write_unit` that may share its transaction with other threads' (group commit)."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return _group.run(functools.partial(fn, *args, **kwargs))

    return run
