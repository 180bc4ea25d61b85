"""The bench's methods: ``test.stream``, ``test.timed_stream`` (emit-stamped deltas), ``test.echo``.

The same names and shapes as the bare server's (``bench/bare_server.py``), so one client drives both.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from ws_gateway import LiveSession, RpcError, emit, method
from ws_gateway.backplane import backplane


def _stream_from_thread(call: Any, live: LiveSession, word: Callable[[int], str]) -> dict[str, Any]:
    """message.start, ``count`` deltas ``word(i)`` (``delay_ms`` apart), message.complete, from a thread."""
    p = call.params
    count = p.integer("count", 100)
    delay = (p.integer("delay_ms", 0) or 0) / 1000.0

    def run() -> None:
        emit(live.id, "message.start")
        parts = []
        for i in range(count):
            text = word(i)
            parts.append(text)
            emit(live.id, "message.delta", {"text": text})
            if delay:
                time.sleep(delay)
        emit(live.id, "message.complete", {"text": "".join(parts), "status": "complete"})

    threading.Thread(target=run, daemon=True).start()
    return {"status": "streaming"}


@method("test.stream", session=True)
def stream(call: Any, live: LiveSession) -> dict[str, Any]:
    """``count`` message.delta events (word ``w<i> ``) then message.complete, from a plain thread."""
    return _stream_from_thread(call, live, lambda i: f"w{i} ")


@method("test.timed_stream", session=True)
def timed_stream(call: Any, live: LiveSession) -> dict[str, Any]:
    """Like ``test.stream``, each delta ``"<i>:<time.monotonic_ns() at emit> "`` (emit -> receipt latency)."""
    return _stream_from_thread(call, live, lambda i: f"{i}:{time.monotonic_ns()} ")


@method("test.echo")
def echo(call: Any) -> dict[str, Any]:
    return {"params": call.params.data}


@method("bench.events", session=True)
def events(call: Any, live: LiveSession) -> dict[str, Any]:
    """Emit ``count`` ``status.update`` events (never merged) from a thread: fills the durable log."""
    count = call.params.integer("count", 100, minimum=0) or 0

    def run() -> None:
        for i in range(count):
            emit(live.id, "status.update", {"kind": "bench", "text": f"event {i}"})

    threading.Thread(target=run, daemon=True).start()
    return {"status": "emitting"}


TICK_S = 0.001


async def _longest_stall(stop: asyncio.Event) -> float:
    """The longest the loop kept a 1 ms ticker waiting past its due time, until ``stop``."""
    loop = asyncio.get_running_loop()
    worst, last = 0.0, loop.time()
    while not stop.is_set():
        await asyncio.sleep(TICK_S)
        now = loop.time()
        worst, last = max(worst, now - last - TICK_S), now
    return worst


async def _replay_measured(session_id: str) -> dict[str, Any]:
    stop = asyncio.Event()
    probe = asyncio.get_running_loop().create_task(_longest_stall(stop))
    await asyncio.sleep(TICK_S)  # the ticker is running before the read starts
    t0 = time.perf_counter()
    replay = await backplane.replay(session_id, 0)
    wall = time.perf_counter() - t0
    stop.set()
    worst = await probe
    return {"events": len(replay.events), "ms": wall * 1000, "stall_ms": worst * 1000}


@method("bench.replay_cost", session=True)
def replay_cost(call: Any, live: LiveSession) -> dict[str, Any]:
    """Read the session's whole durable log on the cluster's loop, as a resume after adoption does.

    Returns the events read, the wall time of the read (``ms``: the Redis server's time and the
    transfer included) and the longest the loop was blocked meanwhile (``stall_ms``: the longest
    a 1 ms ticker on the loop waited past its due time), which is what other clients see.
    """
    if not backplane.shared:
        raise RpcError(4000, "no cluster (REDIS_URL) on this worker")
    return dict(backplane.run(_replay_measured(live.id)))
