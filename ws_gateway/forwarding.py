"""Calls for sessions owned by another process: forward them, or adopt a session whose owner died.

The dispatcher asks :func:`route` on the event loop before a call runs on a
thread: a forwarded call waits for its answer on the loop, so a slow or dead
owner holds none of the shared pool's threads and other users' calls on this
process go ahead. A dead owner is recognised by its stopped heartbeat: no call
is forwarded to it, and one already forwarded fails over once its lease lapses.
:func:`run_forwarded` serves the other side on the owner.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from typing import Any

from . import metrics, workers
from .cluster import DETACH, Owner, OwnerGone, RemoteConnection, cluster
from .conf import gateway_settings
from .ids import STORED_ID_RE
from .rpc import dispatch
from .rpc.call import Call, Params
from .rpc.errors import AGENT_FAILURE, RpcError
from .rpc.registry import MethodSpec, registry
from .sessions import service
from .sessions.registry import registry as sessions

log = logging.getLogger(__name__)

# Methods whose session_id is a stored key (or title), not a runtime id.
BY_KEY = frozenset({"session.resume", "session.delete"})
NEVER_FORWARDED = frozenset({"session.create", "session.list", "session.active_list"})


async def route(spec: MethodSpec, call: Call, executor: Executor) -> dict[str, Any] | None:
    """On the loop: the forwarded result of ``call``, or None when it runs here.

    Waiting for an owner (its answer, or its lease to lapse) holds no thread;
    only an adoption (database work) runs on ``executor``, the call's own."""
    if not cluster.active or call.forwarded or spec.name in NEVER_FORWARDED:
        return None
    target = call.params.raw("session_id")
    if not isinstance(target, str) or not target:
        return None
    if spec.name in BY_KEY:
        if not STORED_ID_RE.match(target) or sessions.by_key(target) is not None:
            return None
        session_id = await cluster.session_for_key(target)
        if session_id is None:
            return None
    else:
        session_id = target
    if sessions.get(session_id) is not None:
        return None
    loop = asyncio.get_running_loop()
    # A dead owner costs at most two rounds (its lease lapses, then adopt); a lost adoption race one more.
    tried_adopting = False
    for _ in range(4):
        owner = await cluster.locate(session_id)
        if owner is None or owner.channel == cluster.channel:
            return None
        if not owner.channel:
            if tried_adopting:
                return None  # nobody can adopt it (nothing stored yet): the handler answers here
            tried_adopting = True
            if await loop.run_in_executor(executor, workers.with_db, service.adopt, session_id, owner.meta):
                return None
            continue  # somebody else adopted it first: forward to them
        if not await cluster.alive(owner.channel):
            # No forward to a process whose heartbeat stopped: adopt once its lease lapses.
            log.info("owner %s of session=%s is silent: waiting for its lease", owner.channel, session_id)
            await cluster.lapse(owner.channel, session_id)
            continue
        try:
            return await remote(call, owner, session_id)
        except OwnerSilent:
            log.warning("owner %s of session=%s did not answer", owner.channel, session_id)
    raise RpcError(AGENT_FAILURE, "the session's worker is not answering; retry shortly")


class OwnerSilent(Exception):
    """The owner's worker did not answer a forwarded call (it died, or timed out)."""


async def remote(call: Call, owner: Owner, session_id: str) -> dict[str, Any]:
    """Run ``call`` on the owner; its subscriptions become this call's."""
    message = {
        "method": call.method,
        "params": call.params.data,
        "conn_id": call.conn.id,
        "user_id": call.conn.user_id,
        "is_staff": call.conn.is_staff,
    }
    try:
        reply = await cluster.forward(owner.channel, session_id, message)
    except (TimeoutError, OwnerGone):
        metrics.forwarded["owner_silent"].inc()
        raise OwnerSilent(owner.channel) from None
    metrics.forwarded["error" if "error" in reply else "ok"].inc()
    for sid, baseline, server_requests in reply.get("subscriptions", []):
        call.subscribe(sid, baseline, server_requests)
    if "error" in reply:
        error = reply["error"]
        raise RpcError(error["code"], error["message"], error.get("data"))
    return reply.get("result") or {}


def remote_blocking(call: Call, owner: Owner, session_id: str) -> dict[str, Any]:
    """:func:`remote` from a worker thread (a handler that finds its session live elsewhere)."""
    timeout = gateway_settings.FORWARD_TIMEOUT_S + gateway_settings.LEASE_S
    return cluster.run(remote(call, owner, session_id), timeout=timeout)


async def run_forwarded(message: dict[str, Any]) -> dict[str, Any]:
    """On the owner: run a forwarded call for a remote caller."""
    spec = registry.get(message["method"])
    if spec is None:
        return {"error": {"code": -32601, "message": f"unknown method: {message['method']}"}}
    staff = bool(message.get("is_staff"))
    conn = RemoteConnection(message["conn_id"], message.get("user_id"), is_staff=staff)
    call = Call(conn, spec.name, Params(message.get("params") or {}), None, forwarded=True)

    def invoke() -> dict[str, Any]:
        try:
            with dispatch.bind_call(call):
                result = workers.with_db(spec.handler, call)
        except RpcError as exc:
            return {"error": exc.to_error()}
        return {"result": result if result is not None else {}}

    loop = asyncio.get_running_loop()
    reply = await loop.run_in_executor(workers.pool(), invoke)
    reply["subscriptions"] = [[s.session_id, s.baseline, s.server_requests] for s in call.subscriptions]
    return reply


async def detach_remote(conn_id: str, session_ids: list[str]) -> None:
    """Tell the owners of sessions this (closing) connection attached elsewhere."""
    for session_id in session_ids:
        if sessions.get(session_id) is not None:
            continue
        try:
            owner = await cluster.locate(session_id)
        except Exception:
            metrics.redis_errors.labels("locate").inc()
            log.warning("could not locate session=%s to detach", session_id, exc_info=True)
            continue
        if owner is not None and owner.channel and owner.channel != cluster.channel:
            await cluster.tell(owner.channel, {"type": DETACH, "session_id": session_id, "conn_id": conn_id})


dispatch.route_hook = route
