"""Calls from other processes: a forwarded call run here for a caller whose socket is elsewhere."""

from __future__ import annotations

import asyncio
from typing import Any

from .. import workers
from ..caller import RemoteCaller
from ..errors import METHOD_NOT_FOUND, RpcError
from ..params import Params
from .call import Call
from .dispatch import bind_call
from .registry import registry


async def serve(message: dict[str, Any]) -> dict[str, Any]:
    """On the owner: run a forwarded call; its result (or error) and the subscriptions it made."""
    spec = registry.get(message["method"])
    if spec is None:
        return {"error": {"code": METHOD_NOT_FOUND, "message": f"unknown method: {message['method']}"}}
    staff = bool(message.get("is_staff"))
    conn = RemoteCaller(message["conn_id"], message.get("user_id"), is_staff=staff)
    call = Call(conn, spec.name, Params(message.get("params") or {}), None, forwarded=True)

    def invoke() -> dict[str, Any]:
        try:
            with bind_call(call):
                result = workers.with_db(spec.handler, call)
        except RpcError as exc:
            return {"error": exc.to_error()}
        return {"result": result if result is not None else {}}

    loop = asyncio.get_running_loop()
    reply = await loop.run_in_executor(workers.pool(), invoke)
    reply["subscriptions"] = [[s.session_id, s.baseline, s.server_requests] for s in call.subscriptions]
    return reply
