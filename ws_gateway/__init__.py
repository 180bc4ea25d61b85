"""ws_gateway: agent sessions over WebSocket, wire-compatible with the hermes-agent gateway."""

__version__ = "0.1.0"
