"""``process.list``, ``process.kill``, ``process.stop`` (PROTOCOL.md section 9)."""

from __future__ import annotations

from typing import Any

from ..errors import NO_SUCH_PROCESS, PROCESS_ID_REQUIRED
from ..processes import processes
from ..rpc import RpcError, method
from ..rpc.call import Call
from ..sessions import lifecycle
from ..sessions.registry import registry


@method("process.list", pool=True)
def process_list(call: Call) -> dict[str, Any]:
    live = lifecycle.get_live(call.params.session_id(), call.conn.user_id)
    return {"processes": [p.to_wire() for p in processes.of_session(live)]}


@method("process.kill")
def process_kill(call: Call) -> dict[str, Any]:
    p = call.params
    live = lifecycle.get_live(p.session_id(), call.conn.user_id)
    process_id = p.string("process_id")
    if not process_id:
        raise RpcError(PROCESS_ID_REQUIRED, "process_id required")
    proc = processes.get(process_id)
    if proc is None or proc.session is not live:
        raise RpcError(NO_SUCH_PROCESS, f"no such process: {process_id}")
    status = processes.kill(proc)
    return {"status": status, "process_id": proc.id, "exit_code": proc.exit_code, "output": proc.tail}


@method("process.stop")
def process_stop(call: Call) -> dict[str, Any]:
    """Kill the background processes of every session the caller is attached to."""
    killed = 0
    for live in registry.all():
        if call.conn.id in live.clients and live.owner_id == call.conn.user_id:
            for proc in processes.of_session(live):
                if proc.running and processes.kill(proc) == "killed":
                    killed += 1
    return {"killed": killed}
