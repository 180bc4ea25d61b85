"""Wire shapes of a live session: ``info``, ``usage``, the live status word, the resume snapshot.

Pure reads of a :class:`~.live.LiveSession` (under its lock where it is mutable).
"""

from __future__ import annotations

from typing import Any

from .. import __version__, framing
from ..conf import gateway_settings
from . import paging, work
from .live import BUILDING, RUNNING, LiveSession

# The live status words the hermes clients render (PROTOCOL.md section 5).
WIRE_STATUS = {BUILDING: "starting", RUNNING: "working"}


def usage(live: LiveSession) -> dict[str, Any]:
    counts = live.usage
    return {
        "model": live.model,
        "input": counts.get("input", 0),
        "output": counts.get("output", 0),
        "reasoning": counts.get("reasoning", 0),
        "prompt": counts.get("input", 0),
        "completion": counts.get("output", 0),
        "total": counts.get("input", 0) + counts.get("output", 0),
        "calls": counts.get("calls", 0),
    }


def info(live: LiveSession) -> dict[str, Any]:
    """The ``info`` object of replies and ``session.info`` events."""
    agent = live.agent
    out: dict[str, Any] = {
        "model": live.model,
        "provider": live.config.get("backend", gateway_settings.AGENT),
        "tools": agent.tools() if agent is not None else {},
        "skills": {},
        "cwd": live.cwd,
        "title": live.title,
        "stored_session_id": live.key,
        "running": live.running,
        "approval_mode": live.config.get("approval_mode", "manual"),
        "busy_input_mode": live.config.get("busy_input_mode", "interrupt"),
        "usage": usage(live),
        "version": __version__,
    }
    if agent is None:
        out["lazy"] = True
    return out


def wire_status(live: LiveSession) -> str:
    if live.running and live.open_requests > 0:
        return "waiting"
    return WIRE_STATUS.get(live.status, "idle")


def snapshot(
    live: LiveSession, *, omit_messages: bool = False, before: int | None = None, limit: int | None = None
) -> dict[str, Any]:
    """The live snapshot returned by resume and activate.

    ``messages`` is the newest page of the transcript that fits one message with the rest of
    the snapshot (``start``: index of its first row; ``more``: earlier rows exist)."""
    with live.lock:
        messages = list(live.messages)
        out: dict[str, Any] = {
            "session_id": live.id,
            "session_key": live.key,
            "message_count": len(messages),
            "messages": [],
            "info": info(live),
            "running": live.running,
            "status": wire_status(live),
            "started_at": live.started_at,
        }
        if live.todos:
            out["todo_state"] = {"todos": list(live.todos), "revision": live.todo_revision}
        if live.queue:
            out["queued"] = [{"user": _capped(text)} for text in live.queue]
        if live.turn is not None:
            out["inflight"] = {
                k: _capped(v) if isinstance(v, str) else v for k, v in live.turn.inflight().items()
            }
    out.update(open_requests(live))
    if omit_messages:
        out.update(start=len(messages), more=bool(messages))
        return out
    budget = framing.max_message_bytes() - framing.json_len(out) - framing.RESPONSE_SLACK
    page = paging.message_page(messages, max(budget, 1024), before, limit)
    out.update(messages=page.rows, start=page.start, more=page.more)
    return out


def _capped(text: str) -> str:
    """In-flight and queued prompts share the snapshot's frame with the transcript page:
    each keeps at most an eighth of it (the whole text is in the transcript once recorded)."""
    cap = framing.max_message_bytes() // 8
    if framing.fits(text, cap):
        return text
    kept = framing.head(text, cap)
    return kept + f"\n[... {len(text) - len(kept)} more characters]"


def open_requests(live: LiveSession) -> dict[str, Any]:
    """``pending_approval`` / ``open_requests`` for a reconnecting client (empty when none)."""
    requests = work.open_requests(live)
    if not requests:
        return {}
    out: dict[str, Any] = {"open_requests": [r.public() for r in requests]}
    approvals = [r for r in requests if r.kind == "approval"]
    if approvals:
        out["pending_approval"] = approvals[0].public()
    return out
