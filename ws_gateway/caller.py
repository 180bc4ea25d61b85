"""Who makes a call: the :class:`Caller` protocol, for a socket here and a socket elsewhere.

A caller is a socket's connection in this process
(:class:`ws_gateway.transport.connection.Connection`) or, for a call forwarded
from another process, a :class:`RemoteCaller` that stands for the socket over
there. Sessions, methods and agents see only this protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .params import Params


class Caller(Protocol):
    """The socket a call came from, as handlers and services see it."""

    @property
    def id(self) -> str: ...
    @property
    def user_id(self) -> int | None: ...
    @property
    def is_staff(self) -> bool: ...
    @property
    def peer(self) -> str: ...


@dataclass
class RemoteCaller:
    """The caller of a call forwarded from another process (its socket lives there)."""

    id: str
    user_id: int | None
    peer: str = "remote"
    is_staff: bool = False


@dataclass
class Subscription:
    """A session whose events a caller receives from ``baseline`` on (what attaching returns)."""

    session_id: str
    baseline: int  # the caller already has every event up to this seq
    server_requests: bool | None = None  # opt in/out of 8.2 requests (None: unchanged)


class Request(Protocol):
    """A call as services below the RPC layer see it (resume, forwarding, adoption)."""

    @property
    def conn(self) -> Caller: ...
    @property
    def method(self) -> str: ...
    @property
    def params(self) -> Params: ...
    @property
    def forwarded(self) -> bool: ...

    def follow(self, *subscriptions: Subscription) -> None:
        """Join these sessions' events before the response is sent."""
        ...
