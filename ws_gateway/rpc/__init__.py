"""JSON-RPC: envelopes and error codes, the method registry, and dispatch."""

from ..errors import RpcError
from .registry import method, registry

__all__ = ["RpcError", "method", "registry"]
