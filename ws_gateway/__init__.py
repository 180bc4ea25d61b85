"""ws_gateway: agent sessions over WebSocket, wire-compatible with the hermes-agent gateway.

The public API (``__all__``) is defined in :mod:`ws_gateway.api` and loaded on
first use (PEP 562): importing ``ws_gateway`` itself imports no Django model,
so the app can be listed in ``INSTALLED_APPS`` before apps are ready.

    from ws_gateway import method, emit, RpcError
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "Backend",
    "Call",
    "Caller",
    "CommandContext",
    "GatewayClient",
    "LiveSession",
    "Params",
    "Result",
    "RpcError",
    "TurnContext",
    "TurnFailed",
    "command",
    "emit",
    "method",
]

if TYPE_CHECKING:
    from .api import (
        Agent,
        Backend,
        Call,
        Caller,
        CommandContext,
        GatewayClient,
        LiveSession,
        Params,
        Result,
        RpcError,
        TurnContext,
        TurnFailed,
        command,
        emit,
        method,
    )


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("ws_gateway.api"), name)
    raise AttributeError(f"module 'ws_gateway' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
