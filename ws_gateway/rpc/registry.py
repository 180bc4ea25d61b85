"""The method registry: which handler answers which JSON-RPC method.

Host projects add methods the same way the app does::

    from ws_gateway import method

    @method("weather.today", pool=True)
    def weather_today(call):
        return {"forecast": "sunny"}

    @method("notes.add", session=True)
    def notes_add(call, live):  # the caller's live session (params.session_id)
        emit(live.id, "status.update", {"kind": "notes", "text": call.params.string("text", "")})
        return {"ok": True}

A handler takes a :class:`~ws_gateway.rpc.call.Call` and returns a dict (the
result) or raises :class:`~ws_gateway.errors.RpcError`. ``pool=True`` marks
slow methods: they run concurrently on the shared pool instead of in the
connection's ordered inline lane. ``session=True`` declares a session-scoped
method: it also receives the caller's live session, looked up from the
``session_id`` param (4006 when missing, 4001 when not live or another user's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..caller import Caller
from ..sessions.lifecycle import get_live
from ..sessions.live import LiveSession

Handler = Callable[[Any], dict[str, Any]]
SessionHandler = Callable[[Any, LiveSession], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class MethodSpec:
    name: str
    handler: Handler
    pool: bool


class MethodRegistry:
    def __init__(self) -> None:
        self._methods: dict[str, MethodSpec] = {}

    def register(self, name: str, handler: Handler, *, pool: bool = False) -> None:
        self._methods[name] = MethodSpec(name, handler, pool)

    def get(self, name: str) -> MethodSpec | None:
        return self._methods.get(name)

    def names(self) -> list[str]:
        return sorted(self._methods)


registry = MethodRegistry()

# A handler of clients' replies to server requests (id + result/error, no method): True when
# it took the reply. Handlers are asked in registration order until one takes it.
ClientReplyHandler = Callable[[Caller, dict[str, Any]], bool]
_reply_handlers: list[ClientReplyHandler] = []


def on_client_reply(handler: ClientReplyHandler) -> ClientReplyHandler:
    """Register a handler of clients' replies to server requests (usable as a decorator)."""
    if handler not in _reply_handlers:
        _reply_handlers.append(handler)
    return handler


def client_reply(caller: Caller, reply: dict[str, Any]) -> bool:
    """Hand a client's reply to the registered handlers; False when none took it."""
    return any(handler(caller, reply) for handler in list(_reply_handlers))


def method(name: str, *, pool: bool = False, session: bool = False) -> Callable[[Any], Any]:
    """Register the decorated function as the handler of ``name`` (``session``: it takes
    ``(call, live)``, the caller's live session named by the ``session_id`` param)."""

    def decorate(handler: Any) -> Any:
        registry.register(name, _with_session(handler) if session else handler, pool=pool)
        return handler

    return decorate


def _with_session(handler: SessionHandler) -> Handler:
    def run(call: Any) -> dict[str, Any]:
        live = get_live(call.params.session_id(), call.conn.user_id)
        return handler(call, live)

    run.__name__ = run.__qualname__ = getattr(handler, "__name__", "handler")
    return run
