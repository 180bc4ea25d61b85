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
``on_loop`` (True, or a predicate of the call's params) marks calls that only
read memory and never block or touch the database: they run on the event loop,
still in lane order, without the hop to a thread (about half the cost of a
small call).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..caller import Caller
from ..params import Params
from ..sessions.lifecycle import get_live
from ..sessions.live import LiveSession

Handler = Callable[[Any], dict[str, Any]]
SessionHandler = Callable[[Any, LiveSession], dict[str, Any]]
OnLoop = Callable[[Params], bool]


def _never(params: Params) -> bool:
    return False


def _always(params: Params) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class MethodSpec:
    name: str
    handler: Handler
    pool: bool
    on_loop: OnLoop = _never  # whether a call with these params runs on the event loop


class MethodRegistry:
    def __init__(self) -> None:
        self._methods: dict[str, MethodSpec] = {}

    def register(
        self, name: str, handler: Handler, *, pool: bool = False, on_loop: bool | OnLoop = False
    ) -> None:
        predicate = on_loop if callable(on_loop) else (_always if on_loop else _never)
        self._methods[name] = MethodSpec(name, handler, pool, predicate)

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


def method(
    name: str, *, pool: bool = False, session: bool = False, on_loop: bool | OnLoop = False
) -> Callable[[Any], Any]:
    """Register the decorated function as the handler of ``name`` (``session``: it takes
    ``(call, live)``, the caller's live session named by the ``session_id`` param;
    ``on_loop``: see the module's docstring)."""

    def decorate(handler: Any) -> Any:
        wrapped = _with_session(handler) if session else handler
        registry.register(name, wrapped, pool=pool, on_loop=on_loop)
        return handler

    return decorate


def _with_session(handler: SessionHandler) -> Handler:
    def run(call: Any) -> dict[str, Any]:
        live = get_live(call.params.session_id(), call.conn.user_id)
        return handler(call, live)

    run.__name__ = run.__qualname__ = getattr(handler, "__name__", "handler")
    return run
