"""Adoption: taking over a session whose owner died (or drained), and resuming one live elsewhere.

Policy above sessions: it reads the durable log and the database and makes the
session live here, or forwards the resume to the process that has it live.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from .. import workers
from ..backplane import Owner, backplane
from ..caller import Request, Subscription
from ..errors import AGENT_FAILURE, RpcError
from ..events.outbox import outbox
from ..models import StoredSession
from ..sessions import paging, store
from ..sessions.lifecycle import attach, build_agent, default_model
from ..sessions.live import LiveSession
from ..sessions.reaper import park
from ..sessions.registry import registry
from ..sessions.shapes import snapshot, usage
from ..sessions.transcript import record
from .remote import OwnerSilent, remote_blocking

log = logging.getLogger(__name__)


def resume_elsewhere(request: Request, key: str) -> tuple[dict[str, Any], list[Subscription]] | None:
    """Resume through the owner when the stored session is live in another process; adopt it
    here when its owner is gone. None: nobody has it live (the caller makes it live here)."""
    if not backplane.shared or request.forwarded:
        return None
    session_id = _ask(backplane.session_for_key, key)
    owner: Owner | None = _ask(backplane.locate, session_id) if session_id else None
    if session_id is None or owner is None:
        return None
    if owner.channel and owner.channel != backplane.channel:
        try:
            return remote_blocking(request, owner, session_id)
        except OwnerSilent:
            raise RpcError(AGENT_FAILURE, "the session's worker is not answering; retry shortly") from None
    if not owner.channel and adopt(session_id, owner.meta) is not None:
        live = registry.get(session_id)
        if live is None:
            return None
        sub = attach(request.conn, live)
        out = snapshot(live, **paging.page_params(request.params))
        out["resumed"] = live.key
        return out, [sub]
    return None


def _ask(operation: Callable[..., Any], *args: Any) -> Any:
    """A backplane question from this worker thread; a fault is logged and answers None."""
    try:
        return backplane.run(operation(*args))
    except Exception:
        log.warning("backplane %s failed", operation.__name__, exc_info=True)
        return None


def adopt(session_id: str, meta: dict[str, str]) -> LiveSession | None:
    """Take over a session whose owner died (or drained): transcript from the database,
    numbering and the end of a lost turn from the durable log. None if it cannot be adopted."""
    key = meta.get("key", "")
    owner_id = int(meta["owner_id"]) if meta.get("owner_id") else None
    stored = StoredSession.objects.filter(id=key).first()
    if stored is None or not backplane.run(backplane.claim(session_id, key, owner_id, take=True)):
        return None
    events = backplane.run(backplane.read_log(session_id, 0))
    last_seq = events[-1].seq if events else 0
    outbox.continue_from(session_id, last_seq)
    live = LiveSession(
        id=session_id,
        key=key,
        owner_id=owner_id,
        cwd=stored.cwd or os.getcwd(),
        model=stored.model or default_model(),
        title=stored.title,
        source=stored.source,
        parent_key=stored.parent_id,
        messages=store.load_messages(stored),
        stored=True,
        config=_portable(meta.get("config")),
    )
    registry.add(live)
    store.reopen(stored)
    workers.submit(build_agent, live)
    log.info("adopted session=%s key=%s at seq=%d", session_id, key, last_seq)
    _close_lost_turn(live, [e.params for e in events])
    park(live)
    return live


def _portable(raw: str | None) -> dict[str, Any]:
    config = json.loads(raw) if raw else {}
    if "approved_patterns" in config:
        config["approved_patterns"] = set(config["approved_patterns"])
    return config


def _close_lost_turn(live: LiveSession, events: list[dict[str, Any]]) -> None:
    """If the log shows a turn that never completed, end it as interrupted, keeping what was said."""
    starts = [i for i, e in enumerate(events) if e["type"] == "message.start"]
    if not starts or any(e["type"] == "message.complete" for e in events[starts[-1] :]):
        return
    turn = events[starts[-1] :]
    text = "".join(e["payload"]["text"] for e in turn if e["type"] == "message.delta")
    cancelled = {e["payload"].get("request_id") for e in turn if e["type"] == "request.cancel"}
    for e in turn:
        kind = e["type"].removesuffix(".request")
        if e["type"].endswith(".request") and e["payload"]["request_id"] not in cancelled:
            outbox.emit(
                live.id,
                "request.cancel",
                {
                    "id": "",
                    "method": kind,
                    "reason": "session_closed",
                    "request_id": e["payload"]["request_id"],
                },
            )
    outbox.emit(
        live.id,
        "status.update",
        {"kind": "failover", "text": "the worker running this turn stopped; the turn was interrupted"},
    )
    record(live, [{"role": "assistant", "text": text, "timestamp": time.time()}])
    outbox.emit(
        live.id,
        "message.complete",
        {"text": text, "usage": usage(live), "status": "interrupted", "error": "worker lost"},
    )
