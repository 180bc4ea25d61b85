"""The backplane seen from one process, the wiring AppConfig.ready() does, and session-scoped
methods of the public API (``@method(..., session=True)``) through a real gateway."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ws_gateway import backplane as backplanes
from ws_gateway.backplane import LocalBackplane, backplane
from ws_gateway.errors import SESSION_ID_REQUIRED, SESSION_NOT_LIVE
from ws_gateway.rpc.dispatch import _router
from ws_gateway.sessions import work
from ws_gateway.signals import connection_closed, session_stopping
from ws_gateway.testing import GatewayClient, RpcFailure
from ws_gateway.transport import policy


async def test_the_local_backplane_owns_everything_and_reaches_nobody() -> None:
    local = LocalBackplane()
    await local.start(asyncio.get_running_loop(), None)
    assert local.shared is False and local.channel is None
    assert await local.claim("s1", "k1", None, take=True) is True
    assert await local.locate("s1") is None
    assert await local.session_for_key("k1") is None
    assert await local.read_log("s1", 0) == []
    assert await local.workers() == []
    replay = await local.replay("s1", 3)
    assert (replay.events, replay.latest_seq, replay.truncated) == ([], 0, True)
    with pytest.raises(LookupError):
        await local.ask("elsewhere", {"type": "x"}, 1.0)


async def test_a_process_without_redis_url_keeps_the_local_backplane(settings: Any) -> None:
    settings.WS_GATEWAY = {**getattr(settings, "WS_GATEWAY", {}), "REDIS_URL": None}
    await backplanes.start(asyncio.get_running_loop(), None)
    assert type(backplanes._current.impl) is LocalBackplane
    assert backplane.shared is False
    assert backplanes.configured() is False


def test_ready_wired_what_the_lower_layers_ask_the_higher_ones() -> None:
    # (lookup key, receiver, is_async): the lookup key holds the dispatch_uid.
    receivers = [str(entry[0]) for entry in session_stopping.receivers]
    assert any("ws_gateway.agent.turns" in r for r in receivers)
    assert any("ws_gateway.processes" in r for r in receivers)
    closed = [str(entry[0]) for entry in connection_closed.receivers]
    assert any("ws_gateway.sessions.reaper" in r for r in closed)  # detach here
    assert any("ws_gateway.cluster.detach_remote" in r for r in closed)  # tell the owners
    assert work._builder and work._requests and work._running
    assert _router and backplanes.receivers.calls is not None


async def test_a_session_scoped_method_names_a_missing_or_foreign_session(gateway: Any) -> None:
    async with GatewayClient.connect(gateway.url) as client:
        with pytest.raises(RpcFailure) as missing:
            await client.call("test.stream", {"count": 1})
        assert missing.value.code == SESSION_ID_REQUIRED
        with pytest.raises(RpcFailure) as unknown:
            await client.call("test.stream", {"session_id": "no-such-session", "count": 1})
        assert unknown.value.code == SESSION_NOT_LIVE
        sid = (await client.call("session.create"))["session_id"]
        assert await client.call("test.stream", {"session_id": sid, "count": 3}) == {"status": "streaming"}
        done = await client.event("message.complete", sid)
        assert done["payload"]["text"] == "w0 w1 w2 "


async def test_a_failing_teardown_receiver_is_logged_and_the_others_still_run(caplog: Any) -> None:
    ran: list[str] = []

    async def broken(sender: Any, conn_id: str, **kwargs: Any) -> None:
        raise ConnectionError("backplane unreachable")

    async def counting(sender: Any, conn_id: str, **kwargs: Any) -> tuple[int, int]:
        ran.append(conn_id)
        return 1, 2

    connection_closed.connect(broken, weak=False, dispatch_uid="test.broken")
    connection_closed.connect(counting, weak=False, dispatch_uid="test.counting")
    try:
        assert await policy.closed("conn-x", []) == (1, 2)  # the sessions receiver adds (0, 0)
    finally:
        connection_closed.disconnect(dispatch_uid="test.broken")
        connection_closed.disconnect(dispatch_uid="test.counting")
    assert ran == ["conn-x"]
    assert "teardown of conn=conn-x failed" in caplog.text
