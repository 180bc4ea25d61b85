"""Several daphne workers on one Redis (PROTOCOL.md section 11): any worker, failover, drain, Redis faults."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest
import websockets

from tests.helpers import server_saw_close, stored_rows
from ws_gateway.testing import GatewayClient, RpcFailure

pytestmark = pytest.mark.db

TOKENS = " ".join(f"t{i}" for i in range(1, 201))


def seqs(events: list[dict]) -> list[int]:
    return [e["seq"] for e in events]


def deltas(events: list[dict]) -> str:
    return "".join(e["payload"]["text"] for e in events if e["type"] == "message.delta")


def turn_ended(client: GatewayClient, sid: str, turns: int) -> bool:
    """The client has the ``turns``-th message.complete and the session.info that follows it."""
    completes = client.find_events("message.complete", sid)
    if len(completes) < turns:
        return False
    return any(e["seq"] > completes[turns - 1]["seq"] for e in client.find_events("session.info", sid))


async def resume_retrying(client: GatewayClient, key: str, attempts: int = 20) -> dict:
    """Resume as a client does after losing its worker: retry while the session changes hands."""
    for _ in range(attempts):
        try:
            return await client.call("session.resume", {"session_id": key})
        except RpcFailure as failure:
            if failure.code != 5000:
                raise
    raise AssertionError("session never became resumable")


@pytest.mark.parametrize("redis_layer", ["pubsub", "core"])
async def test_session_is_driven_from_any_worker(clusters, redis_layer):
    cluster, _ = clusters(3, redis_layer=redis_layer)
    w1, w2, w3 = cluster.workers
    async with (
        GatewayClient.connect(w1.url) as a,
        GatewayClient.connect(w2.url) as b,
        GatewayClient.connect(w3.url) as c,
    ):
        created = await a.call("session.create")
        sid, key = created["session_id"], created["stored_session_id"]
        await a.event("session.info", sid)
        resumed = await b.call("session.resume", {"session_id": key})
        assert resumed["session_id"] == sid
        await c.call("session.activate", {"session_id": sid})

        assert (await c.call("prompt.submit", {"session_id": sid, "text": "hello from three"}))[
            "status"
        ] == "streaming"
        await c.event("message.complete", sid)
        assert await c.call("prompt.submit", {"session_id": sid, "text": "!approve echo cross-worker"})
        request = await b.event("approval.request", sid)
        assert await c.call("approval.respond", {"session_id": sid, "choice": "once"}) == {"resolved": 1}
        await a.wait_for(lambda: len(a.find_events("message.complete", sid)) == 2, timeout=15)

        await b.call("prompt.submit", {"session_id": sid, "text": "!stream 1000 5"})
        await a.wait_for(lambda: len(a.find_events("message.delta", sid)) > 3, timeout=15)
        assert (await c.call("session.interrupt", {"session_id": sid}))["status"] == "interrupted"
        for client in (a, b, c):
            await client.wait_for(lambda cl=client: turn_ended(cl, sid, 3), timeout=15)

        complete = [e["payload"] for e in a.find_events("message.complete", sid)]
        assert complete[0]["text"] == "You said: hello from three"
        assert complete[1]["text"] == "Ran: echo cross-worker (exit 0)\ncross-worker"
        assert complete[2]["status"] == "interrupted"
        assert request["payload"]["command"] == "echo cross-worker"
        # Every client saw every event from the moment it attached, in order, without a gap.
        a_seqs = seqs(a.find_events(session_id=sid))
        assert a_seqs == list(range(1, len(a_seqs) + 1))
        for client in (b, c):
            mine = seqs(client.find_events(session_id=sid))
            assert mine == a_seqs[a_seqs.index(mine[0]) :]
        history = await b.call("session.history", {"session_id": sid})
        assert [m["role"] for m in history["messages"]] == [
            "user",
            "assistant",
            "user",
            "tool",
            "assistant",
            "user",
            "assistant",
        ]


async def test_owner_killed_mid_turn_is_adopted_with_its_transcript(clusters, server_database_url):
    cluster, _ = clusters(3)
    w1, w2, _ = cluster.workers
    a = await GatewayClient.open(w1.url)
    created = await a.call("session.create")
    sid, key = created["session_id"], created["stored_session_id"]
    await a.call("prompt.submit", {"session_id": sid, "text": "!stream 200 20"})
    await a.wait_for(lambda: len(a.find_events("message.delta", sid)) >= 3)
    w1.signal(signal.SIGKILL)
    await asyncio.wait_for(a.closed, 10)
    seen = a.find_events(session_id=sid)

    async with GatewayClient.connect(w2.url) as b:
        resumed = await resume_retrying(b, key)
        assert resumed["session_id"] == sid
        replay = await b.call("session.events.since", {"session_id": sid, "last_seen": seen[-1]["seq"]})
        events = seen + replay["events"]
        assert seqs(events) == list(range(1, len(events) + 1))
        complete = next(e for e in events if e["type"] == "message.complete")
        assert complete["payload"]["status"] == "interrupted"
        partial = complete["payload"]["text"]
        assert partial == deltas(events) and TOKENS.startswith(partial) and partial
        assert any(e["type"] == "status.update" and e["payload"]["kind"] == "failover" for e in events)
        assert resumed["messages"][0]["text"] == "!stream 200 20"
        assert stored_rows(server_database_url, key) == [("user", "!stream 200 20"), ("assistant", partial)]
        # The session works again on its new owner.
        await b.call("prompt.submit", {"session_id": sid, "text": "still here"})
        await b.wait_for(
            lambda: any(
                e["payload"]["text"] == "You said: still here" for e in b.find_events("message.complete", sid)
            )
        )


async def stream_then_sigterm(worker, prompt: str) -> tuple[GatewayClient, str, str]:
    """Start a streaming turn on ``worker``, SIGTERM it, and see the socket closed with 4012."""
    client = await GatewayClient.open(worker.url)
    created = await client.call("session.create")
    sid, key = created["session_id"], created["stored_session_id"]
    await client.call("prompt.submit", {"session_id": sid, "text": prompt})
    await client.wait_for(lambda: client.find_events("message.delta", sid))
    worker.signal(signal.SIGTERM)
    closed = await asyncio.wait_for(client.closed, 20)
    assert closed.rcvd.code == 4012
    return client, sid, key


async def test_sigterm_drains_with_4012_and_the_turn_completes(clusters, server_database_url):
    cluster, _ = clusters(2, DRAIN_S=10.0)
    w1, w2 = cluster.workers
    a, sid, key = await stream_then_sigterm(w1, "!stream 100 10")
    draining = a.find_events("gateway.draining")
    assert draining and draining[0]["session_id"] == ""
    complete = a.find_events("message.complete", sid)
    assert complete and complete[0]["payload"]["text"] == " ".join(f"t{i}" for i in range(1, 101))
    async with GatewayClient.connect(w2.url) as b:
        resumed = await resume_retrying(b, key)
        assert resumed["session_id"] == sid and resumed["running"] is False
        assert [m["role"] for m in resumed["messages"]] == ["user", "assistant"]
        replay = await b.call("session.events.since", {"session_id": sid, "last_seen": 0})
        assert seqs(replay["events"])[: len(a.find_events(session_id=sid))] == seqs(
            a.find_events(session_id=sid)
        )
    assert stored_rows(server_database_url, key)[-1] == ("assistant", complete[0]["payload"]["text"])


async def test_sigterm_interrupts_and_stores_a_turn_longer_than_the_window(clusters, server_database_url):
    cluster, _ = clusters(2, DRAIN_S=0.5)
    w1, w2 = cluster.workers
    a, sid, key = await stream_then_sigterm(w1, "!stream 1000 20")
    complete = a.find_events("message.complete", sid)[0]["payload"]
    assert complete["status"] == "interrupted"
    async with GatewayClient.connect(w2.url) as b:
        resumed = await resume_retrying(b, key)
        assert resumed["messages"][-1]["text"] == complete["text"]
    assert stored_rows(server_database_url, key) == [
        ("user", "!stream 1000 20"),
        ("assistant", complete["text"]),
    ]


async def test_redis_restart_mid_stream_is_recovered_through_replay(clusters):
    cluster, redis = clusters(2)
    w1, w2 = cluster.workers
    async with GatewayClient.connect(w1.url) as a, GatewayClient.connect(w2.url) as b:
        created = await a.call("session.create")
        sid, key = created["session_id"], created["stored_session_id"]
        await a.event("session.info", sid)
        await b.call("session.resume", {"session_id": key})
        await a.call("prompt.submit", {"session_id": sid, "text": "!stream 200 15"})
        await b.wait_for(lambda: len(b.find_events("message.delta", sid)) >= 2, timeout=15)
        redis.stop()
        redis.start()
        await a.wait_for(lambda: a.find_events("message.complete", sid), timeout=30)
        expected = " ".join(f"t{i}" for i in range(1, 201))
        # The owner's client never lost a word.
        assert deltas(a.find_events(session_id=sid)) == expected
        # The other worker's client may have lost events with Redis; replay from the owner fills them in.
        replay = await b.call("session.events.since", {"session_id": sid, "last_seen": 0}, timeout=20)
        assert replay["truncated"] is False
        assert seqs(replay["events"]) == list(range(1, replay["latest_seq"] + 1))
        assert deltas(replay["events"]) == expected
        assert (await b.call("gateway.ping")) == {"ok": True}


async def test_a_client_that_stops_reading_is_closed_with_4008_and_memory_stays_bounded(gateways):
    import websockets

    from tests.helpers import eventually

    gateway = gateways.new("memory", OUTBOUND_MAX_BYTES=1_000_000, EVENT_LOG_MAX_BYTES=4_000_000)
    async with GatewayClient.connect(gateway.url) as control:
        sid = (await control.call("session.create"))["session_id"]
        async with websockets.connect(gateway.url, max_queue=1, max_size=None) as stuck:
            await stuck.recv()  # gateway.ready; from now on this client reads nothing
            await stuck.send(
                json.dumps({"id": 1, "method": "session.activate", "params": {"session_id": sid}})
            )
            # ~100 MB, paced so that the server keeps up: only a reader that never reads falls behind.
            await control.call("test.flood", {"session_id": sid, "count": 1600, "size": 65536, "delay_ms": 2})
            await eventually(lambda: "slow consumer" in gateway.log_text(), timeout=60)
            await control.wait_for(lambda: len(control.find_events("status.update", sid)) == 1600, timeout=60)
            # What the server holds, by its own counters: the log under its cap, no socket's
            # backlog beyond the outbound cap (the stuck one was cut off at it).
            held = await control.call("test.buffers")
            code = None
            try:
                while True:
                    await stuck.recv()
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
        assert code == 4008
        # The floor (4 MiB) is above this cap: the log keeps the floor and at most one event more.
        assert held["event_log_bytes"] <= 4 * 1024 * 1024 + 70_000, held
        assert held["queued_bytes"] <= 1_000_000 and held["unsent_bytes"] <= 1_000_000 + 70_000, held
        # The flood went on for everyone else, and the session is intact.
        assert (await control.call("gateway.ping")) == {"ok": True}


async def attached_on_two_workers(w1, w2) -> tuple[GatewayClient, GatewayClient, str]:
    """A session created through ``w1`` and attached by a second client through ``w2``."""
    owner_client = await GatewayClient.open(w1.url)
    created = await owner_client.call("session.create")
    sid, key = created["session_id"], created["stored_session_id"]
    remote = await GatewayClient.open(w2.url)
    assert (await remote.call("session.resume", {"session_id": key}))["session_id"] == sid
    return owner_client, remote, sid


async def test_leaving_from_another_worker_parks_the_session_on_its_owner(clusters):
    cluster, _ = clusters(2, ORPHAN_GRACE_S=0.5)
    w1, w2 = cluster.workers
    async with GatewayClient.connect(w1.url) as watcher:
        owner_client, remote, sid = await attached_on_two_workers(w1, w2)
        await owner_client.close()
        await server_saw_close(cluster, owner_client)
        # Twice the grace on the owner's clock: still there, its client on worker 2 keeps it.
        await watcher.call("test.after", {"ms": 1000})
        assert not watcher.find_events("session.reclaimed")
        assert (await remote.call("session.history", {"session_id": sid}))["count"] == 0
        await remote.close()
        event = await watcher.event("session.reclaimed", timeout=15)
        assert event["payload"]["session_id"] == sid


async def test_server_request_answered_through_another_worker(clusters):
    cluster, _ = clusters(2)
    w1, w2 = cluster.workers
    async with GatewayClient.connect(w1.url) as a, GatewayClient.connect(w2.url) as b:
        created = await a.call("session.create")
        sid, key = created["session_id"], created["stored_session_id"]
        await b.call("session.resume", {"session_id": key, "server_requests": True})
        await a.call("prompt.submit", {"session_id": sid, "text": "!clarify Pick one | left | right"})
        request = await b.server_request("clarify", timeout=15)
        assert request["params"]["session_id"] == sid
        assert not b.find_events("clarify.request")
        await b.reply(request["id"], {"answers": {"q1": "right"}})
        complete = await a.event("message.complete", sid, timeout=15)
        assert complete["payload"]["text"] == "Answer: right"


async def test_clients_of_a_killed_worker_are_detached_on_the_owner(clusters):
    cluster, _ = clusters(2, ORPHAN_GRACE_S=0.5)
    w1, w2 = cluster.workers
    async with GatewayClient.connect(w1.url) as watcher:
        owner_client, remote, sid = await attached_on_two_workers(w1, w2)
        await owner_client.close()
        w2.signal(signal.SIGKILL)
        await asyncio.wait_for(remote.closed, 10)
        event = await watcher.event("session.reclaimed", timeout=20)
        assert event["payload"]["session_id"] == sid


async def test_session_settings_follow_a_session_to_its_adopter(clusters, tmp_path):
    cluster, _ = clusters(2, ALLOW_APPROVAL_OFF=True)
    w1, w2 = cluster.workers
    a = await GatewayClient.open(w1.url)
    created = await a.call("session.create")
    sid, key = created["session_id"], created["stored_session_id"]
    await a.event("session.info", sid)
    for setting, value in (("busy_input_mode", "queue"), ("approval_mode", "off"), ("cwd", str(tmp_path))):
        await a.call("config.set", {"session_id": sid, "key": setting, "value": value})
    await a.call("prompt.submit", {"session_id": sid, "text": "remember this"})
    await a.event("message.complete", sid)
    w1.signal(signal.SIGKILL)
    await asyncio.wait_for(a.closed, 10)
    async with GatewayClient.connect(w2.url) as b:
        assert (await resume_retrying(b, key))["session_id"] == sid
        for setting, value in (
            ("busy_input_mode", "queue"),
            ("approval_mode", "off"),
            ("cwd", str(tmp_path)),
        ):
            assert (await b.call("config.get", {"session_id": sid, "key": setting}))["value"] == value


@pytest.mark.parametrize(
    "channel",
    ["specific.0c1d2e3f", "specific.8d5e0e75c9974057!9450ac4df8c846da"],  # pubsub, core layer
)
def test_connection_ids_name_their_worker(channel):
    from ws_gateway.backplane import connection_id, worker_of

    assert worker_of(connection_id(channel)) == channel
    assert worker_of(connection_id(None)) is None


async def test_adopting_a_dead_workers_session_cancels_its_open_requests(clusters):
    cluster, _ = clusters(2)
    w1, w2 = cluster.workers
    a = await GatewayClient.open(w1.url)
    created = await a.call("session.create")
    sid, key = created["session_id"], created["stored_session_id"]
    await a.call("prompt.submit", {"session_id": sid, "text": "!clarify Still there?"})
    request = (await a.event("clarify.request", sid))["payload"]
    w1.signal(signal.SIGKILL)
    await asyncio.wait_for(a.closed, 10)
    async with GatewayClient.connect(w2.url) as b:
        assert (await resume_retrying(b, key))["session_id"] == sid
        replay = await b.call("session.events.since", {"session_id": sid, "last_seen": 0})
        cancels = [e["payload"] for e in replay["events"] if e["type"] == "request.cancel"]
        assert cancels == [
            {"id": "", "method": "clarify", "reason": "session_closed", "request_id": request["request_id"]}
        ]
        assert [e["payload"]["status"] for e in replay["events"] if e["type"] == "message.complete"] == [
            "interrupted"
        ]
        assert "open_requests" not in replay


async def test_a_new_socket_is_refused_with_4012_while_draining(clusters):
    cluster, _ = clusters(2, DRAIN_S=60.0)
    w1, _w2 = cluster.workers
    a = await GatewayClient.open(w1.url)
    sid = (await a.call("session.create"))["session_id"]
    await a.call("prompt.submit", {"session_id": sid, "text": "!clarify Hold the drain?"})
    request = (await a.event("clarify.request", sid))["payload"]  # the turn holds the drain open
    w1.signal(signal.SIGTERM)
    await a.event("gateway.draining")
    async with websockets.connect(w1.url) as late:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(late.recv(), 10)
    assert closed.value.rcvd.code == 4012
    assert "reason=draining" in cluster.log_text()
    # The socket that was there is still served until its turn ends, then closed with 4012.
    await a.call("clarify.respond", {"request_id": request["request_id"], "answer": "go"})
    assert (await asyncio.wait_for(a.closed, 20)).rcvd.code == 4012
    assert a.find_events("message.complete", sid)[0]["payload"]["text"] == "Answer: go"


async def test_a_forwarded_call_failing_on_the_owner_fails_the_same_for_the_caller(clusters):
    cluster, _ = clusters(2)
    w1, w2 = cluster.workers
    owner_client, remote, sid = await attached_on_two_workers(w1, w2)
    try:
        for method, params in (
            ("config.set", {"key": "busy_input_mode", "value": "nonsense"}),
            ("approval.respond", {"choice": "maybe"}),
            ("prompt.submit", {"text": "B", "truncate_before_user_ordinal": 0}),  # 4029: confirm first
        ):
            failures = []
            for client in (owner_client, remote):
                with pytest.raises(RpcFailure) as err:
                    await client.call(method, {"session_id": sid, **params})
                failures.append((err.value.code, err.value.message))
            assert failures[0] == failures[1], method  # the owner's answer, unchanged
        assert (await remote.call("session.history", {"session_id": sid}))["count"] == 0
    finally:
        await owner_client.close()
        await remote.close()


async def test_a_session_adopted_without_a_client_is_reaped_after_the_grace(clusters):
    cluster, _ = clusters(2, ORPHAN_GRACE_S=0.5)
    w1, w2 = cluster.workers
    a = await GatewayClient.open(w1.url)
    created = await a.call("session.create")
    sid = created["session_id"]
    await a.call("prompt.submit", {"session_id": sid, "text": "keep me"})  # stored: adoptable
    await a.event("message.complete", sid)
    w1.signal(signal.SIGKILL)
    await asyncio.wait_for(a.closed, 10)
    async with GatewayClient.connect(w2.url) as b:
        for _ in range(20):  # a read adopts the session; nobody attaches to it
            try:
                await b.call("session.history", {"session_id": sid})
                break
            except RpcFailure as failure:
                if failure.code != 5000:
                    raise
        assert "adopted session=" + sid in cluster.log_text()
        event = await b.event("session.reclaimed", timeout=20)
        assert event["payload"] == {
            "session_id": sid,
            "stored_session_id": created["stored_session_id"],
            "reason": "ws_orphan_reap",
        }
