"""A process's cluster membership in-process, against a private real Redis and the in-memory
channel layer: joining once, waiting for a silent owner's lease, and the faults a worker must
survive (a message to a gone worker, a forwarded call or a request whose handler fails: the
caller gets an answer instead of waiting out its timeout). The multi-process behaviour is in
tests/test_cluster.py and tests/test_failover.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer

import ws_gateway.methods  # noqa: F401 - registers the methods
from tests.services import RedisServer, free_port
from ws_gateway import backplane as backplanes
from ws_gateway.backplane import LocalBackplane
from ws_gateway.backplane import redis as redis_backplane
from ws_gateway.backplane.base import FORWARD, REPLY
from ws_gateway.backplane.eventlog import LoggedEvent
from ws_gateway.backplane.redis import RedisBackplane as Cluster
from ws_gateway.caller import RemoteCaller
from ws_gateway.cluster import forwarding, remote
from ws_gateway.errors import RpcError
from ws_gateway.params import Params
from ws_gateway.rpc import forwarded
from ws_gateway.rpc.call import Call
from ws_gateway.rpc.registry import registry as methods


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(Path(tmp_path_factory.mktemp("membership-redis")))
    yield server
    server.stop()


@pytest.fixture
async def member(redis: RedisServer, settings: Any) -> AsyncIterator[tuple[Cluster, InMemoryChannelLayer]]:
    settings.WS_GATEWAY = {**getattr(settings, "WS_GATEWAY", {}), "REDIS_URL": redis.url, "LEASE_S": 1.0}
    layer = InMemoryChannelLayer()
    cluster = Cluster()
    await cluster.start(asyncio.get_running_loop(), layer)
    yield cluster, layer
    await cluster.shutdown()


async def test_joining_twice_on_one_loop_joins_once(member: tuple[Cluster, InMemoryChannelLayer]) -> None:
    cluster, layer = member
    channel = cluster.channel
    await cluster.start(asyncio.get_running_loop(), layer)
    assert cluster.channel == channel and cluster.shared
    for _ in range(500):  # bounded wait for the first heartbeat (written by the renewal task)
        if await cluster.alive(channel):
            break
        await asyncio.sleep(0.01)  # polling interval of a bounded wait
    assert await cluster.alive(channel)


async def test_without_redis_nothing_is_joined(settings: Any) -> None:
    settings.WS_GATEWAY = {**getattr(settings, "WS_GATEWAY", {}), "REDIS_URL": ""}
    await backplanes.start(asyncio.get_running_loop(), InMemoryChannelLayer())
    assert not backplanes.configured() and not backplanes.backplane.shared
    assert type(backplanes._current.impl) is LocalBackplane


async def test_a_silent_owners_lease_is_waited_for(member: tuple[Cluster, InMemoryChannelLayer]) -> None:
    cluster, _ = member
    # Another worker owns s1 and is alive: forward to it.
    await cluster.redis.set("wsg:w:w-alive", "1", px=60_000)
    await cluster.redis.set("wsg:o:s1", "w-alive", px=60_000)
    assert await cluster.lapse("w-alive", "s1") is False
    assert await cluster.holds("w-alive", "s1")
    # A dead worker whose lease already names someone else: adoptable at once.
    await cluster.redis.set("wsg:o:s2", "w-other", px=60_000)
    assert await cluster.lapse("w-dead", "s2") is True
    # A dead worker's lease that lapses: adoptable once it does.
    await cluster.redis.set("wsg:o:s3", "w-dead", px=200)
    assert await cluster.lapse("w-dead", "s3") is True
    assert not await cluster.holds("w-dead", "s3")
    # A lease that outlives what a dead worker's lease can (no renewal): the wait is bounded.
    await cluster.redis.set("wsg:o:s4", "w-dead", px=60_000)
    assert await cluster.lapse("w-dead", "s4") is False
    listed = await cluster.workers()  # the heartbeating workers (this one too, once it has beaten)
    assert "w-alive" in listed and "w-dead" not in listed and "w-other" not in listed


async def test_a_message_to_a_gone_worker_is_dropped_not_raised(
    member: tuple[Cluster, InMemoryChannelLayer],
) -> None:
    cluster, _ = member
    await cluster.tell("not a valid channel name!", {"type": "gw.detach"})  # logged, not raised


async def receive_reply(layer: InMemoryChannelLayer, channel: str) -> dict[str, Any]:
    return await asyncio.wait_for(layer.receive(channel), 5)


async def test_a_forwarded_call_that_fails_still_gets_an_answer(
    member: tuple[Cluster, InMemoryChannelLayer],
) -> None:
    cluster, layer = member
    caller = await layer.new_channel()
    # A forwarded message without a method: the owner's handling fails; the caller is answered.
    await layer.send(cluster.channel, {"type": FORWARD, "corr": "c1", "reply_to": caller})
    assert await receive_reply(layer, caller) == {"type": REPLY, "corr": "c1", "text": None}


async def test_a_request_whose_handler_fails_gets_an_error_answer(
    member: tuple[Cluster, InMemoryChannelLayer],
) -> None:
    cluster, layer = member

    async def broken(message: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("handler bug")

    async def fine(message: dict[str, Any]) -> dict[str, Any]:
        return {"sessions": [message["n"]]}

    cluster.receivers.requests.update({"test.broken": broken, "test.fine": fine})
    caller = await layer.new_channel()
    await layer.send(cluster.channel, {"type": "test.broken", "corr": "c2", "reply_to": caller})
    assert await receive_reply(layer, caller) == {"type": REPLY, "corr": "c2", "error": "failed"}
    # Unknown types and replies nobody waits for are ignored; the worker keeps serving.
    await layer.send(cluster.channel, {"type": "test.unknown"})
    await layer.send(cluster.channel, {"type": REPLY, "corr": "nobody-waits"})
    assert await cluster.ask(cluster.channel, {"type": "test.fine", "n": 3}, timeout=5) == {
        "type": REPLY,
        "corr": f"{cluster.channel}:1",
        "sessions": [3],
    }


async def test_the_durable_log_reads_ranges_and_bounds(member: tuple[Cluster, InMemoryChannelLayer]) -> None:
    cluster, _ = member
    assert await cluster.log_bounds("s-log") == (0, 0)
    await cluster.append(
        "s-log", [LoggedEvent(seq, {"n": seq}, f'{{"params": {{"n": {seq}}}}}', None) for seq in (1, 2, 3)]
    )
    assert await cluster.log_bounds("s-log") == (1, 3)
    assert [e.seq for e in await cluster.read_log("s-log", 0)] == [1, 2, 3]
    assert [e.seq for e in await cluster.read_log("s-log", 1, before=3)] == [2]
    assert await cluster.read_log("s-log", 2, before=3) == []  # an empty range is not a query
    replay = await cluster.replay("s-log", 1)
    assert [e.seq for e in replay.events] == [2, 3] and not replay.truncated
    assert replay.events[0].params == {"n": 2}  # parsed from the frame by the reader


async def test_a_long_durable_log_is_read_whole_across_pages(member: tuple[Cluster, Any]) -> None:
    cluster, _ = member
    count = 2 * redis_backplane.LOG_READ_PAGE + 7
    events = [LoggedEvent(seq, None, f'{{"params": {{"n": {seq}}}}}', None) for seq in range(1, count + 1)]
    await cluster.append("s-long", events)
    assert [e.seq for e in await cluster.read_log("s-long", 0)] == list(range(1, count + 1))
    middle = await cluster.read_log("s-long", 5, before=count - 2)
    assert [e.seq for e in middle] == list(range(6, count - 2))
    edge = redis_backplane.LOG_READ_PAGE
    assert [e.seq for e in await cluster.read_log("s-long", edge)] == list(range(edge + 1, count + 1))


# -- calls for sessions owned elsewhere ------------------------------------------------------------


@pytest.fixture
def routed(member: tuple[Cluster, InMemoryChannelLayer], monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """The member as this process's backplane, for the forwarding code."""
    cluster, _ = member
    monkeypatch.setattr(backplanes._current, "impl", cluster)
    return cluster


