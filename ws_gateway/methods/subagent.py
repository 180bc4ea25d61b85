"""``subagent.list``, ``subagent.interrupt``, ``delegation.status`` (PROTOCOL.md section 9)."""

from __future__ import annotations

from typing import Any

from ..agent import subagents
from ..rpc import method
from ..rpc.call import Call
from ..sessions import service


@method("subagent.list")
def subagent_list(call: Call) -> dict[str, Any]:
    live = service.get_live(call.params.session_id(), call.conn.user_id)
    return {"subagents": [s.to_wire() for s in live.subagents]}


@method("subagent.interrupt")
def subagent_interrupt(call: Call) -> dict[str, Any]:
    p = call.params
    live = service.get_live(p.session_id(), call.conn.user_id)
    return {"found": subagents.interrupt(live, p.str("subagent_id", ""))}


@method("delegation.status")
def delegation_status(call: Call) -> dict[str, Any]:
    live = service.get_live(call.params.session_id(), call.conn.user_id)
    running = [s.to_wire() for s in live.subagents if s.status == "running"]
    return {"active": len(running), "subagents": running, "total": len(live.subagents)}
