"""Disconnects, parking, reconnect-and-resume, and every way a session is reclaimed (section 5)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import uuid
from datetime import datetime

import pytest

from tests.helpers import eventually, server_saw_close, sleeping
from ws_gateway.testing import GatewayClient, RpcFailure

pytestmark = pytest.mark.db


async def reclaimed(observer: GatewayClient, sid: str, timeout: float = 15) -> dict:
    event = await observer.wait_for(
        lambda: next(
            (e for e in observer.find_events("session.reclaimed") if e["payload"]["session_id"] == sid), None
        ),
        timeout,
    )
    assert event["session_id"] == "" and "seq" not in event
    return event["payload"]


async def test_reconnect_within_grace_keeps_runtime_id_and_replays_missed_events(gateway):
    first = await GatewayClient.open(gateway.url)
    created = await first.call("session.create")
    sid, key = created["session_id"], created["stored_session_id"]
    await first.call("test.stream", {"session_id": sid, "count": 300, "delay_ms": 3})
    await first.wait_for(lambda: len(first.find_events("message.delta", sid)) >= 3)
    await first.close()
    seen = first.find_events(session_id=sid)
    last_seen = seen[-1]["seq"]

    async with GatewayClient.connect(gateway.url) as second:
        resumed = await second.call("session.resume", {"session_id": key})
        assert resumed["session_id"] == sid
        await second.event("message.complete", sid, timeout=30)
        replay = await second.call("session.events.since", {"session_id": sid, "last_seen": last_seen})
        assert replay["truncated"] is False
        events = seen + replay["events"]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        text = "".join(e["payload"]["text"] for e in events if e["type"] == "message.delta")
        assert text == "".join(f"w{i} " for i in range(300))
        # What arrived live after the resume is the same tail, never a duplicate.
        live_after = second.find_events(session_id=sid)
        assert live_after == replay["events"][-len(live_after) :]


def logged_at(gateway, pattern: str) -> datetime | None:
    """The server's own time (its log line's timestamp) of the first line matching ``pattern``."""
    found = re.search(r"^(\S+ \S+) \S+ \S+ .*" + pattern, gateway.log_text(), re.MULTILINE)
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f") if found else None


async def test_orphan_is_reclaimed_after_grace_and_every_client_hears(gateways):
    grace = 1.0
    gateway = gateways.shared("memory", ORPHAN_GRACE_S=grace)
    async with GatewayClient.connect(gateway.url) as watcher1, GatewayClient.connect(gateway.url) as watcher2:
        owner = await GatewayClient.open(gateway.url)
        created = await owner.call("session.create")
        sid = created["session_id"]
        await owner.event("session.info", sid)
        port = owner.ws.local_address[1]
        await owner.close()
        await server_saw_close(gateway, owner)
        # Half the grace on the server's clock: still there (a 1000x shorter grace is caught here).
        await watcher1.call("test.after", {"ms": int(grace * 500)})
        assert not watcher1.find_events("session.reclaimed")
        assert sid in [s["id"] for s in (await watcher1.call("session.active_list"))["sessions"]]
        for watcher in (watcher1, watcher2):
            payload = await reclaimed(watcher, sid)
            assert payload == {
                "session_id": sid,
                "stored_session_id": created["stored_session_id"],
                "reason": "ws_orphan_reap",
            }
        with pytest.raises(RpcFailure) as err:
            await watcher1.call("session.activate", {"session_id": sid})
        assert err.value.code == 4001
    # Lower bound on the server's clock: the reclaim came a whole grace after the client left.
    left = logged_at(gateway, f"ws closed peer=127.0.0.1:{port} ")
    ended = logged_at(gateway, f"session ended session={sid} .*reason=ws_orphan_reap")
    assert (ended - left).total_seconds() >= grace * 0.9  # the log line follows parking by a moment


async def test_close_on_disconnect_reaps_at_once(gateway):
    async with GatewayClient.connect(gateway.url) as watcher:
        owner = await GatewayClient.open(gateway.url)
        created = await owner.call("session.create", {"close_on_disconnect": True})
        sid = created["session_id"]
        await owner.close()
        # The default grace is 20 s: hearing within a few seconds means it did not wait for it.
        payload = await reclaimed(watcher, sid, timeout=5)
        assert payload["reason"] == "ws_disconnect"
        with pytest.raises(RpcFailure) as err:
            await watcher.call("session.resume", {"session_id": created["stored_session_id"]})
        assert err.value.code == 4007
    line = await eventually(
        lambda: next(
            (
                m
                for m in re.finditer(r"ws closed peer=\S+ reason=\S+ (.*)", gateway.log_text())
                if "reaped_sessions=1" in m.group(1)
            ),
            None,
        )
    )
    for field in ("messages=", "parse_errors=", "dispatch_crashes=", "send_failures=", "detached_sessions="):
        assert field in line.group(0)


async def test_idle_sessions_are_reclaimed_after_the_ttl(gateways):
    gateway = gateways.shared("memory", ORPHAN_GRACE_S=0, IDLE_TTL_S=1.0, SWEEP_INTERVAL_S=0.3)
    async with GatewayClient.connect(gateway.url) as watcher:
        owner = await GatewayClient.open(gateway.url)
        sid = (await owner.call("session.create"))["session_id"]
        await owner.close()
        assert (await reclaimed(watcher, sid))["reason"] == "idle_timeout"


async def test_live_session_cap_evicts_least_recent_clientless_idle_sessions(gateways):
    gateway = gateways.shared("memory", ORPHAN_GRACE_S=0, MAX_LIVE_SESSIONS=2)
    async with GatewayClient.connect(gateway.url) as watcher:
        owner = await GatewayClient.open(gateway.url)
        first = (await owner.call("session.create"))["session_id"]
        second = (await owner.call("session.create"))["session_id"]
        await owner.close()
        await server_saw_close(gateway, owner)  # both sessions are clientless now
        third = (await watcher.call("session.create"))["session_id"]
        assert (await reclaimed(watcher, first))["reason"] == "lru_evict"
        await watcher.call("session.create")
        assert (await reclaimed(watcher, second))["reason"] == "lru_evict"
        with pytest.raises(RpcFailure) as err:
            await watcher.call("session.create")
        assert err.value.code == 4090 and err.value.data == {"reason": "process"}
        assert (await watcher.call("session.history", {"session_id": third}))["count"] == 0


async def test_idle_socket_stays_open_past_ten_seconds_on_redis(gateways):
    gateway = gateways.shared("redis")
    async with GatewayClient.connect(gateway.url) as client:
        sid = (await client.call("session.create"))["session_id"]
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(client.closed), 11)
        assert await client.call("gateway.ping") == {"ok": True}
        assert (await client.call("session.history", {"session_id": sid}))["count"] == 0


async def test_close_on_disconnect_waits_for_the_last_client(gateway):
    async with GatewayClient.connect(gateway.url) as watcher:
        owner = await GatewayClient.open(gateway.url)
        created = await owner.call("session.create", {"close_on_disconnect": True})
        sid = created["session_id"]
        second = await GatewayClient.open(gateway.url)
        assert (await second.call("session.resume", {"session_id": created["stored_session_id"]}))[
            "session_id"
        ] == sid
        await owner.close()
        await server_saw_close(gateway, owner)
        # The owner's leaving detached nothing: the session still has a client.
        port = owner.ws.local_address[1]
        line = re.search(rf"ws closed peer=127.0.0.1:{port} .*", gateway.log_text()).group(0)
        assert "reaped_sessions=0" in line and "detached_sessions=0" in line
        assert (await second.call("session.history", {"session_id": sid}))["count"] == 0
        # (Other tests' sessions on this shared gateway may be reclaimed meanwhile.)
        assert not [e for e in watcher.find_events("session.reclaimed") if e["payload"]["session_id"] == sid]
        await second.close()
        assert (await reclaimed(watcher, sid, timeout=5))["reason"] == "ws_disconnect"


async def test_live_session_cap_spares_sessions_with_pending_work(gateways):
    gateway = gateways.shared("memory", ORPHAN_GRACE_S=0, MAX_LIVE_SESSIONS=2)
    async with GatewayClient.connect(gateway.url) as watcher:
        owner = await GatewayClient.open(gateway.url)
        busy = (await owner.call("session.create"))["session_id"]  # the least recent one...
        await owner.call("prompt.submit", {"session_id": busy, "text": "!clarify Wait for me?"})
        await owner.event("clarify.request", busy)  # ...but its turn waits for an answer
        idle = (await owner.call("session.create"))["session_id"]
        await owner.close()
        await server_saw_close(gateway, owner)
        await watcher.call("session.create")
        assert (await reclaimed(watcher, idle))["reason"] == "lru_evict"
        assert busy in [s["id"] for s in (await watcher.call("session.active_list"))["sessions"]]


@pytest.mark.parametrize("work", ["clarify", "process"])
async def test_idle_sweep_spares_sessions_with_pending_work(gateways, work):
    gateway = gateways.shared("memory", ORPHAN_GRACE_S=0, IDLE_TTL_S=1.0, SWEEP_INTERVAL_S=0.3)
    duration = f"{3000 + uuid.uuid4().int % 1000}.75"  # names this test's process among the machine's
    async with GatewayClient.connect(gateway.url) as watcher:
        owner = await GatewayClient.open(gateway.url)
        busy = (await owner.call("session.create"))["session_id"]
        if work == "clarify":  # a turn waiting for an answer
            await owner.call("prompt.submit", {"session_id": busy, "text": "!clarify Wait for me?"})
            await owner.event("clarify.request", busy)
        else:  # a background process, its turn over
            await owner.call("prompt.submit", {"session_id": busy, "text": f"!bg sleep {duration}"})
            await owner.event("message.complete", busy)
            await eventually(lambda: sleeping(duration))
        idle = (await owner.call("session.create"))["session_id"]  # created after the busy one
        await owner.close()
        try:
            assert (await reclaimed(watcher, idle))["reason"] == "idle_timeout"
            await watcher.call("test.after", {"ms": 700})  # two more sweeps on the server's clock
            assert busy in [s["id"] for s in (await watcher.call("session.active_list"))["sessions"]]
            assert not [
                e for e in watcher.find_events("session.reclaimed") if e["payload"]["session_id"] == busy
            ]
        finally:
            for pid in sleeping(duration):
                os.kill(pid, signal.SIGKILL)


async def test_per_user_cap_evicts_that_users_clientless_sessions_then_refuses(gateways):
    gateway = gateways.shared("memory", ORPHAN_GRACE_S=0, MAX_SESSIONS_PER_USER=2)
    async with GatewayClient.connect(gateway.url) as watcher:
        owner = await GatewayClient.open(gateway.url)
        first = (await owner.call("session.create"))["session_id"]
        await owner.close()
        await server_saw_close(gateway, owner)  # the first session is clientless now
        await watcher.call("session.create")
        await watcher.call("session.create")  # over the cap: the clientless one goes
        assert (await reclaimed(watcher, first))["reason"] == "lru_evict"
        with pytest.raises(RpcFailure) as err:  # both left are attached: nothing to evict
            await watcher.call("session.create")
        assert err.value.code == 4090 and err.value.data == {"reason": "user"}
