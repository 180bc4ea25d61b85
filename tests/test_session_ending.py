"""Ending a session, in-process, on a live session registered for the test and never started:
teardown happens once even when storing the end fails, a clientless session's orphan timer is
re-armed rather than doubled, and an orphan check finds a client that came back. Nothing here
is reclaimed through the process-wide broadcast (reclaimed=False, an unstored session)."""

from __future__ import annotations

from typing import Any

import pytest

from ws_gateway.sessions import lifecycle, reaper, store
from ws_gateway.sessions.live import LiveSession
from ws_gateway.sessions.registry import registry


def registered(**fields: Any) -> LiveSession:
    live = LiveSession("rt-ending", "20260101_000000_abcabc", owner_id=None, **fields)
    registry.add(live)
    return live


def test_teardown_happens_once_even_when_storing_the_end_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    ends: list[str] = []

    def failing_end(live: LiveSession, reason: str) -> None:
        ends.append(reason)
        raise OSError("database gone")

    monkeypatch.setattr(store, "end", failing_end)
    live = registered()
    assert lifecycle.teardown(live, "client_close", reclaimed=False) is True
    assert live.ended and registry.get(live.id) is None and ends == ["client_close"]
    assert lifecycle.teardown(live, "client_close", reclaimed=False) is False  # already ended
    assert ends == ["client_close"]


def test_a_clientless_sessions_timer_is_rearmed_not_doubled(settings: Any) -> None:
    settings.WS_GATEWAY = {**getattr(settings, "WS_GATEWAY", {}), "ORPHAN_GRACE_S": 3600.0}
    live = registered()
    try:
        reaper.park(live)
        first = live.orphan_timer
        reaper.park(live)
        assert first is not None and first.cancelled
        assert live.orphan_timer is not first and not live.orphan_timer.cancelled
    finally:
        lifecycle.teardown(live, "test", reclaimed=False)
    assert live.orphan_timer is None and first.cancelled


def test_without_a_grace_no_timer_is_armed(settings: Any) -> None:
    settings.WS_GATEWAY = {**getattr(settings, "WS_GATEWAY", {}), "ORPHAN_GRACE_S": 0}
    live = LiveSession("rt-nograce", "k", owner_id=None)
    reaper.park(live)
    assert live.orphan_timer is None


def test_an_orphan_check_spares_a_session_whose_client_came_back() -> None:
    live = registered()
    try:
        live.clients.add("c-back")
        reaper.orphan_check(live)
        assert not live.ended and registry.get(live.id) is live
    finally:
        lifecycle.teardown(live, "test", reclaimed=False)
    reaper.orphan_check(live)  # an ended session: nothing happens
    assert live.ended
