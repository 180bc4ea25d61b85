"""The app's write units on SQLite: retried while locked, immediate, and the system check."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import IntegrityError, OperationalError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from tests.helpers import wait_until
from ws_gateway.checks import sqlite_warnings
from ws_gateway.models import ClientConfig
from ws_gateway.writes import GroupCommit, batched, immediate, write_unit

pytestmark = pytest.mark.django_db(transaction=True)

SQLITE = "django.db.backends.sqlite3"


def flaky(failures: list[Exception]):
    """A write unit that raises each of ``failures`` in turn, then succeeds; counts its runs."""
    runs = []

    @write_unit
    def unit() -> str:
        runs.append(connection.in_atomic_block)
        if failures:
            raise failures.pop(0)
        return "done"

    return unit, runs


def test_a_locked_database_is_retried_until_the_unit_succeeds():
    unit, runs = flaky([OperationalError("database is locked"), OperationalError("database is locked")])
    assert unit() == "done"
    assert runs == [True, True, True]  # three runs, each inside its own transaction


def test_other_database_errors_are_not_retried():
    unit, runs = flaky([OperationalError("no such table: nope")])
    with pytest.raises(OperationalError, match="no such table"):
        unit()
    assert len(runs) == 1


def test_immediate_begins_an_immediate_transaction_and_restores_the_host_mode():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only: other databases run a plain atomic()")
    connection.ensure_connection()
    host_mode = connection.transaction_mode
    with CaptureQueriesContext(connection) as queries, immediate(), immediate():
        pass  # the nested one is a savepoint, not a second BEGIN
    assert [q["sql"] for q in queries.captured_queries if q["sql"].startswith("BEGIN")] == ["BEGIN IMMEDIATE"]
    assert connection.transaction_mode == host_mode
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        pass  # the host's own transactions keep the host's mode
    assert queries.captured_queries[0]["sql"] == "BEGIN" + (f" {host_mode}" if host_mode else "")


def test_the_check_recommends_immediate_transactions_and_wal():
    stock = {"default": {"ENGINE": SQLITE, "NAME": "db.sqlite3"}}
    assert [w.id for w in sqlite_warnings(stock, tuning=True)] == ["ws_gateway.W101"]
    assert [w.id for w in sqlite_warnings(stock, tuning=False)] == ["ws_gateway.W101", "ws_gateway.W102"]
    tuned = {
        "default": {
            "ENGINE": SQLITE,
            "NAME": "db.sqlite3",
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode = WAL;"},
        },
        "pg": {"ENGINE": "django.db.backends.postgresql", "NAME": "x"},
    }
    assert sqlite_warnings(tuned, tuning=False) == []


def queued_behind_a_commit(
    group: GroupCommit, first: Callable[[], Any], units: dict[str, Callable[[], Any]]
) -> dict[str, object]:
    """Run ``first`` as the leader of a commit that waits until every unit has queued behind it,
    then let it go; each caller's result (or exception) by name (``first`` for the leader)."""
    held, release = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def lead() -> Any:
        value = first()
        held.set()
        assert release.wait(30)
        return value

    def call(name: str, fn: Callable[[], Any]) -> None:
        try:
            results[name] = group.run(fn)
        except Exception as exc:
            results[name] = exc
        finally:
            connections.close_all()

    leader = threading.Thread(target=call, args=("first", lead))
    leader.start()
    assert held.wait(30)
    threads = [threading.Thread(target=call, args=(name, fn)) for name, fn in units.items()]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(group._queue) == len(units))  # all queued behind the running commit
    release.set()
    for thread in [leader, *threads]:
        thread.join(30)
    return results


def test_group_commit_shares_one_transaction_and_isolates_a_failing_unit():
    """Units that queue while a commit runs are committed together; a bad one fails only its caller."""
    group = GroupCommit()

    def first() -> str:
        ClientConfig.objects.create(owner_key="first")
        return "first"

    def unit(name: str) -> str:
        if name == "bad":
            ClientConfig.objects.create(owner_key="first")  # unique: fails inside the shared commit
        ClientConfig.objects.create(owner_key=name)
        return name

    names = [f"u{i}" for i in range(8)] + ["bad"]
    results = queued_behind_a_commit(group, first, {n: (lambda n=n: unit(n)) for n in names})
    assert results["first"] == "first"
    assert all(results[n] == n for n in names[:-1])
    assert isinstance(results["bad"], IntegrityError)
    stored = set(ClientConfig.objects.values_list("owner_key", flat=True))
    assert stored == {"first", *names[:-1]}
    # The queued units went as one shared transaction that failed on "bad", then one by one.
    assert group.commits == 1 + 1 + len(names)


def test_batched_writes_of_a_shared_transaction_are_made_together_and_a_bad_one_fails_alone():
    flushed: list[list[str]] = []

    def flush(names: list[str]) -> None:
        flushed.append(list(names))
        ClientConfig.objects.bulk_create([ClientConfig(owner_key=n) for n in names])

    add = batched(flush)
    add("alone")  # outside a group commit: at once
    assert flushed == [["alone"]]
    group = GroupCommit()
    names = ["u0", "u1", "u2", "alone"]  # "alone" exists: its insert fails the shared flush
    results = queued_behind_a_commit(group, lambda: add("first"), {n: (lambda n=n: add(n)) for n in names})
    assert flushed[1] == ["first"]
    assert sorted(flushed[2]) == sorted(names)  # one executemany for every queued unit
    assert sorted(map(tuple, flushed[3:])) == sorted((n,) for n in names)  # then one by one
    assert isinstance(results["alone"], IntegrityError)
    stored = set(ClientConfig.objects.values_list("owner_key", flat=True))
    assert stored == {"alone", "first", "u0", "u1", "u2"}
