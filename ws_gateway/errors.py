"""Every code of the wire protocol in one table: JSON-RPC error codes (PROTOCOL.md
section 2), WebSocket close codes, and the exception handlers raise."""

from __future__ import annotations

from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
HANDLER_ERROR = -32000

SESSION_NOT_LIVE = 4001
BAD_VALUE = 4002
EMPTY_COMMAND = 4004
SESSION_ID_REQUIRED = 4006
SESSION_NOT_FOUND = 4007
BUSY = 4009
PROCESS_ID_REQUIRED = 4012
NOT_PLAIN_SLASH = 4018
REWIND_EMPTIES = 4028
REWIND_NEEDS_CONFIRM = 4029
REWIND_ORDINAL_MISMATCH = 4030
NO_SUCH_PROCESS = 4044
LIVE_LIMIT = 4090
TRANSCRIPT_TOO_LARGE = 4130
# (beyond) A result too large for one WebSocket message: ask for less (paging params).
RESULT_TOO_LARGE = 4131
RATE_LIMITED = 4290
AGENT_FAILURE = 5000
PROCESS_FAILURE = 5010
AGENT_BUILD_FAILED = 5032
DRAINING = 5035
NOTHING_TO_BRANCH = 4008

# WebSocket close codes (the 4xxx application range; distinct from the JSON-RPC codes above).
CLOSE_SLOW_CONSUMER = 4008  # the client read too slowly: its unsent bytes passed the cap
CLOSE_DRAINING = 4012  # the process is draining (reconnect: another process takes over)
CLOSE_AUTH_FAILED = 4501  # no valid credentials
CLOSE_FORBIDDEN_ORIGIN = 4503  # Host or Origin refused (CSWSH, DNS rebinding)
CLOSE_TOO_LARGE = 4509  # a message over the message-size limit


class RpcError(Exception):
    """Raised by a handler to answer with a specific error code."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_error(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


def invalid_params(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message)
