"""Which process serves a call: here, the owner of its session (forwarded), or here after adoption.

Installed at start-up (:func:`install`, from ``AppConfig.ready``): the RPC
dispatcher asks :func:`route` before it runs a call; the backplane hands this
module what other processes send (forwarded calls, detach notices, clients'
replies to server requests of sessions owned here).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

from .. import metrics, workers
from ..backplane import CLIENT_REPLY, DETACH, Message, backplane, receivers
from ..caller import Caller, RemoteCaller, Request
from ..errors import AGENT_FAILURE, RpcError
from ..ids import STORED_ID_RE
from ..sessions import lifecycle, reaper
from ..sessions.registry import registry as live_sessions
from ..signals import connection_closed
from . import adoption
from .remote import OwnerSilent, remote

log = logging.getLogger(__name__)

# Methods whose session_id is a stored key (or title), not a runtime id.
BY_KEY = frozenset({"session.resume", "session.delete"})
NEVER_FORWARDED = frozenset({"session.create", "session.list", "session.active_list"})

# On the owner: run a forwarded call for a remote caller (the RPC layer's, installed at start-up).
ServeForwarded = Callable[[Message], Awaitable[Message]]
# A client's reply to a server request, as the RPC layer takes it (True: it was handled).
ClientReply = Callable[[Caller, dict[str, Any]], bool]


async def route(method: str, request: Request, executor: Executor) -> dict[str, Any] | None:
    """On the loop: the forwarded result of ``request``, or None when it runs here.

    Waiting for an owner (its answer, or its lease to lapse) holds no thread;
    only an adoption (database work) runs on ``executor``, the call's own."""
    if not backplane.shared or request.forwarded or method in NEVER_FORWARDED:
        return None
    target = request.params.raw("session_id")
    if not isinstance(target, str) or not target:
        return None
    if method in BY_KEY:
        if not STORED_ID_RE.match(target) or live_sessions.by_key(target) is not None:
            return None
        session_id = await backplane.session_for_key(target)
        if session_id is None:
            return None
    else:
        session_id = target
    if live_sessions.get(session_id) is not None:
        return None
    loop = asyncio.get_running_loop()
    # A dead owner costs at most two rounds (its lease lapses, then adopt); a lost adoption race one more.
    tried_adopting = False
    for _ in range(4):
        owner = await backplane.locate(session_id)
        if owner is None or owner.channel == backplane.channel:
            return None
        if not owner.channel:
            if tried_adopting:
                return None  # nobody can adopt it (nothing stored yet): the handler answers here
            tried_adopting = True
            if await loop.run_in_executor(executor, workers.with_db, adoption.adopt, session_id, owner.meta):
                return None
            continue  # somebody else adopted it first: forward to them
        if not await backplane.alive(owner.channel):
            # No forward to a process whose heartbeat stopped: adopt once its lease lapses.
            log.info("owner %s of session=%s is silent: waiting for its lease", owner.channel, session_id)
            await backplane.lapse(owner.channel, session_id)
            continue
        try:
            result, subscriptions = await remote(request, owner, session_id)
        except OwnerSilent:
            log.warning("owner %s of session=%s did not answer", owner.channel, session_id)
            continue
        request.follow(*subscriptions)
        return result
    raise RpcError(AGENT_FAILURE, "the session's worker is not answering; retry shortly")


async def detach_remote(sender: Any, conn_id: str, sessions: list[str], **kwargs: Any) -> None:
    """A closing connection: tell the owners of the sessions it attached in other processes."""
    if not backplane.shared:
        return
    for session_id in sessions:
        if live_sessions.get(session_id) is not None:
            continue  # owned here: the sessions layer detached it
        try:
            owner = await backplane.locate(session_id)
        except Exception:
            metrics.redis_errors.labels("locate").inc()
            log.warning("could not locate session=%s to detach", session_id, exc_info=True)
            continue
        if owner is not None and owner.channel and owner.channel != backplane.channel:
            await backplane.tell(
                owner.channel, {"type": DETACH, "session_id": session_id, "conn_id": conn_id}
            )


def forward_reply(caller: Caller, reply: dict[str, Any]) -> bool:
    """A reply to a request of a session owned elsewhere: pass it to the owners (on the loop)."""
    server_requests = getattr(caller, "server_requests", None)
    if not backplane.shared or server_requests is None:
        return False
    remote_sessions = [sid for sid in server_requests if live_sessions.get(sid) is None]
    message = {"type": CLIENT_REPLY, "conn_id": caller.id, "user_id": caller.user_id, "reply": reply}

    async def send() -> None:
        for session_id in remote_sessions:
            owner = await backplane.locate(session_id)
            if owner is not None and owner.channel and owner.channel != backplane.channel:
                await backplane.tell(owner.channel, message)

    asyncio.get_running_loop().create_task(send())
    return True


def install(serve_forwarded: ServeForwarded, client_reply: ClientReply) -> None:
    """Wire the cluster policy in (once, from ``AppConfig.ready``)."""

    async def detach(message: Message) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            workers.background(), reaper.detach, message["session_id"], message["conn_id"]
        )

    async def replied(message: Message) -> None:
        client_reply(RemoteCaller(message["conn_id"], message.get("user_id")), message["reply"])

    receivers.calls = serve_forwarded
    receivers.notices[DETACH] = detach
    receivers.notices[CLIENT_REPLY] = replied
    receivers.owned = live_sessions.all
    lifecycle.install_elsewhere(adoption.resume_elsewhere)
    connection_closed.connect(detach_remote, weak=False, dispatch_uid="ws_gateway.cluster.detach_remote")
