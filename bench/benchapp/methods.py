"""The bench's methods: ``test.stream``, ``test.timed_stream`` (emit-stamped deltas), ``test.echo``.

The same names and shapes as the bare server's (``bench/bare_server.py``), so one client drives both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ws_gateway.cluster import cluster
from ws_gateway.outbox import emit
from ws_gateway.rpc import RpcError, method
from ws_gateway.sessions import service


def _stream_from_thread(call: Any, word: Callable[[int], str]) -> dict[str, Any]:
    """message.start, ``count`` deltas ``word(i)`` (``delay_ms`` apart), message.complete, from a thread."""
    p = call.params
    live = service.get_live(p.session_id(), call.conn.user_id)
    count = p.int("count", 100)
    delay = (p.int("delay_ms", 0) or 0) / 1000.0

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


@method("test.stream")
def stream(call: Any) -> dict[str, Any]:
    """``count`` message.delta events (word ``w<i> ``) then message.complete, from a plain thread."""
    return _stream_from_thread(call, lambda i: f"w{i} ")


@method("test.timed_stream")
def timed_stream(call: Any) -> dict[str, Any]:
    """Like ``test.stream``, each delta ``"<i>:<time.monotonic_ns() at emit> "`` (emit -> receipt latency)."""
    return _stream_from_thread(call, lambda i: f"{i}:{time.monotonic_ns()} ")


@method("test.echo")
def echo(call: Any) -> dict[str, Any]:
    return {"params": call.params.data}


@method("bench.events")
def events(call: Any) -> dict[str, Any]:
    """Emit ``count`` ``status.update`` events (never merged) from a thread: fills the durable log."""
    p = call.params
    live = service.get_live(p.session_id(), call.conn.user_id)
    count = p.int("count", 100, minimum=0) or 0

    def run() -> None:
        for i in range(count):
            emit(live.id, "status.update", {"kind": "bench", "text": f"event {i}"})

    threading.Thread(target=run, daemon=True).start()
    return {"status": "emitting"}


@method("bench.replay_cost")
def replay_cost(call: Any) -> dict[str, Any]:
    """Read the session's whole durable log on the cluster's loop, as a resume after adoption does.

    Returns the events read and the wall time the loop spent on it (it does nothing else meanwhile
    on an idle worker): the cost of ``cluster.replay`` that a client would otherwise see as a stall.
    """
    p = call.params
    live = service.get_live(p.session_id(), call.conn.user_id)
    if not cluster.active:
        raise RpcError(4000, "no cluster (REDIS_URL) on this worker")
    t0 = time.perf_counter()
    replay = cluster.run(cluster.replay(live.id, 0))
    return {"events": len(replay.events), "ms": (time.perf_counter() - t0) * 1000}
