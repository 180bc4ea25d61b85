"""Streaming turns give way to requests (ws_gateway.pacing): they wait while requests run,
never longer than the bound, and after waiting run as long as they waited."""

from __future__ import annotations

import threading

import pytest

from ws_gateway import pacing
from ws_gateway.pacing import StreamPacer, UrgentWork


def test_with_no_request_running_a_stream_does_not_wait() -> None:
    assert UrgentWork().give_way(timeout=5) == 0.0


def test_a_waiting_stream_goes_on_when_the_last_request_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pacing, "MAX_WAIT_S", 3600.0)  # only the end of the requests releases it
    requests = UrgentWork()
    requests.begin()
    requests.begin()
    started = threading.Event()
    waited: list[float] = []

    def stream() -> None:
        started.set()
        waited.append(requests.give_way(timeout=3600))

    thread = threading.Thread(target=stream)
    thread.start()
    started.wait()
    requests.end()
    requests.end()  # the last one: the stream goes on
    thread.join(30)
    assert not thread.is_alive() and waited  # released by the end, not by the hour-long bound
    assert requests.running == 0


def test_a_stream_never_waits_longer_than_the_bound() -> None:
    requests = UrgentWork()
    requests.begin()  # never ends
    requests.give_way(timeout=0.01)  # returns although the work still runs (a hang fails the test)
    assert requests.running == 1


def test_after_waiting_a_stream_runs_as_long_as_it_waited(monkeypatch: pytest.MonkeyPatch) -> None:
    requests = UrgentWork()
    monkeypatch.setattr(pacing, "urgent", requests)
    clock = [100.0]
    monkeypatch.setattr(pacing.time, "monotonic", lambda: clock[0])
    calls: list[float] = []

    def give_way(timeout: float = pacing.MAX_WAIT_S) -> float:
        calls.append(clock[0])
        clock[0] += 0.05  # the full bound: requests kept running
        return 0.05

    monkeypatch.setattr(requests, "give_way", give_way)
    pacer = StreamPacer()
    pacer.pace()  # no request: no wait
    assert calls == []
    requests.begin()
    pacer.pace()  # waits the bound ...
    assert calls == [100.0]
    clock[0] += 0.049
    pacer.pace()  # ... then is free for as long
    assert calls == [100.0]
    clock[0] += 0.002
    pacer.pace()
    assert len(calls) == 2


def test_a_long_request_holds_streams_back_only_at_its_start(monkeypatch: pytest.MonkeyPatch) -> None:
    requests = UrgentWork()
    clock = [100.0]
    monkeypatch.setattr(pacing.time, "monotonic", lambda: clock[0])
    requests.begin()  # e.g. shell.exec: runs for seconds
    clock[0] += pacing.MAX_WAIT_S
    assert requests.give_way(timeout=30) == 0.0
