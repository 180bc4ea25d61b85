"""Subagents: a delegate tool runs a child session's turn and reports it on the parent.

The child is a live session of its own (stored with ``parent``), running its
turn on its own thread. The parent sees ``subagent.start|progress|tool|complete``.
``session.resume {lazy: true}`` on the child's stored id attaches a client to
the child itself: a watch window that mirrors it and refuses prompts (4009)
until the child's turn ends. Interrupting the parent interrupts its children.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .. import ids
from ..events.outbox import emit
from ..sessions import lifecycle, reaper, store
from ..sessions.live import LiveSession
from . import turns
from .context import TurnContext

PROGRESS_EVERY_S = 0.5


@dataclass(eq=False)
class Subagent:
    id: str
    parent: LiveSession
    child: LiveSession
    goal: str
    started: float = field(default_factory=time.monotonic)
    status: str = "running"
    tool_count: int = 0
    summary: str | None = None
    duration_s: float | None = None
    _last_progress: float = 0.0

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "subagent_id": self.id,
            "child_session_id": self.child.key,
            "goal": self.goal,
            "status": self.status,
            "tool_count": self.tool_count,
        }
        if self.summary is not None:
            out["summary"] = self.summary
        if self.duration_s is not None:
            out["duration_seconds"] = round(self.duration_s, 3)
        return out

    def report(self, type_: str) -> None:
        emit(self.parent.id, type_, self.to_wire())

    def observe(self, type_: str, payload: dict[str, Any] | None) -> None:
        """Called for every event of the child's turn."""
        if type_ == "tool.complete":
            self.tool_count += 1
            self.report("subagent.tool")
        elif type_ == "message.delta" and time.monotonic() - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = time.monotonic()
            self.report("subagent.progress")


_paused_owners: set[int | None] = set()


def set_paused(owner_id: int | None, paused: bool) -> bool:
    """Pause (or resume) new delegations of one user's sessions (``delegation.pause``)."""
    if paused:
        _paused_owners.add(owner_id)
    else:
        _paused_owners.discard(owner_id)
    return paused


def is_paused(owner_id: int | None) -> bool:
    return owner_id in _paused_owners


class DelegationPaused(Exception):
    """Raised by :func:`delegate` while the user paused delegation."""


def delegate(ctx: TurnContext, goal: str, prompt: str) -> Subagent:
    """Run ``prompt`` in a child session and wait for it (interruptible); returns the finished subagent."""
    parent = ctx.session
    if is_paused(parent.owner_id):
        raise DelegationPaused("delegation is paused (delegation.pause)")
    child = lifecycle.spawn(
        owner_id=parent.owner_id,
        cwd=parent.cwd,
        model=parent.model,
        title=goal,
        source="tool",  # hidden from session.list, as the reference hides its subagent rows
        parent_key=parent.key,
        config={k: v for k, v in parent.config.items() if k in ("backend", "approval_mode")},
    )
    store.ensure_row(parent)
    store.ensure_row(child)
    sub = Subagent(f"sub_{ids.request_id()}", parent, child, goal)
    with parent.lock:
        parent.subagents.append(sub)
    sub.report("subagent.start")
    with child.lock:
        child.watch_locked = True
        turns.start(child, prompt, observer=sub.observe)
    while not child.idle.wait(0.05):
        if ctx.interrupted:
            turns.interrupt(child)
            child.idle.wait()
            break
        ctx.touch()
    with child.lock:
        child.watch_locked = False
    last = child.messages[-1] if child.messages else {}
    sub.summary = last.get("text", "") if last.get("role") == "assistant" else ""
    sub.status = "interrupted" if ctx.interrupted else child.config.get("last_status", "complete")
    sub.duration_s = time.monotonic() - sub.started
    sub.report("subagent.complete")
    if not child.clients:
        reaper.park(child)
    return sub


def interrupt(parent: LiveSession, subagent_id: str) -> bool:
    for sub in list(parent.subagents):
        if sub.id == subagent_id:
            turns.interrupt(sub.child)
            return True
    return False
