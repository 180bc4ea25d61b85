"""``prompt.background``: a prompt runs in a session of its own; its reply is announced to the
session that asked (``background.complete {task_id, text}``), as the reference does."""

from __future__ import annotations

import threading

from .. import ids
from ..events.outbox import emit
from ..sessions import lifecycle, reaper
from ..sessions.live import LiveSession
from . import turns

TITLE_CHARS = 40
SOURCE = "tool"  # a worker session: hidden from session.list like subagents


def start(parent: LiveSession, text: str) -> str:
    """Start ``text`` in a new session owned by the same user; returns the task id."""
    task_id = f"bg_{ids.request_id()[:6]}"
    child = lifecycle.spawn(
        owner_id=parent.owner_id,
        cwd=parent.cwd,
        model=parent.model,
        title=f"background: {' '.join(text.split())[:TITLE_CHARS]}",
        source=SOURCE,
        parent_key=parent.key,
        config={k: v for k, v in parent.config.items() if k in ("backend", "approval_mode")},
    )
    with child.lock:
        turns.start(child, text)
    threading.Thread(
        target=_announce, args=(parent, child, task_id), name=f"gw-bg-{task_id}", daemon=True
    ).start()
    return task_id


def _announce(parent: LiveSession, child: LiveSession, task_id: str) -> None:
    child.idle.wait()
    last = child.messages[-1] if child.messages else {}
    text = last.get("text", "") if last.get("role") == "assistant" else ""
    emit(parent.id, "background.complete", {"task_id": task_id, "text": text, "session_id": child.key})
    if not child.clients:
        reaper.park(child)
