"""Answers from people: ``approval.respond``, ``approval.pending``, ``clarify.respond``,
``sudo.respond``, ``secret.respond``, and replies to server requests (PROTOCOL.md section 8)."""

from __future__ import annotations

from typing import Any

from ..agent import approvals
from ..agent.pending import answer_from_reply, pending
from ..errors import BAD_VALUE, BUSY, invalid_params
from ..rpc import RpcError, method
from ..rpc.call import Call, Caller
from ..rpc.registry import on_client_reply
from ..sessions import lifecycle


@method("approval.respond")
def approval_respond(call: Call) -> dict[str, Any]:
    p = call.params
    live = lifecycle.get_live(p.session_id(), call.conn.user_id)
    choice = p.string("choice", "deny")
    if choice not in approvals.choices():
        raise RpcError(BAD_VALUE, f"choice must be one of {', '.join(approvals.choices())}")
    waiting = pending.for_session(live, "approval")
    request_id = p.string("request_id")
    if request_id is not None:
        targets = [r for r in waiting if r.request_id == request_id]
    elif p.boolean("all"):
        targets = waiting
    else:
        targets = waiting[:1]
    resolved = sum(1 for r in targets if pending.resolve(r.request_id, {"choice": choice}) == "ok")
    return {"resolved": resolved}


@method("approval.pending")
def approval_pending(call: Call) -> dict[str, Any]:
    live = lifecycle.get_live(call.params.session_id(), call.conn.user_id)
    return {"approvals": [r.public() for r in pending.for_session(live, "approval")]}


def _respond(call: Call, kind: str, field: str) -> dict[str, Any]:
    p = call.params
    request_id = p.string("request_id")
    if not request_id:
        raise invalid_params("request_id required")
    value = p.string(field, "") or ""
    request = pending.get(request_id)
    if request is None or request.kind != kind or request.session.owner_id != call.conn.user_id:
        if request is None and pending.kind_of_ended(request_id) == kind:
            return {"status": "expired"}
        raise RpcError(BUSY, f"no pending {kind} request")
    outcome = pending.resolve(request_id, value)
    return {"status": "ok" if outcome == "ok" else "expired"}


@method("clarify.respond")
def clarify_respond(call: Call) -> dict[str, Any]:
    return _respond(call, "clarify", "answer")


@method("sudo.respond")
def sudo_respond(call: Call) -> dict[str, Any]:
    return _respond(call, "sudo", "password")


@method("secret.respond")
def secret_respond(call: Call) -> dict[str, Any]:
    return _respond(call, "secret", "value")


@on_client_reply
def client_replied(conn: Caller, reply: dict[str, Any]) -> bool:
    """A client's response to a server request of a session here (False: no such request here,
    perhaps another process's); late or foreign ones are dropped."""
    srq_id = reply.get("id")
    if not isinstance(srq_id, str):
        return True
    request = pending.by_srq(srq_id)
    if request is None:
        return False
    if request.session.owner_id != conn.user_id:
        return True
    answer = answer_from_reply(request.kind, reply)
    if request.kind == "approval":
        choice = answer.get("choice")
        if choice not in approvals.choices():
            answer = {"choice": "deny"}
        if answer.get("all"):
            for other in pending.for_session(request.session, "approval"):
                pending.resolve(other.request_id, {"choice": answer["choice"]})
            return True
    pending.resolve(request.request_id, answer)
    return True
