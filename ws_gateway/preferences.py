"""A user's client settings: the display preferences the hermes clients read with
``config.get {key:"full"}`` and watch through ``config.get {key:"mtime"}``.

Stored per user (anonymous mode is one user), so every client of a person and
every worker process sees the same values. Called from worker threads.
"""

from __future__ import annotations

import time
from typing import Any

from .models import ClientConfig
from .writes import write_unit

ANONYMOUS = "anonymous"
# What a client reads when the user set nothing; busy_input_mode is the gateway's default.
DISPLAY_DEFAULTS: dict[str, Any] = {"busy_input_mode": "interrupt"}


def owner_key(user_id: int | None) -> str:
    return ANONYMOUS if user_id is None else str(user_id)


def load(user_id: int | None) -> tuple[dict[str, Any], float]:
    """(settings, last change time); empty and 0.0 before the first change."""
    row = ClientConfig.objects.filter(owner_key=owner_key(user_id)).first()
    return (dict(row.data), row.mtime) if row is not None else ({}, 0.0)


def full(user_id: int | None) -> dict[str, Any]:
    data, _ = load(user_id)
    display = {**DISPLAY_DEFAULTS, **data.get("display", {})}
    return {**data, "display": display}


def display_value(user_id: int | None, name: str) -> Any:
    return full(user_id)["display"].get(name)


@write_unit
def set_display(user_id: int | None, path: tuple[str, ...], value: Any) -> float:
    """Set ``display.<path>`` and bump the change time; returns the new mtime."""
    row, _ = ClientConfig.objects.select_for_update().get_or_create(owner_key=owner_key(user_id))
    node = row.data.setdefault("display", {})
    for name in path[:-1]:
        child = node.get(name)
        if not isinstance(child, dict):
            child = node[name] = {}
        node = child
    node[path[-1]] = value
    # Strictly increasing, so a client polling mtime sees every change.
    row.mtime = max(time.time(), row.mtime + 0.001)
    row.save(update_fields=["data", "mtime"])
    return row.mtime
