"""What the admin's live-sessions page shows and does, across the processes of a cluster.

Live sessions exist only in the memory of the process that owns them. Without
Redis there is one process: the page reads its registry. With a cluster, the
page's request lands on any worker, which asks every worker with a current
heartbeat for its sessions (``gw.inventory``) and sends a close to the owner
(``gw.admin_close``); a worker that does not answer in time is named as such.
Closing goes through :func:`ws_gateway.sessions.lifecycle.teardown`, so attached
clients get ``session.reclaimed {reason: "admin_close"}`` and the transcript is
stored, as with any other end.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from . import backplane as backplanes
from . import lifecycle, workers
from .backplane import backplane, receivers
from .sessions import lifecycle as sessions_lifecycle
from .sessions.live import LiveSession
from .sessions.registry import registry
from .sessions.shapes import wire_status
from .transport.policy import worker_id

INVENTORY = "gw.inventory"
ADMIN_CLOSE = "gw.admin_close"
CLOSE_REASON = "admin_close"
# Seconds the page waits for each worker's answer.
ASK_TIMEOUT_S = 3.0


@dataclass
class Inventory:
    """Every live session found, by which worker, and the workers that did not answer."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)
    silent: list[str] = field(default_factory=list)
    clustered: bool = False


def describe(live: LiveSession) -> dict[str, Any]:
    """One row of the page: plain values (they travel between workers)."""
    turn = live.turn
    return {
        "id": live.id,
        "key": live.key,
        "status": wire_status(live),
        "clients": len(live.clients),
        "owner_id": live.owner_id,
        "title": live.title,
        "model": live.model,
        "running_turn": _turn(turn) if live.running and turn is not None else None,
        "open_requests": live.open_requests,
        "last_active": live.last_active,
        "worker": worker_id(),
        "channel": backplane.channel or "",
    }


def _turn(turn: Any) -> dict[str, Any]:
    prompt = turn.prompt
    return {
        "prompt": prompt[:80] + ("…" if len(prompt) > 80 else ""),
        "seconds": round(time.monotonic() - turn.started, 1),
    }


def local_rows() -> list[dict[str, Any]]:
    return [describe(live) for live in sorted(registry.all(), key=lambda s: s.last_active, reverse=True)]


def close_local(session_id: str) -> bool:
    """End a session this process owns (False: not here, or already ended)."""
    live = registry.get(session_id)
    if live is None:
        return False
    return sessions_lifecycle.teardown(live, CLOSE_REASON)


def inventory() -> Inventory:
    """From a request thread: the live sessions of this process, or of the whole cluster."""
    if not backplanes.configured():
        return Inventory(local_rows(), [worker_id()])
    return async_to_sync(_gather)()


def close(session_id: str, channel: str) -> bool:
    """From a request thread: close ``session_id`` on the worker that owns it."""
    if registry.get(session_id) is not None or not backplanes.configured():
        return close_local(session_id)
    return async_to_sync(_close_remote)(session_id, channel)


async def _joined() -> None:
    await lifecycle.start(get_channel_layer())


async def _gather() -> Inventory:
    await _joined()
    found = Inventory(local_rows(), [worker_id()], clustered=True)
    others = [w for w in await backplane.workers() if w != backplane.channel]
    replies = await asyncio.gather(
        *(backplane.ask(w, {"type": INVENTORY}, ASK_TIMEOUT_S) for w in others), return_exceptions=True
    )
    for channel, reply in zip(others, replies, strict=True):
        if isinstance(reply, BaseException) or "rows" not in reply:
            found.silent.append(channel)
            continue
        found.workers.append(reply["worker"])
        found.rows.extend(reply["rows"])
    found.rows.sort(key=lambda row: row["last_active"], reverse=True)
    return found


async def _close_remote(session_id: str, channel: str) -> bool:
    await _joined()
    owner = await backplane.locate(session_id)
    target = owner.channel if owner is not None and owner.channel else channel
    if not target:
        return False
    if target == backplane.channel:
        return bool(await _in_background(close_local, session_id))
    reply = await backplane.ask(target, {"type": ADMIN_CLOSE, "session_id": session_id}, ASK_TIMEOUT_S + 5)
    return bool(reply.get("closed"))


async def _in_background(fn: Any, *args: Any) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(workers.background(), workers.with_db, fn, *args)


async def _serve_inventory(message: dict[str, Any]) -> dict[str, Any]:
    return {"rows": local_rows(), "worker": worker_id()}


async def _serve_close(message: dict[str, Any]) -> dict[str, Any]:
    return {"closed": await _in_background(close_local, message["session_id"])}


receivers.requests[INVENTORY] = _serve_inventory
receivers.requests[ADMIN_CLOSE] = _serve_close
