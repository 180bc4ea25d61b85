"""Threads for long, blocking work (ws_gateway.workers.spawn): each task gets a thread of its own
at once, an idle thread is reused, and an idle thread ends after a while."""

from __future__ import annotations

import threading

import pytest

from tests.helpers import wait_until
from ws_gateway.workers import Threads, _ReusedThread


def test_each_task_runs_at_once_on_its_own_thread_even_when_others_block() -> None:
    threads = Threads()
    release = threading.Event()
    started: list[str] = []
    names: list[str] = []

    def blocker(name: str) -> None:
        started.append(name)
        names.append(threading.current_thread().name)
        release.wait(30)

    for i in range(5):
        threads.spawn(blocker, f"t{i}", name=f"gw-test-{i}")
    wait_until(lambda: len(started) == 5)  # none waited behind a blocked one
    assert sorted(names) == [f"gw-test-{i}" for i in range(5)]
    release.set()
    wait_until(lambda: threads.idle_count() == 5)


def test_an_idle_thread_is_reused_and_a_failing_task_does_not_end_it() -> None:
    threads = Threads()
    seen: list[int] = []

    def boom() -> None:
        seen.append(threading.get_ident())
        raise RuntimeError("task failed")

    threads.spawn(boom, name="gw-test-a")
    wait_until(lambda: threads.idle_count() == 1)
    threads.spawn(lambda: seen.append(threading.get_ident()), name="gw-test-b")
    wait_until(lambda: len(seen) == 2 and threads.idle_count() == 1)
    assert seen[0] == seen[1]


def test_an_idle_thread_ends_after_its_idle_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_ReusedThread, "IDLE_S", 0.05)
    threads = Threads()
    ran: list[threading.Thread] = []
    threads.spawn(lambda: ran.append(threading.current_thread()), name="gw-test-idle")
    wait_until(lambda: bool(ran))
    wait_until(lambda: not ran[0].is_alive())
    assert threads.idle_count() == 0
