"""Frames of PROTOCOL.md sections 1-2, shared by the in-process and the real-daphne protocol tests."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ws_gateway.errors import (  # noqa: F401  (re-exported for the protocol tests)
    HANDLER_ERROR,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
)

READY_PAYLOAD_KEYS = {"skin", "heartbeat", "change_events", "replay_epoch", "server", "capabilities"}
SKIN_KEYS = {"name", "colors", "branding", "banner_logo", "banner_hero", "tool_prefix", "help_header"}
CAPABILITIES = ["batch", "server_requests", "replay", "resume_any_worker"]
UNICODE_TEXT = "héllo ✓ 日本 🙂"


def req(request_id: Any, method: str, params: Any = None, **extra: Any) -> str:
    """A request frame; ``params`` is left out when None."""
    frame: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method, **extra}
    if params is not None:
        frame["params"] = params
    return json.dumps(frame)


def ping(request_id: Any) -> str:
    return req(request_id, "gateway.ping")


@dataclass(frozen=True)
class ErrorCase:
    """A frame answered at once (on the socket's loop) with one error."""

    frame: str
    code: int
    id: Any = None
    message: str = ""  # a fragment the error message must contain


# Every frame here is answered before the frames that follow it on the same socket.
ERROR_CASES: dict[str, ErrorCase] = {
    "truncated json": ErrorCase('{"id": 700, "method": "gateway.ping"', PARSE_ERROR),
    "not json": ErrorCase("hello", PARSE_ERROR),
    "single quotes": ErrorCase("{'id': 700, 'method': 'gateway.ping'}", PARSE_ERROR),
    "two objects": ErrorCase('{"id": 700} {"id": 701}', PARSE_ERROR),
    "number": ErrorCase("42", INVALID_REQUEST, None, "expected an object"),
    "string": ErrorCase('"gateway.ping"', INVALID_REQUEST, None, "expected an object"),
    "null": ErrorCase("null", INVALID_REQUEST, None, "expected an object"),
    "boolean": ErrorCase("true", INVALID_REQUEST, None, "expected an object"),
    "missing method": ErrorCase('{"id": 702}', INVALID_REQUEST, 702, "method must be a non-empty string"),
    "missing method, no id": ErrorCase('{"params": {}}', INVALID_REQUEST, None, "method must be a non-empty"),
    "empty method": ErrorCase('{"id": "e703", "method": ""}', INVALID_REQUEST, "e703", "non-empty string"),
    "non-string method": ErrorCase('{"id": 704, "method": ["gateway.ping"]}', INVALID_REQUEST, 704),
    "null method": ErrorCase('{"id": "e705", "method": null}', INVALID_REQUEST, "e705"),
    "result without id": ErrorCase('{"result": {}}', INVALID_REQUEST, None),
    "unknown method": ErrorCase(req(706, "no.such"), METHOD_NOT_FOUND, 706, "unknown method: no.such"),
    "unknown method, no id": ErrorCase('{"method": "no.such"}', METHOD_NOT_FOUND, None, "no.such"),
    "params array": ErrorCase(req(707, "test.echo", [1, 2]), INVALID_PARAMS, 707),
    "params string": ErrorCase(req("e708", "test.echo", "x"), INVALID_PARAMS, "e708"),
    "params number": ErrorCase(req(709, "test.echo", 0), INVALID_PARAMS, 709),
    "params false": ErrorCase(req(710, "test.echo", False), INVALID_PARAMS, 710),
    "ping params array": ErrorCase(req(711, "gateway.ping", []), INVALID_PARAMS, 711),
    # Precedence: parse error, then invalid request, then unknown method, then invalid params.
    "parse before all": ErrorCase('{"id": 712, "method": "", "params": []', PARSE_ERROR),
    "invalid request before params": ErrorCase(req(713, "", []), INVALID_REQUEST, 713),
    "invalid request before unknown": ErrorCase(
        '{"id": 714, "method": 5, "params": 1}', INVALID_REQUEST, 714
    ),
    "unknown before params": ErrorCase(req(715, "no.such", []), METHOD_NOT_FOUND, 715, "no.such"),
}

# Frames that get no reply at all.
SILENT_FRAMES: dict[str, str] = {
    "empty": "",
    "spaces": "   ",
    "whitespace": " \t\r\n ",
    "client result": '{"jsonrpc": "2.0", "id": "srq-0123456789ab", "result": {"value": "x"}}',
    "client error": '{"jsonrpc": "2.0", "id": 716, "error": {"code": 1, "message": "no"}}',
    "client null result": '{"id": "srq-abcdefabcdef", "result": null}',
}


def check_error(frame: dict[str, Any], code: int, request_id: Any = None, message: str = "") -> None:
    """``frame`` is exactly an error response with ``code`` for ``request_id``."""
    assert frame.keys() == {"jsonrpc", "id", "error"}, frame
    assert frame["jsonrpc"] == "2.0"
    assert frame["id"] == request_id and type(frame["id"]) is type(request_id), frame
    error = frame["error"]
    assert error["code"] == code, frame
    assert isinstance(error["message"], str) and message in error["message"], frame
    assert "data" not in error or error["data"] is not None, frame


def check_case(frame: dict[str, Any], case: ErrorCase) -> None:
    check_error(frame, case.code, case.id, case.message)


def check_result(frame: dict[str, Any], request_id: Any, result: dict[str, Any] | None = None) -> None:
    """``frame`` is exactly a success response for ``request_id`` (with ``result`` when given)."""
    assert frame.keys() == {"jsonrpc", "id", "result"}, frame
    assert frame["jsonrpc"] == "2.0"
    assert frame["id"] == request_id and type(frame["id"]) is type(request_id), frame
    assert isinstance(frame["result"], dict), frame
    if result is not None:
        assert frame["result"] == result, frame


def check_ready(frame: dict[str, Any]) -> dict[str, Any]:
    """``frame`` is a well-formed gateway.ready event; returns its payload."""
    assert frame.keys() == {"jsonrpc", "method", "params"}, frame
    assert frame["jsonrpc"] == "2.0" and frame["method"] == "event"
    params = frame["params"]
    assert params.keys() == {"type", "payload"}, "no session_id and no seq on gateway.ready"
    assert params["type"] == "gateway.ready"
    payload = params["payload"]
    assert payload.keys() == READY_PAYLOAD_KEYS
    assert payload["heartbeat"] is True and payload["change_events"] is True
    assert re.fullmatch(r"[0-9a-f]{32}", payload["replay_epoch"]), payload["replay_epoch"]
    server = payload["server"]
    assert server.keys() == {"name", "version", "worker"}
    assert server["name"] == "ws_gateway"
    assert all(isinstance(v, str) and v for v in server.values())
    assert payload["capabilities"] == CAPABILITIES
    skin = payload["skin"]
    assert skin == {} or skin.keys() == SKIN_KEYS, skin
    return payload
