"""Reclaiming live sessions: detached clients, orphan timers, the idle sweep, drain.

A session whose last client left is parked (its orphan timer armed) or ended
(``close_on_disconnect``); the sweeper ends the forgotten idle ones; on drain
every session is stopped and handed over.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .. import workers
from ..backplane import backplane
from ..conf import gateway_settings
from ..events.outbox import outbox
from ..signals import connection_closed
from . import store, work
from .lifecycle import stop_work, teardown
from .live import LiveSession
from .registry import registry


def disconnect(conn_id: str) -> tuple[int, int]:
    """Detach a gone connection from its sessions; returns (reaped, detached)."""
    outcomes = [_detach(live, conn_id) for live in registry.unlink_connection(conn_id)]
    return outcomes.count("reaped"), outcomes.count("detached")


def detach(session_id: str, conn_id: str) -> None:
    """A connection (of another process) left one session."""
    live = registry.get(session_id)
    if live is not None:
        registry.unlink(conn_id, live)
        _detach(live, conn_id)


def _detach(live: LiveSession, conn_id: str) -> str | None:
    with live.lock:
        live.clients.discard(conn_id)
        orphaned = not live.clients and not live.ended
    if not orphaned:
        return None
    if live.close_on_disconnect:
        return "reaped" if teardown(live, "ws_disconnect") else None
    park(live)
    return "detached"


def park(live: LiveSession) -> None:
    """Arm the orphan timer of a clientless session."""
    grace = gateway_settings.ORPHAN_GRACE_S
    if grace <= 0:
        return
    with live.lock:
        if live.orphan_timer is not None:
            live.orphan_timer.cancel()
        live.orphan_timer = workers.call_later(grace, lambda: orphan_check(live))


def orphan_check(live: LiveSession) -> None:
    """The orphan timer fired: reclaim, keep waiting, or interrupt a stale turn."""
    with live.lock:
        live.orphan_timer = None
        if live.clients or live.ended:
            return
        stale = time.monotonic() - live.last_activity >= gateway_settings.STALE_TURN_S
    if work.processes_running(live) or (live.has_pending_work() and not stale):
        park(live)
        return
    teardown(live, "ws_orphan_reap")


def hand_over_all(window: float) -> list[tuple[str, str]]:
    """Drain: give running turns ``window`` seconds, then stop every session's work and forget it.

    Returns (runtime id, key) of the sessions handed over: their leases are released by the
    caller once their last events are out, so another process adopts them on the next call.
    Alone (no other process to adopt them) they are simply ended (``end_reason="drain"``)."""
    deadline = time.monotonic() + window
    sessions = registry.all()
    for live in sessions:
        live.idle.wait(max(0.0, deadline - time.monotonic()))
    handed = []
    for live in sessions:
        with live.lock:
            if live.ended:
                continue
            live.ended = True
            if live.orphan_timer is not None:
                live.orphan_timer.cancel()
        registry.remove(live)
        stop_work(live)
        if not backplane.shared:
            store.end(live, "drain")
        outbox.close(live.id)
        handed.append((live.id, live.key))
    return handed


def start_sweeper() -> None:
    """Run :func:`sweep_idle` every SWEEP_INTERVAL_S for the life of the process (idempotent)."""
    global _sweeping
    if _sweeping:
        return
    _sweeping = True

    def tick() -> None:
        try:
            sweep_idle()
        finally:
            workers.call_later(gateway_settings.SWEEP_INTERVAL_S, tick)

    workers.call_later(gateway_settings.SWEEP_INTERVAL_S, tick)


_sweeping = False


def sweep_idle() -> None:
    """Reclaim idle sessions older than IDLE_TTL_S (the backstop for forgotten ones)."""
    cutoff = time.time() - gateway_settings.IDLE_TTL_S
    for live in registry.all():
        if live.has_pending_work() or live.last_active > cutoff or live.started_at > cutoff:
            continue
        teardown(live, "idle_timeout")


async def _connection_closed(sender: Any, conn_id: str, **kwargs: Any) -> tuple[int, int]:
    """A socket's connection is gone: detach it from its sessions here (on a worker thread)."""
    if not registry.count_linked(conn_id):
        return 0, 0  # attached to nothing here: no thread hop (most connections of a busy server)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(workers.background(), disconnect, conn_id)


connection_closed.connect(_connection_closed, weak=False, dispatch_uid="ws_gateway.sessions.reaper")
