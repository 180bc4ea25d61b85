"""Socket policy: who may keep a socket open, what ``gateway.ready`` says, what a close sets off.

The consumer asks this module and does what it answers; it decides nothing
itself. Refusals come in order: a draining process first, then Host and
Origin (a foreign page learns nothing about auth), then credentials.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from .. import __version__, lifecycle, origins, skins
from ..auth import Identity, identify
from ..conf import gateway_settings
from ..errors import CLOSE_AUTH_FAILED, CLOSE_DRAINING, CLOSE_FORBIDDEN_ORIGIN
from ..events.outbox import outbox
from ..signals import connection_closed

log = logging.getLogger(__name__)

CAPABILITIES = ["batch", "server_requests", "replay", "resume_any_worker"]


def worker_id() -> str:
    return gateway_settings.WORKER_ID or f"{socket.gethostname()}:{os.getpid()}"


def ready_payload() -> dict[str, Any]:
    """The payload of ``gateway.ready``, the first frame on every accepted socket."""
    return {
        "skin": skins.current(),
        "heartbeat": True,
        "change_events": True,
        "replay_epoch": outbox.epoch,
        "server": {"name": "ws_gateway", "version": __version__, "worker": worker_id()},
        "capabilities": CAPABILITIES,
    }


def peer(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown"


def admit(scope: dict[str, Any]) -> Identity | tuple[str, int]:
    """The socket's identity, or (reason, close code) when it may not stay open."""
    if lifecycle.draining:
        return "draining", CLOSE_DRAINING
    reason = origins.refusal(scope)
    if reason is not None:
        return reason, CLOSE_FORBIDDEN_ORIGIN
    identity = identify(scope)
    if isinstance(identity, str):
        return identity, CLOSE_AUTH_FAILED
    return identity


def log_refusal(scope: dict[str, Any], reason: str, code: int) -> None:
    if reason == "draining":
        log.info("ws refused peer=%s code=%d reason=draining", peer(scope), code)
        return
    log.warning(
        "ws refused peer=%s code=%d reason=%s host=%s origin=%s",
        peer(scope),
        code,
        reason,
        _clip(origins.header(scope, b"host")),
        _clip(origins.header(scope, b"origin")),
    )


def _clip(value: str | None) -> str:
    """A client-chosen header value for the log: bounded, and repr'd so it cannot forge lines."""
    return repr(value[:200]) if value is not None else "-"


async def closed(conn_id: str, sessions: list[str]) -> tuple[int, int]:
    """Teardown of a gone connection (by the receivers of ``connection_closed``): (reaped, detached)."""
    reaped = detached = 0
    # Robust: one receiver's failure (the backplane unreachable) must not skip the others.
    replies = await connection_closed.asend_robust(sender=None, conn_id=conn_id, sessions=sessions)
    for receiver, outcome in replies:
        if isinstance(outcome, BaseException):
            log.error("teardown of conn=%s failed in %s", conn_id, receiver, exc_info=outcome)
        elif isinstance(outcome, tuple):
            reaped += outcome[0]
            detached += outcome[1]
    return reaped, detached
