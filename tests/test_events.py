"""Seq-stamped events, delta merging and replay (PROTOCOL.md section 6)."""

from __future__ import annotations

import asyncio

import pytest

from ws_gateway.testing import GatewayClient, RpcFailure

STREAMS = 20
DELTAS = 300


def expected_text(count: int) -> str:
    return "".join(f"w{i} " for i in range(count))


def session_events(client: GatewayClient, sid: str) -> list[dict]:
    return client.find_events(session_id=sid)


def assert_contiguous(events: list[dict]) -> None:
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "gap or reorder in seq"


def streamed_text(events: list[dict]) -> str:
    return "".join(e["payload"]["text"] for e in events if e["type"] == "message.delta")


async def test_concurrent_thread_streams_arrive_in_order_without_gaps(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        sids = [(await client.call("session.create"))["session_id"] for _ in range(STREAMS)]
        for sid in sids:
            await client.event("session.info", sid)
        await asyncio.gather(
            *(client.call("test.stream", {"session_id": sid, "count": DELTAS}) for sid in sids)
        )
        for sid in sids:
            await client.event("message.complete", sid, timeout=30)
        for sid in sids:
            events = session_events(client, sid)
            assert events[0]["seq"] == 1
            assert_contiguous(events)
            types = [e["type"] for e in events]
            assert types[:2] == ["session.info", "message.start"] and types[-1] == "message.complete"
            assert streamed_text(events) == expected_text(DELTAS)
            assert events[-1]["payload"]["text"] == expected_text(DELTAS)


async def test_deltas_are_merged_into_fewer_events(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        sid = (await client.call("session.create"))["session_id"]
        await client.call("test.stream", {"session_id": sid, "count": 1000})
        await client.event("message.complete", sid, timeout=30)
        deltas = [e for e in session_events(client, sid) if e["type"] == "message.delta"]
        assert len(deltas) < 1000
        assert streamed_text(deltas) == expected_text(1000)


async def test_events_since_replays_exactly_what_was_sent(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        sid = (await client.call("session.create"))["session_id"]
        await client.call("test.stream", {"session_id": sid, "count": 200})
        await client.event("message.complete", sid, timeout=30)
        live = session_events(client, sid)
        replay = await client.call("session.events.since", {"session_id": sid, "last_seen": 0})
        assert replay["events"] == live
        assert replay["latest_seq"] == live[-1]["seq"] and replay["count"] == len(live)
        assert replay["truncated"] is False
        assert replay["epoch"] == client.ready["params"]["payload"]["replay_epoch"]
        tail = await client.call("session.events.since", {"session_id": sid, "last_seen": 3})
        assert [e["seq"] for e in tail["events"]] == [e["seq"] for e in live[3:]]
        ahead = await client.call("session.events.since", {"session_id": sid, "last_seen": 10**6})
        assert ahead["truncated"] is True and ahead["events"] == []
        with pytest.raises(RpcFailure) as err:
            await client.call("session.events.since", {"session_id": sid, "last_seen": -1})
        assert err.value.code == -32602


async def test_old_events_are_evicted_without_renumbering(gateways):
    gateway = gateways.shared("memory", EVENT_LOG_MAX_EVENTS=600, EVENT_LOG_MIN_EVENTS=512, DELTA_FLUSH_MS=0)
    async with GatewayClient.connect(gateway.url) as client:
        sid = (await client.call("session.create"))["session_id"]
        await client.call("test.stream", {"session_id": sid, "count": 800})
        await client.event("message.complete", sid, timeout=60)
        live = session_events(client, sid)
        assert_contiguous(live)
        replay = await client.call("session.events.since", {"session_id": sid, "last_seen": 0})
        assert replay["truncated"] is True
        assert 512 <= replay["count"] <= 600
        assert replay["events"] == live[-replay["count"] :]
        recent = await client.call("session.events.since", {"session_id": sid, "last_seen": live[-10]["seq"]})
        assert recent["truncated"] is False and recent["events"] == live[-9:]
