"""What crosses processes, as one protocol, and its one-process implementation.

A live session is owned by one process; its events are numbered there. What
another process may need (who owns a session, the session's events for its
own clients, a call for the owner, a notice to a process, the session's event
log) goes through a :class:`Backplane`. :class:`LocalBackplane` is the default:
one process, no I/O, every question answered at once (this process owns what
it serves; nobody else listens). :mod:`.redis` is the implementation for
several processes on one Redis.

What a backplane receives from other processes it hands to :class:`Receivers`
registered by the layers above (the outbox takes events, the cluster policy
takes calls and notices): the backplane imports none of them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .eventlog import LoggedEvent, Replay

# Layer messages (channel layer "type"s) between processes.
EVENT_MESSAGE = "gw.event"  # a session event
BROADCAST_MESSAGE = "gw.broadcast"  # a global event
FORWARD = "gw.forward"  # a call for the owner of a session
REPLY = "gw.reply"  # the owner's answer
DETACH = "gw.detach"  # a client of another process left a session owned here
CLIENT_REPLY = "gw.client_reply"  # a client's reply to a server request of a session owned here

BROADCAST_GROUP = "ws_gateway.all"


def session_group(session_id: str) -> str:
    """The layer group of the processes with clients of a session."""
    return f"ws_gateway.s.{session_id}"


def connection_id(worker_channel: str | None) -> str:
    """A connection's id: the worker channel of its process (or "local"), then a uuid."""
    return f"{worker_channel or 'local'}!{uuid.uuid4().hex}"


def worker_of(conn_id: str) -> str | None:
    """The worker channel a connection id belongs to (None without a cluster).

    Split at the last "!": a channels_redis core channel name holds one too."""
    worker, sep, _ = conn_id.rpartition("!")
    return worker if sep and worker != "local" else None


@dataclass
class Owner:
    """Who owns a session: its worker channel ("" when the lease lapsed) and what an adopter needs."""

    channel: str
    meta: dict[str, str] = field(default_factory=dict)


class OwnerGone(Exception):
    """The owner of a session died (heartbeat stopped, lease lapsed) while a forwarded call waited."""


class Owned(Protocol):
    """A session owned by this process, as the backplane sees it (leases, lost clients)."""

    @property
    def id(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def owner_id(self) -> int | None: ...
    @property
    def clients(self) -> set[str]: ...


Message = dict[str, Any]


@dataclass
class Receivers:
    """What the layers above registered to take messages from other processes."""

    events: Callable[[Message], None] | None = None
    calls: Callable[[Message], Awaitable[Message]] | None = None
    notices: dict[str, Callable[[Message], Awaitable[None]]] = field(default_factory=dict)
    # Other requests a process answers (another process asks with ``ask``), e.g. the admin's.
    requests: dict[str, Callable[[Message], Awaitable[Message]]] = field(default_factory=dict)
    owned: Callable[[], Iterable[Owned]] = list


class Backplane(Protocol):
    """One protocol for what crosses processes."""

    receivers: Receivers

    @property
    def shared(self) -> bool:
        """Whether other processes take part (events are published, calls may be forwarded)."""
        ...

    @property
    def channel(self) -> str | None:
        """This process's address among the others (None when alone)."""
        ...

    async def start(self, loop: asyncio.AbstractEventLoop, layer: Any) -> None: ...
    async def shutdown(self) -> None: ...
    async def epoch(self) -> str | None: ...
    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any: ...

    # ownership
    async def claim(self, session_id: str, key: str, owner_id: int | None, *, take: bool = False) -> bool: ...
    async def release(self, session_id: str, key: str, *, ended: bool) -> None: ...
    async def remember(self, session_id: str, config: str) -> None: ...
    async def locate(self, session_id: str) -> Owner | None: ...
    async def session_for_key(self, key: str) -> str | None: ...
    async def alive(self, worker: str) -> bool: ...
    async def lapse(self, worker: str, session_id: str) -> bool: ...

    # a session's events for its clients in other processes
    async def watch(self, session_id: str) -> None: ...
    async def unwatch(self, session_id: str) -> None: ...
    async def publish(self, session_id: str, batch: list[tuple[Message, LoggedEvent]]) -> None: ...
    async def publish_global(self, message: Message) -> None: ...

    # calls and notices
    async def forward(self, owner: str, session_id: str, message: Message) -> Message: ...
    async def tell(self, owner: str, message: Message) -> None: ...
    async def ask(self, worker: str, message: Message, timeout: float) -> Message: ...
    async def workers(self) -> list[str]: ...

    # the durable event log of a session
    async def append(self, session_id: str, events: list[LoggedEvent]) -> None: ...
    async def read_log(self, session_id: str, after: int, before: int | None = None) -> list[LoggedEvent]: ...
    async def replay(self, session_id: str, last_seen: int) -> Replay: ...


class LocalBackplane:
    """One process, no I/O: it owns every session it serves and nobody else listens.

    The event log of a session is the outbox's in-memory ring (see
    :mod:`.eventlog`); there is no durable log beyond it, so reading it here
    gives nothing more."""

    shared = False
    channel: str | None = None

    def __init__(self, receivers: Receivers | None = None) -> None:
        self.receivers = receivers or Receivers()
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self, loop: asyncio.AbstractEventLoop, layer: Any) -> None:
        self.loop = loop

    async def shutdown(self) -> None:
        return None

    async def epoch(self) -> str | None:
        return None  # the outbox's own: the in-memory logs live as long as the process

    def _loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            raise RuntimeError("the backplane has not started")
        return self.loop

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        """From a worker thread: run ``coro`` on the loop and wait for its result."""
        if self.loop is None:
            coro.close()
        return asyncio.run_coroutine_threadsafe(coro, self._loop()).result(timeout)

    async def claim(self, session_id: str, key: str, owner_id: int | None, *, take: bool = False) -> bool:
        return True

    async def release(self, session_id: str, key: str, *, ended: bool) -> None:
        return None

    async def remember(self, session_id: str, config: str) -> None:
        return None

    async def locate(self, session_id: str) -> Owner | None:
        return None

    async def session_for_key(self, key: str) -> str | None:
        return None

    async def alive(self, worker: str) -> bool:
        return False

    async def lapse(self, worker: str, session_id: str) -> bool:
        return True

    async def watch(self, session_id: str) -> None:
        return None

    async def unwatch(self, session_id: str) -> None:
        return None

    async def publish(self, session_id: str, batch: list[tuple[Message, LoggedEvent]]) -> None:
        return None

    async def publish_global(self, message: Message) -> None:
        return None

    async def forward(self, owner: str, session_id: str, message: Message) -> Message:
        raise OwnerGone(owner)  # no other process to forward to

    async def tell(self, owner: str, message: Message) -> None:
        return None

    async def ask(self, worker: str, message: Message, timeout: float) -> Message:
        raise LookupError(f"no process {worker} to ask")  # alone: nobody else to ask

    async def workers(self) -> list[str]:
        """The processes of the cluster (none besides this one)."""
        return []

    async def append(self, session_id: str, events: list[LoggedEvent]) -> None:
        return None

    async def read_log(self, session_id: str, after: int, before: int | None = None) -> list[LoggedEvent]:
        return []

    async def replay(self, session_id: str, last_seen: int) -> Replay:
        return Replay([], 0, last_seen > 0)
