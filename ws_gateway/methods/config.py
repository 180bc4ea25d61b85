"""``config.get`` / ``config.set`` (PROTOCOL.md section 10)."""

from __future__ import annotations

import os
from typing import Any

from .. import skins, workers
from ..agent.base import BACKENDS
from ..agent.turns import BUSY_MODES
from ..conf import gateway_settings
from ..outbox import broadcast, emit
from ..rpc import RpcError, method
from ..rpc.call import Call
from ..rpc.errors import BAD_VALUE, SESSION_ID_REQUIRED
from ..sessions import service
from ..sessions.live import LiveSession

APPROVAL_MODES = ("manual", "off")
SESSION_KEYS = ("model", "busy_input_mode", "approval_mode", "cwd")
DEFAULTS = {"busy_input_mode": "interrupt", "approval_mode": "manual"}


def _session(call: Call) -> LiveSession | None:
    session_id = call.params.str("session_id")
    return service.get_live(session_id, call.conn.user_id) if session_id else None


def _key(call: Call) -> str:
    key = call.params.str("key", "")
    if key != "skin" and key not in SESSION_KEYS:
        raise RpcError(BAD_VALUE, f"unknown config key: {key}")
    return key


def session_value(live: LiveSession | None, key: str) -> Any:
    if key == "model":
        return live.model if live else service.default_model()
    if key == "cwd":
        return live.cwd if live else os.getcwd()
    return live.config.get(key, DEFAULTS[key]) if live else DEFAULTS[key]


@method("config.get")
def config_get(call: Call) -> dict[str, Any]:
    key = _key(call)
    if key == "skin":
        return {"value": skins.current_name(), "available": skins.available()}
    return {"value": session_value(_session(call), key)}


@method("config.set")
def config_set(call: Call) -> dict[str, Any]:
    key = _key(call)
    value = call.params.raw("value")
    if not isinstance(value, str) or not value.strip():
        raise RpcError(BAD_VALUE, f"{key} needs a non-empty string value")
    value = value.strip()
    if key == "skin":
        skin = skins.get(value)
        if skin is None:
            raise RpcError(BAD_VALUE, f"unknown skin: {value}")
        if skins.set_current(value):
            broadcast("skin.changed", skin)
        return {"key": key, "value": value}
    live = _session(call)
    if live is None:
        raise RpcError(SESSION_ID_REQUIRED, f"{key} is per session: session_id required")
    if key == "model":
        set_model(live, value)
    elif key == "cwd":
        path = os.path.abspath(os.path.expanduser(value))
        if not os.path.isdir(path):
            raise RpcError(BAD_VALUE, f"not a directory: {value}")
        live.cwd = path
    else:
        allowed = BUSY_MODES if key == "busy_input_mode" else APPROVAL_MODES
        if value not in allowed:
            raise RpcError(BAD_VALUE, f"{key} must be one of {', '.join(allowed)}")
        if key == "approval_mode" and value == "off" and not gateway_settings.ALLOW_APPROVAL_OFF:
            raise RpcError(
                BAD_VALUE,
                "approval_mode off is not allowed by this deployment (WS_GATEWAY['ALLOW_APPROVAL_OFF'])",
            )
        live.config[key] = value
    service.remember_config(live)
    if key != "model":
        emit(live.id, "session.info", service.info(live))
    return {"key": key, "value": session_value(live, key)}


def set_model(live: LiveSession, value: str) -> None:
    """Switch a session's model; ``backend:model`` (or a bare backend name) also switches backend.

    The agent is rebuilt in the background and ``session.info`` follows.
    """
    backend, _, model = value.partition(":")
    with live.lock:
        if backend in BACKENDS:
            live.config["backend"] = backend
            live.model = model or (backend if backend == "demo" else service.default_model())
        else:
            live.model = value
        live.agent = None
        live.built.clear()
    workers.submit(service.build_agent, live)
