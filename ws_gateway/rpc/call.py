"""What a handler receives: the caller's connection and typed access to params."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import SESSION_ID_REQUIRED, RpcError, invalid_params

if TYPE_CHECKING:
    from ..transport.connection import Connection

_MISSING = object()


class Params:
    """Typed getters over a params object; wrong types answer -32602."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def str(self, key: str, default: str | None = None) -> str | None:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise invalid_params(f"{key} must be a string")
        return value

    def bool(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise invalid_params(f"{key} must be a boolean")
        return value

    def int(self, key: str, default: int | None = None, *, minimum: int | None = None) -> int | None:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid_params(f"{key} must be an integer")
        if minimum is not None and value < minimum:
            raise invalid_params(f"{key} must be >= {minimum}")
        return value

    def list(self, key: str) -> list[Any] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise invalid_params(f"{key} must be an array")
        return value

    def session_id(self) -> str:
        """The required ``session_id`` (4006 when missing or empty)."""
        value = self.str("session_id")
        if not value:
            raise RpcError(SESSION_ID_REQUIRED, "session_id required")
        return value


@dataclass
class Subscription:
    session_id: str
    baseline: int  # the caller already has every event up to this seq
    server_requests: bool | None = None  # opt in/out of 8.2 requests (None: unchanged)


@dataclass
class Call:
    """One request being handled."""

    conn: Connection
    method: str
    params: Params
    request_id: Any = None
    # Set on the owner when the call came from another process (never forwarded again).
    forwarded: bool = False
    subscriptions: list[Subscription] = field(default_factory=list)

    def subscribe(self, session_id: str, baseline: int, server_requests: bool | None = None) -> None:
        """Join the session's group before the response is sent; replay from ``baseline``."""
        self.subscriptions.append(Subscription(session_id, baseline, server_requests))
