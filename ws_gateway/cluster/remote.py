"""Running a call on the process that owns its session, and waiting for the answer on the loop."""

from __future__ import annotations

from typing import Any

from .. import metrics
from ..backplane import Owner, OwnerGone, backplane
from ..caller import Request, Subscription
from ..conf import gateway_settings
from ..errors import RpcError


class OwnerSilent(Exception):
    """The owner's worker did not answer a forwarded call (it died, or timed out)."""


async def remote(
    request: Request, owner: Owner, session_id: str
) -> tuple[dict[str, Any], list[Subscription]]:
    """Run ``request`` on the owner: its result, and the subscriptions it made there (now the caller's)."""
    message = {
        "method": request.method,
        "params": request.params.data,
        "conn_id": request.conn.id,
        "user_id": request.conn.user_id,
        "is_staff": request.conn.is_staff,
    }
    try:
        reply = await backplane.forward(owner.channel, session_id, message)
    except (TimeoutError, OwnerGone):
        metrics.forwarded["owner_silent"].inc()
        raise OwnerSilent(owner.channel) from None
    metrics.forwarded["error" if "error" in reply else "ok"].inc()
    subscriptions = [
        Subscription(sid, baseline, srq) for sid, baseline, srq in reply.get("subscriptions", [])
    ]
    if "error" in reply:
        request.follow(*subscriptions)
        error = reply["error"]
        raise RpcError(error["code"], error["message"], error.get("data"))
    return reply.get("result") or {}, subscriptions


def remote_blocking(
    request: Request, owner: Owner, session_id: str
) -> tuple[dict[str, Any], list[Subscription]]:
    """:func:`remote` from a worker thread (a handler that finds its session live elsewhere)."""
    timeout = gateway_settings.FORWARD_TIMEOUT_S + gateway_settings.LEASE_S
    outcome: tuple[dict[str, Any], list[Subscription]] = backplane.run(
        remote(request, owner, session_id), timeout=timeout
    )
    return outcome