def history_call(session_id: str) -> tuple[Any, Call]:
    spec = methods.get("session.history")
    assert spec is not None
    return spec, Call(RemoteCaller("c-route", None), "session.history", Params({"session_id": session_id}))


async def test_a_call_to_a_live_owner_that_never_answers_fails_with_a_retry_hint(
    routed: Cluster, settings: Any
) -> None:
    settings.WS_GATEWAY = {**settings.WS_GATEWAY, "FORWARD_TIMEOUT_S": 0.2}
    owner = await routed.layer.new_channel()  # a worker that heartbeats but never reads
    await routed.redis.set(f"wsg:w:{owner}", "1", px=60_000)
    await routed.redis.set("wsg:o:rt-far", owner, px=60_000)
    await routed.redis.hset("wsg:m:rt-far", mapping={"key": "k", "owner_id": ""})
    spec, call = history_call("rt-far")
    with pytest.raises(RpcError) as failed:
        await forwarding.route(spec.name, call, None)  # type: ignore[arg-type]
    assert failed.value.message == "the session's worker is not answering; retry shortly"
    # The same from a handler's thread.
    located = await routed.locate("rt-far")
    assert located is not None and located.channel == owner
    with pytest.raises(remote.OwnerSilent):
        await asyncio.to_thread(remote.remote_blocking, call, located, "rt-far")


async def test_calls_that_run_here_are_not_forwarded(routed: Cluster) -> None:
    for target in ("", 5, "rt-unknown"):  # no session id, not a string, a session the cluster does not know
        spec, call = history_call(target)  # type: ignore[arg-type]
        assert await forwarding.route(spec.name, call, None) is None  # type: ignore[arg-type]
    await routed.redis.set("wsg:o:rt-mine", routed.channel, px=60_000)
    await routed.redis.hset("wsg:m:rt-mine", mapping={"key": "k2", "owner_id": ""})
    spec, call = history_call("rt-mine")
    assert await forwarding.route(spec.name, call, None) is None  # type: ignore[arg-type]


async def test_a_forwarded_call_of_an_unknown_method_is_answered_with_method_not_found() -> None:
    reply = await forwarded.serve({"method": "no.such.method", "conn_id": "c", "params": {}})
    assert reply == {"error": {"code": -32601, "message": "unknown method: no.such.method"}}


async def test_detaching_survives_a_redis_that_cannot_be_reached(
    member: tuple[Cluster, InMemoryChannelLayer], monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis.asyncio as aioredis

    cluster, _ = member
    unreachable = Cluster()
    unreachable.channel = cluster.channel
    unreachable.redis = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setattr(backplanes._current, "impl", unreachable)
    await forwarding.detach_remote(None, "c-gone", ["rt-a", "rt-b"])  # each lookup fails; logged, not raised
    await unreachable.redis.aclose()
