"""Subagent methods (PROTOCOL.md sections 9 and 13): ``subagent.list``, ``subagent.interrupt``,
``delegation.status``, ``delegation.pause``, ``spawn_tree.save|list|load``.

Without ``session_id``, delegation methods cover every live session of the caller's user
(never another user's). Saved spawn trees are stored with the caller's session.
"""

from __future__ import annotations

import time
from typing import Any

from ..agent import subagents
from ..errors import BAD_VALUE, invalid_params
from ..models import SpawnTree
from ..rpc import RpcError, method
from ..rpc.call import Call
from ..sessions import lifecycle, store
from ..sessions.registry import registry
from ..writes import write_unit

TREE_PREFIX = "spawn_tree:"
MAX_TREE_LIST = 200


@method("subagent.list")
def subagent_list(call: Call) -> dict[str, Any]:
    live = lifecycle.get_live(call.params.session_id(), call.conn.user_id)
    return {"subagents": [s.to_wire() for s in live.subagents]}


@method("subagent.interrupt")
def subagent_interrupt(call: Call) -> dict[str, Any]:
    p = call.params
    live = lifecycle.get_live(p.session_id(), call.conn.user_id)
    return {"found": subagents.interrupt(live, p.string("subagent_id", ""))}


@method("delegation.status")
def delegation_status(call: Call) -> dict[str, Any]:
    session_id = call.params.string("session_id")
    user_id = call.conn.user_id
    if session_id:
        sessions = [lifecycle.get_live(session_id, user_id)]
    else:
        sessions = [s for s in registry.all() if s.owner_id == user_id and not s.ended]
    every = [sub for live in sessions for sub in live.subagents]
    running = [sub.to_wire() for sub in every if sub.status == "running"]
    return {"active": running, "total": len(every), "paused": subagents.is_paused(user_id)}


@method("delegation.pause")
def delegation_pause(call: Call) -> dict[str, Any]:
    return {"paused": subagents.set_paused(call.conn.user_id, call.params.boolean("paused", True))}


def _tree_session_key(call: Call) -> str:
    """The stored id of the named session (runtime or stored id of the caller's), else ""."""
    session_id = call.params.string("session_id") or ""
    live = lifecycle.find_live(session_id, call.conn.user_id) if session_id else None
    if live is not None:
        return live.key
    found = store.find(session_id, call.conn.user_id) if session_id else None
    return found.id if found is not None else ""


def _float(call: Call, key: str) -> float | None:
    value = call.params.raw(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise invalid_params(f"{key} must be a number")
    return float(value)


def _entry(tree: SpawnTree) -> dict[str, Any]:
    return {
        "path": f"{TREE_PREFIX}{tree.pk}",
        "session_id": tree.session_key,
        "started_at": tree.started_at,
        "finished_at": tree.finished_at,
        "label": tree.label,
        "count": len(tree.subagents),
    }


@method("spawn_tree.save", pool=True)
def spawn_tree_save(call: Call) -> dict[str, Any]:
    items = call.params.array("subagents")
    if not items or not all(isinstance(item, dict) for item in items):
        raise RpcError(BAD_VALUE, "subagents list required")
    tree = write_unit(SpawnTree.objects.create)(
        owner_id=call.conn.user_id,
        session_key=_tree_session_key(call),
        label=(call.params.string("label") or "")[:255],
        started_at=_float(call, "started_at"),
        finished_at=_float(call, "finished_at") or time.time(),
        subagents=items,
    )
    return {"path": f"{TREE_PREFIX}{tree.pk}", "session_id": tree.session_key}


@method("spawn_tree.list", pool=True)
def spawn_tree_list(call: Call) -> dict[str, Any]:
    limit = min(call.params.integer("limit", 50, minimum=1) or 50, MAX_TREE_LIST)
    trees = SpawnTree.objects.filter(owner_id=call.conn.user_id)
    if not call.params.boolean("cross_session"):
        trees = trees.filter(session_key=_tree_session_key(call))
    return {"entries": [_entry(t) for t in trees.order_by("-finished_at")[:limit]]}


@method("spawn_tree.load", pool=True)
def spawn_tree_load(call: Call) -> dict[str, Any]:
    path = (call.params.string("path") or "").strip()
    if not path:
        raise RpcError(BAD_VALUE, "path required")
    number = path.removeprefix(TREE_PREFIX)
    tree = (
        SpawnTree.objects.filter(pk=int(number), owner_id=call.conn.user_id).first()
        if path.startswith(TREE_PREFIX) and number.isdigit()
        else None
    )
    if tree is None:
        raise RpcError(BAD_VALUE, f"no saved spawn tree: {path}")
    return {
        "session_id": tree.session_key,
        "started_at": tree.started_at,
        "finished_at": tree.finished_at,
        "label": tree.label,
        "subagents": tree.subagents,
    }
