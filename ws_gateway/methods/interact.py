"""Answers from people: ``approval.respond``, ``approval.pending``, ``clarify.respond``,
``sudo.respond``, ``secret.respond``, and replies to server requests (PROTOCOL.md section 8)."""

from __future__ import annotations

from typing import Any

from ..agent import approvals
from ..agent.pending import answer_from_reply, pending
from ..backplane.redis import CLIENT_REPLY, cluster
from ..errors import BAD_VALUE, BUSY, invalid_params
from ..rpc import RpcError, dispatch, method
from ..rpc.call import Call
from ..sessions import service
from ..sessions.registry import registry as sessions
from ..transport.connection import Connection


@method("approval.respond")
def approval_respond(call: Call) -> dict[str, Any]:
    p = call.params
    live = service.get_live(p.session_id(), call.conn.user_id)
    choice = p.str("choice", "deny")
    if choice not in approvals.choices():
        raise RpcError(BAD_VALUE, f"choice must be one of {', '.join(approvals.choices())}")
    waiting = pending.for_session(live, "approval")
    request_id = p.str("request_id")
    if request_id is not None:
        targets = [r for r in waiting if r.request_id == request_id]
    elif p.bool("all"):
        targets = waiting
    else:
        targets = waiting[:1]
    resolved = sum(1 for r in targets if pending.resolve(r.request_id, {"choice": choice}) == "ok")
    return {"resolved": resolved}


@method("approval.pending")
def approval_pending(call: Call) -> dict[str, Any]:
    live = service.get_live(call.params.session_id(), call.conn.user_id)
    return {"approvals": [r.public() for r in pending.for_session(live, "approval")]}


def _respond(call: Call, kind: str, field: str) -> dict[str, Any]:
    p = call.params
    request_id = p.str("request_id")
    if not request_id:
        raise invalid_params("request_id required")
    value = p.str(field, "") or ""
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


def on_client_reply(conn: Connection, reply: dict[str, Any]) -> None:
    """A client's response to a server request; late, unknown or foreign ones are dropped."""
    srq_id = reply.get("id")
    if not isinstance(srq_id, str):
        return
    request = pending.by_srq(srq_id)
    if request is None:
        _forward_reply(conn, reply)
        return
    if request.session.owner_id != conn.user_id:
        return
    answer = answer_from_reply(request.kind, reply)
    if request.kind == "approval":
        choice = answer.get("choice")
        if choice not in approvals.choices():
            answer = {"choice": "deny"}
        if answer.get("all"):
            for other in pending.for_session(request.session, "approval"):
                pending.resolve(other.request_id, {"choice": answer["choice"]})
            return
    pending.resolve(request.request_id, answer)


def _forward_reply(conn: Connection, reply: dict[str, Any]) -> None:
    """A reply to a request of a session owned elsewhere: pass it to the owners (on the loop)."""
    if not cluster.active or not isinstance(conn, Connection):
        return
    remote = [sid for sid in conn.server_requests if sessions.get(sid) is None]
    message = {"type": CLIENT_REPLY, "conn_id": conn.id, "user_id": conn.user_id, "reply": reply}

    async def send() -> None:
        for session_id in remote:
            owner = await cluster.locate(session_id)
            if owner is not None and owner.channel and owner.channel != cluster.channel:
                await cluster.tell(owner.channel, message)

    cluster.loop.create_task(send())


dispatch.client_reply_hook = on_client_reply
