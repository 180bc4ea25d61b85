"""A live session: the in-process state of one open conversation."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..workers import Timer
from . import work

BUILDING = "building"
IDLE = "idle"
RUNNING = "running"
FAILED = "failed"


class SessionAgent(Protocol):
    """What sessions need of a session's agent (the agent layer's ``Agent`` also runs turns)."""

    def tools(self) -> dict[str, list[str]]: ...


class RunningTurn(Protocol):
    """What sessions and the admin need of the running turn (the agent layer's ``TurnContext``)."""

    prompt: str
    started: float  # monotonic
    interrupt_event: threading.Event

    def steer(self, text: str) -> None: ...
    def inflight(self) -> dict[str, Any]: ...


class Delegation(Protocol):
    """A subagent this session delegated to, as sessions and methods see it (``agent.subagents``)."""

    id: str
    status: str
    child: LiveSession

    def to_wire(self) -> dict[str, Any]: ...


@dataclass(eq=False)
class LiveSession:
    """Everything about an open session that is not in the database.

    ``clients`` holds the channel names of attached connections. Mutations go
    through :mod:`ws_gateway.sessions.lifecycle` and :mod:`~ws_gateway.sessions.transcript`
    under ``lock``, which also
    serialises the session's transcript writes (memory and database alike).
    """

    id: str
    key: str
    owner_id: int | None
    cwd: str = ""
    model: str = ""
    title: str = ""
    source: str = ""
    close_on_disconnect: bool = False
    parent_key: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    stored: bool = False
    started_at: float = field(default_factory=time.time)
    last_active: float = field(default_factory=time.time)
    # Monotonic time of the last sign of life of a running turn (staleness).
    last_activity: float = field(default_factory=time.monotonic)
    clients: set[str] = field(default_factory=set)
    agent: SessionAgent | None = None
    build_error: str | None = None
    running: bool = False
    ended: bool = False
    orphan_timer: Timer | None = None
    config: dict[str, Any] = field(default_factory=dict)
    # The running turn's context (ws_gateway.agent.context.TurnContext), if any.
    turn: RunningTurn | None = None
    # Prompts waiting for the running turn to end (busy input mode "queue").
    queue: deque[str] = field(default_factory=deque)
    # submission_ref -> the first submission's result (idempotent retries).
    submissions: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    usage: dict[str, int] = field(default_factory=dict)
    # Values given through secret.request: environment of this session's commands, never stored.
    secret_env: dict[str, str] = field(default_factory=dict, repr=False)
    # Subagents this session delegated to (ws_gateway.agent.subagents.Subagent).
    subagents: list[Delegation] = field(default_factory=list)
    # A child session while its delegated turn runs: watch windows may not prompt it.
    watch_locked: bool = False
    # Images attached for the next prompt ({name, mime, data, path}); taken by the next turn.
    attachments: list[dict[str, Any]] = field(default_factory=list, repr=False)
    # Interactive requests of this session waiting for a person (live status "waiting").
    open_requests: int = 0
    todos: list[dict[str, Any]] = field(default_factory=list)
    todo_revision: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    # Set when the agent is built (or failed to build).
    built: threading.Event = field(default_factory=threading.Event, repr=False)
    # Set while no turn runs.
    idle: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        self.idle.set()

    @property
    def status(self) -> str:
        if self.running:
            return RUNNING
        if self.build_error is not None:
            return FAILED
        if self.agent is None:
            return BUILDING
        return IDLE

    def touch(self) -> None:
        self.last_active = time.time()
        self.last_activity = time.monotonic()

    def has_pending_work(self) -> bool:
        """Running turns, queued prompts, open requests and background processes."""
        return (
            self.running or bool(self.queue) or bool(work.open_requests(self)) or work.processes_running(self)
        )
