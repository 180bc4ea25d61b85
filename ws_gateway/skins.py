"""Skins: the colour and branding set clients render with.

A skin has the keys ``name, colors, branding, banner_logo, banner_hero,
tool_prefix, help_header``. Built-ins are ``default`` and ``slate``; a
deployment adds more with ``WS_GATEWAY["SKINS"]`` (merged over ``default``).
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from .conf import gateway_settings

_DEFAULT_COLORS = {
    "banner_border": "#3B82F6",
    "banner_title": "#93C5FD",
    "banner_accent": "#60A5FA",
    "banner_dim": "#64748B",
    "banner_text": "#E2E8F0",
    "ui_accent": "#60A5FA",
    "ui_label": "#A5B4FC",
    "ui_ok": "#22C55E",
    "ui_error": "#EF4444",
    "ui_warn": "#F59E0B",
    "prompt": "#E2E8F0",
    "input_rule": "#3B82F6",
    "response_border": "#93C5FD",
    "status_bar_bg": "#0F172A",
    "session_label": "#A5B4FC",
    "session_border": "#475569",
}
_DEFAULT_BRANDING = {
    "agent_name": "Gateway Agent",
    "welcome": "Connected to ws_gateway. Type a message, or /help for commands.",
    "goodbye": "Bye.",
    "response_label": " agent ",
    "prompt_symbol": ">",
    "help_header": "Commands",
}

BUILTIN: dict[str, dict[str, Any]] = {
    "default": {"colors": _DEFAULT_COLORS, "branding": _DEFAULT_BRANDING, "tool_prefix": "|"},
    "slate": {
        "colors": {
            **_DEFAULT_COLORS,
            "banner_border": "#708090",
            "banner_title": "#CBD5E1",
            "banner_accent": "#94A3B8",
            "ui_accent": "#94A3B8",
            "ui_label": "#CBD5E1",
            "input_rule": "#708090",
            "response_border": "#94A3B8",
            "status_bar_bg": "#1E293B",
        },
        "branding": _DEFAULT_BRANDING,
        "tool_prefix": ":",
    },
}

_lock = threading.Lock()
_current: str | None = None


def available() -> list[str]:
    return sorted({*BUILTIN, *gateway_settings.SKINS})


def get(name: str) -> dict[str, Any] | None:
    """The full skin object, or None for an unknown name."""
    base = BUILTIN.get(name)
    extra = gateway_settings.SKINS.get(name)
    if base is None and extra is None:
        return None
    merged = copy.deepcopy(BUILTIN["default"])
    for part in (base or {}, extra or {}):
        for key, value in part.items():
            if isinstance(value, dict):
                merged.setdefault(key, {}).update(value)
            else:
                merged[key] = value
    branding = merged.get("branding", {})
    return {
        "name": name,
        "colors": merged.get("colors", {}),
        "branding": branding,
        "banner_logo": merged.get("banner_logo", ""),
        "banner_hero": merged.get("banner_hero", ""),
        "tool_prefix": merged.get("tool_prefix", ""),
        "help_header": branding.get("help_header", ""),
    }


def current_name() -> str:
    return _current or gateway_settings.SKIN


def current() -> dict[str, Any]:
    """The active skin object (``{}`` when the configured name is unknown)."""
    return get(current_name()) or {}


def set_current(name: str) -> bool:
    """Switch the active skin; True when it changed."""
    global _current
    with _lock:
        if name == current_name():
            return False
        _current = name
        return True
