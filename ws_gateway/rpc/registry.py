"""The method registry: which handler answers which JSON-RPC method.

Host projects add methods the same way the app does::

    from ws_gateway.rpc import method

    @method("weather.today", pool=True)
    def weather_today(call):
        return {"forecast": "sunny"}

A handler takes a :class:`~ws_gateway.rpc.call.Call` and returns a dict (the
result) or raises :class:`~ws_gateway.rpc.errors.RpcError`. ``pool=True``
marks slow methods: they run concurrently on the shared pool instead of in the
connection's ordered inline lane.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Handler = Callable[[Any], dict[str, Any]]


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


def method(name: str, *, pool: bool = False) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``name``."""

    def decorate(handler: Handler) -> Handler:
        registry.register(name, handler, pool=pool)
        return handler

    return decorate
