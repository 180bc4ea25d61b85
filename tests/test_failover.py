"""Failover without collateral (PROTOCOL.md section 11): a dead owner's sessions are adopted within
the lease, the survivor keeps serving everyone else meanwhile, and a killed worker comes back."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid

import pytest
import redis.asyncio as aioredis

from tests.protocol_cases import check_ready
from tests.services import wait_port
from ws_gateway.backplane.redis import RedisBackplane
from ws_gateway.management.commands.gateway_workers import STABLE_S, next_backoff
from ws_gateway.testing import GatewayClient

pytestmark = pytest.mark.db

LEASE_S = 3.0
# Far beyond the calls' own timeouts: a resume that waited for the forward timeout would fail.
FORWARD_TIMEOUT_S = 120.0
RESUME_TIMEOUT_S = 30.0


async def test_resume_after_kill_is_adopted_within_the_lease_and_the_survivor_serves_others(clusters, logdir):
    # One pool thread on the survivor: a forwarded resume that held it would hold session.list too.
    cluster, _ = clusters(2, LEASE_S=LEASE_S, FORWARD_TIMEOUT_S=FORWARD_TIMEOUT_S, POOL_WORKERS=1)
    w1, w2 = cluster.workers
    owner = await GatewayClient.open(w1.url)
    keys = {}
    for n in range(4):
        created = await owner.call("session.create")
        sid = created["session_id"]
        keys[sid] = created["stored_session_id"]
        await owner.call("prompt.submit", {"session_id": sid, "text": f"hello {n}"})
        await owner.event("message.complete", sid)
    busy = next(iter(keys))
    await owner.call("prompt.submit", {"session_id": busy, "text": "!stream 400 20"})
    await owner.wait_for(lambda: len(owner.find_events("message.delta", busy)) >= 3)
    reconnecting = [await GatewayClient.open(w2.url) for _ in keys]
    async with GatewayClient.connect(w2.url) as bystander:
        await bystander.call("session.create")

        w1.signal(signal.SIGKILL)
        await asyncio.wait_for(owner.closed, 10)
        killed = time.monotonic()
        resumes = [
            asyncio.create_task(
                timed(client.call("session.resume", {"session_id": key}, timeout=RESUME_TIMEOUT_S))
            )
            for client, key in zip(reconnecting, keys.values(), strict=True)
        ]
        # The dead owner's lease has seconds left: every resume is still waiting for it ...
        listed = await bystander.call("session.list")
        # ... while another user's call on the survivor was answered: nothing held the pool's thread.
        assert not any(task.done() for task in resumes)
        assert listed["sessions"]

        results = await asyncio.gather(*resumes)
        assert [result["session_id"] for result, _ in results] == list(keys)
        figures = ", ".join(f"{done - killed:.2f}" for _, done in results)
        line = f"failover: resume answered {figures} s after kill -9 (LEASE_S={LEASE_S}, renewal every 1/3)"
        print(line)
        with open(logdir / "figures.txt", "a") as out:
            out.write(line + "\n")
        # The adopter closed the turn the dead owner was running.
        replay = await reconnecting[0].call("session.events.since", {"session_id": busy, "last_seen": 0})
        completes = [e["payload"] for e in replay["events"] if e["type"] == "message.complete"]
        assert [c["status"] for c in completes] == ["complete", "interrupted"]
    for client in reconnecting:
        await client.close()


async def timed(call) -> tuple[dict, float]:
    result = await call
    return result, time.monotonic()


async def test_gateway_workers_restarts_a_killed_worker(clusters):
    cluster, _ = clusters(2)
    w1, w2 = cluster.workers
    async with GatewayClient.connect(w2.url) as other:
        w1.signal(signal.SIGKILL)
        # gateway_workers announces the new process on its stdout, on the same port.
        line = await asyncio.wait_for(asyncio.to_thread(cluster.proc.stdout.readline), 30)
        _, name, _, pid, _, port = line.split()
        assert (name, int(port)) == (w1.name, w1.port) and int(pid) != w1.pid
        w1.pid = int(pid)
        await asyncio.to_thread(wait_port, w1.port, 30)
        async with GatewayClient.connect(w1.url) as back:
            assert check_ready(back.ready)["server"]["worker"] == w1.name
            created = await back.call("session.create")
            # The restarted worker is a member of the cluster again: reachable from the other one.
            resumed = await other.call("session.resume", {"session_id": created["stored_session_id"]})
            assert resumed["session_id"] == created["session_id"]
    log = cluster.log_text()
    assert f"worker {w1.name} (pid" in log and "died with signal SIGKILL" in log
    assert f"worker {w1.name} restarted (pid {pid}" in log


async def test_a_silent_owner_is_waited_out_until_its_lease_lapses(redis_url):
    """The primitives of failover against a real Redis: a worker without a heartbeat is not
    forwarded to (its lease is waited out), a live one is (whether or not it still holds a lease)."""

    cluster = RedisBackplane()
    cluster.loop = asyncio.get_running_loop()
    cluster.redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    sid, dead, live = (f"{name}-{uuid.uuid4().hex}" for name in ("sid", "dead", "live"))
    try:
        await cluster.redis.set(f"wsg:o:{sid}", dead, px=300)
        assert not await cluster.alive(dead)
        assert await cluster.holds(dead, sid)  # until its lease lapses
        assert await cluster.lapse(dead, sid) is True
        assert await cluster.redis.get(f"wsg:o:{sid}") is None
        assert not await cluster.holds(dead, sid)

        await cluster.redis.set(f"wsg:w:{live}", "1", px=60_000)
        await cluster.redis.set(f"wsg:o:{sid}", live, px=60_000)
        assert await cluster.lapse(live, sid) is False  # heartbeating: forward to it
        await cluster.redis.delete(f"wsg:o:{sid}")  # released (session.close) while serving a call
        assert await cluster.holds(live, sid)  # still alive: its answer is awaited
    finally:
        await cluster.redis.delete(f"wsg:o:{sid}", f"wsg:w:{live}")
        await cluster.redis.aclose()


def test_restart_backoff_doubles_while_a_worker_keeps_dying_and_resets_after_a_healthy_run():
    backoffs = [0.0]
    for _ in range(8):
        backoffs.append(next_backoff(backoffs[-1], ran=1.0, first=0.5, cap=30.0))
    assert backoffs[1:] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert next_backoff(30.0, ran=STABLE_S, first=0.5, cap=30.0) == 0.5
