"""The public API of ws_gateway: what a host project and a backend author use.

Re-exported lazily by ``ws_gateway`` (``from ws_gateway import method``), so that
importing the package does not import Django models before apps are ready.
Anything not listed in ``__all__`` is internal and may change.
"""

from __future__ import annotations

from .agent.base import Agent, Backend
from .agent.context import TurnContext, TurnFailed
from .caller import Caller
from .commands import CommandContext, Result, command
from .errors import RpcError
from .events.outbox import emit
from .params import Params
from .rpc.call import Call
from .rpc.registry import method
from .sessions.live import LiveSession
from .testing import GatewayClient

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
