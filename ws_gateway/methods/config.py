"""``config.get`` / ``config.set`` (PROTOCOL.md sections 10 and 13).

Three kinds of keys:

- ``skin``: the deployment's skin, broadcast as ``skin.changed``;
- session keys (``session_id`` required): ``model``, ``busy_input_mode``,
  ``approval_mode``, ``cwd``, ``fast``, ``reasoning``, ``verbose``,
  ``personality``, ``yolo``; a change re-emits ``session.info``;
- the user's display preferences (``busy``, ``compact``, ``statusbar``,
  ``mouse``, ``indicator``, ``details_mode[.SECTION]``), stored per user and
  read back whole with ``full`` (``mtime`` tells when they last changed).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .. import preferences, skins
from ..agent.model_choice import set_model
from ..agent.turns import BUSY_MODES
from ..conf import gateway_settings
from ..errors import BAD_VALUE, SESSION_ID_REQUIRED
from ..events.outbox import broadcast, emit
from ..rpc import RpcError, method
from ..rpc.call import Call, Params
from ..sessions import lifecycle, shapes
from ..sessions.live import LiveSession
from ..sessions.registry import registry

APPROVAL_MODES = ("manual", "off")
FAST_MODES = {"fast": True, "on": True, "normal": False, "off": False}
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
REASONING_DISPLAY = ("show", "hide")
VERBOSE_MODES = ("off", "new", "all", "verbose")
INDICATORS = ("kaomoji", "emoji", "unicode", "ascii")
STATUSBAR = ("top", "bottom", "off", "on")
SESSION_DEFAULTS = {"busy_input_mode": "interrupt", "approval_mode": "manual", "verbose": "off"}


def _session(call: Call) -> LiveSession | None:
    session_id = call.params.string("session_id")
    return lifecycle.get_live(session_id, call.conn.user_id) if session_id else None


def _require_session(call: Call, key: str) -> LiveSession:
    live = _session(call)
    if live is None:
        raise RpcError(SESSION_ID_REQUIRED, f"{key} is per session: session_id required")
    return live


def _value(call: Call, key: str) -> str:
    value = call.params.raw("value")
    if not isinstance(value, str) or not value.strip():
        raise RpcError(BAD_VALUE, f"{key} needs a non-empty string value")
    return value.strip()


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> str:
    value = value.lower()
    if value not in allowed:
        raise RpcError(BAD_VALUE, f"{key} must be one of {', '.join(allowed)}")
    return value


def may_change_deployment(call: Call) -> bool:
    """Deployment-wide settings: anyone in anonymous (single-tenant) mode, else staff users only."""
    return gateway_settings.ALLOW_ANONYMOUS or call.conn.is_staff


def session_value(live: LiveSession | None, key: str) -> Any:
    if key == "model":
        return live.model if live else lifecycle.default_model()
    if key == "cwd":
        return live.cwd if live else os.getcwd()
    return live.config.get(key, SESSION_DEFAULTS[key]) if live else SESSION_DEFAULTS[key]


# -- config.get -----------------------------------------------------------------

Getter = Callable[[Call], dict[str, Any]]


def _get_reasoning(call: Call) -> dict[str, Any]:
    live = _session(call)
    effort = live.config.get("reasoning_effort", "medium") if live else "medium"
    shown = preferences.display_value(call.conn.user_id, "show_reasoning")
    return {"value": effort, "display": "show" if shown else "hide"}


def _get_fast(call: Call) -> dict[str, Any]:
    live = _session(call)
    return {"value": "fast" if live and live.config.get("fast") else "normal"}


def _get_personality(call: Call) -> dict[str, Any]:
    live = _session(call)
    return {"value": live.config.get("personality", "") if live else ""}


def _get_display(name: str, default: Any = None) -> Getter:
    def get(call: Call) -> dict[str, Any]:
        value = preferences.display_value(call.conn.user_id, name)
        return {"value": default if value is None else value}

    return get


def _get_session_key(key: str) -> Getter:
    return lambda call: {"value": session_value(_session(call), key)}


GETTERS: dict[str, Getter] = {
    "skin": lambda call: {"value": skins.current_name(), "available": skins.available()},
    "full": lambda call: {"config": preferences.full(call.conn.user_id)},
    "mtime": lambda call: {"mtime": preferences.load(call.conn.user_id)[1]},
    "busy": _get_display("busy_input_mode", "interrupt"),
    "indicator": _get_display("tui_status_indicator", "kaomoji"),
    "details_mode": _get_display("details_mode", ""),
    "compact": _get_display("tui_compact", False),
    "statusbar": _get_display("tui_statusbar", "top"),
    "mouse": _get_display("mouse_tracking", "all"),
    "reasoning": _get_reasoning,
    "fast": _get_fast,
    "verbose": _get_session_key("verbose"),
    "personality": lambda call: {
        "value": live.config.get("personality", "") if (live := _session(call)) else ""
    },
    "yolo": lambda call: {"value": "1" if session_value(_session(call), "approval_mode") == "off" else "0"},
    **{key: _get_session_key(key) for key in ("model", "busy_input_mode", "approval_mode", "cwd")},
}


# Keys read from memory only (the skin, a live session's options): answered on the loop.
MEMORY_KEYS = frozenset(
    {"skin", "fast", "personality", "verbose", "yolo", "model", "busy_input_mode", "approval_mode", "cwd"}
)


def _reads_memory(params: Params) -> bool:
    return params.raw("key") in MEMORY_KEYS


@method("config.get", on_loop=_reads_memory)
def config_get(call: Call) -> dict[str, Any]:
    key = call.params.string("key", "") or ""
    getter = GETTERS.get(key)
    if getter is None:
        raise RpcError(BAD_VALUE, f"unknown config key: {key}")
    return getter(call)


# -- config.set -----------------------------------------------------------------


def _set_skin(call: Call, key: str) -> dict[str, Any]:
    value = _value(call, key)
    skin = skins.get(value)
    if skin is None:
        raise RpcError(BAD_VALUE, f"unknown skin: {value}")
    if not may_change_deployment(call):
        raise RpcError(BAD_VALUE, "the skin is deployment-wide: only a staff user may change it")
    if skins.set_current(value):
        broadcast("skin.changed", skin)
    return {"key": key, "value": value}


def _set_session(call: Call, key: str) -> dict[str, Any]:
    live = _require_session(call, key)
    value = _value(call, key)
    if key == "model":
        set_model(live, value)
    elif key == "cwd":
        path = os.path.abspath(os.path.expanduser(value))
        if not os.path.isdir(path):
            raise RpcError(BAD_VALUE, f"not a directory: {value}")
        live.cwd = path
    else:
        allowed = BUSY_MODES if key == "busy_input_mode" else APPROVAL_MODES
        set_session_option(live, key, _choice(key, value, allowed))
    if key == "cwd":
        _changed(live)
    elif key == "model":
        lifecycle.remember_config(live)
    return {"key": key, "value": session_value(live, key)}


def set_session_option(live: LiveSession, key: str, value: Any) -> None:
    """Set one per-session option, store it for an adopter and tell the clients."""
    if key == "approval_mode" and value == "off" and not gateway_settings.ALLOW_APPROVAL_OFF:
        raise RpcError(
            BAD_VALUE,
            "approval_mode off is not allowed by this deployment (WS_GATEWAY['ALLOW_APPROVAL_OFF'])",
        )
    with live.lock:
        live.config[key] = value
    _changed(live)


def _changed(live: LiveSession) -> None:
    lifecycle.remember_config(live)
    emit(live.id, "session.info", shapes.info(live))


def _set_busy(call: Call, key: str) -> dict[str, Any]:
    value = _choice(key, _value(call, key), BUSY_MODES)
    live = _session(call)
    targets = [live] if live else registry.of_connection(call.conn.id)
    for session in targets:
        set_session_option(session, "busy_input_mode", value)
    preferences.set_display(call.conn.user_id, ("busy_input_mode",), value)
    return {"key": key, "value": value}


def _set_fast(call: Call, key: str) -> dict[str, Any]:
    live = _require_session(call, key)
    value = _value(call, key).lower()
    if value == "toggle":
        fast = not live.config.get("fast", False)
    elif value in FAST_MODES:
        fast = FAST_MODES[value]
    else:
        raise RpcError(BAD_VALUE, f"fast must be one of {', '.join([*FAST_MODES, 'toggle'])}")
    set_session_option(live, "fast", fast)
    return {"key": key, "value": "fast" if fast else "normal"}


def _set_reasoning(call: Call, key: str) -> dict[str, Any]:
    value = _choice(key, _value(call, key), REASONING_EFFORTS + REASONING_DISPLAY)
    if value in REASONING_DISPLAY:
        preferences.set_display(call.conn.user_id, ("show_reasoning",), value == "show")
    else:
        set_session_option(_require_session(call, key), "reasoning_effort", value)
    return {"key": key, "value": value}


def _set_verbose(call: Call, key: str) -> dict[str, Any]:
    live = _require_session(call, key)
    value = _value(call, key).lower()
    if value == "cycle":
        current = live.config.get("verbose", "off")
        value = VERBOSE_MODES[(VERBOSE_MODES.index(current) + 1) % len(VERBOSE_MODES)]
    set_session_option(live, "verbose", _choice(key, value, VERBOSE_MODES))
    return {"key": key, "value": value}


def _set_personality(call: Call, key: str) -> dict[str, Any]:
    live = _require_session(call, key)
    value = _value(call, key)
    set_session_option(live, "personality", "" if value.lower() in ("none", "default", "off") else value)
    return {"key": key, "value": value}


def _set_yolo(call: Call, key: str) -> dict[str, Any]:
    live = _require_session(call, key)
    mode = "manual" if session_value(live, "approval_mode") == "off" else "off"
    set_session_option(live, "approval_mode", mode)
    return {"key": key, "value": "1" if mode == "off" else "0"}


def _set_display(name: str, allowed: tuple[str, ...] | None = None, boolean: bool = False) -> Setter:
    def set_(call: Call, key: str) -> dict[str, Any]:
        raw = _value(call, key)
        value: Any = raw
        if boolean:
            value = _choice(key, raw, ("on", "off")) == "on"
        elif allowed is not None:
            value = _choice(key, raw, allowed)
        preferences.set_display(call.conn.user_id, (name,), value)
        return {"key": key, "value": raw}

    return set_


Setter = Callable[[Call, str], dict[str, Any]]

SETTERS: dict[str, Setter] = {
    "skin": _set_skin,
    "busy": _set_busy,
    "fast": _set_fast,
    "reasoning": _set_reasoning,
    "verbose": _set_verbose,
    "personality": _set_personality,
    "yolo": _set_yolo,
    "indicator": _set_display("tui_status_indicator", INDICATORS),
    "compact": _set_display("tui_compact", boolean=True),
    "statusbar": _set_display("tui_statusbar", STATUSBAR),
    "mouse": _set_display("mouse_tracking"),
    "details_mode": _set_display("details_mode"),
    **{key: _set_session for key in ("model", "busy_input_mode", "approval_mode", "cwd")},
}
DETAILS_SECTION = "details_mode."


@method("config.set")
def config_set(call: Call) -> dict[str, Any]:
    key = call.params.string("key", "") or ""
    if key.startswith(DETAILS_SECTION) and len(key) > len(DETAILS_SECTION):
        section = key[len(DETAILS_SECTION) :]
        value = call.params.raw("value")
        if not isinstance(value, str):
            raise RpcError(BAD_VALUE, f"{key} needs a string value")
        preferences.set_display(call.conn.user_id, ("sections", section), value)
        return {"key": key, "value": value}
    setter = SETTERS.get(key)
    if setter is None:
        raise RpcError(BAD_VALUE, f"unknown config key: {key}")
    return setter(call, key)
