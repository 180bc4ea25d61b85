"""Methods registered through the public API (``ws_gateway``), as a host project would."""

from __future__ import annotations

import gc
import socket
import threading
import time
from typing import Any

from ws_gateway import LiveSession, RpcError, emit, method, workers
from ws_gateway.events.outbox import outbox
from ws_gateway.transport.connection import connections


def _stream_from_thread(call: Any, live: LiveSession, word: Any) -> dict[str, Any]:
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
    """Emit ``count`` message.delta events (word ``w<i> ``) then message.complete, from a plain thread."""
    return _stream_from_thread(call, live, lambda i: f"w{i} ")


@method("test.timed_stream", session=True)
def timed_stream(call: Any, live: LiveSession) -> dict[str, Any]:
    """Like ``test.stream``, but every delta carries its emit time: ``"<i>:<time.monotonic_ns()> "``.

    The clock is read just before each ``emit``, so a client on the same machine (CLOCK_MONOTONIC
    is shared by its processes) computes emit -> receipt latency for every delta, also when deltas
    arrive merged. ``message.complete.text`` is the joined deltas.
    """
    return _stream_from_thread(call, live, lambda i: f"{i}:{time.monotonic_ns()} ")


@method("test.sleep", pool=True)
def sleep(call: Any) -> dict[str, Any]:
    time.sleep((call.params.integer("ms", 1000) or 0) / 1000.0)
    return {"slept": True}


@method("test.inline_sleep")
def inline_sleep(call: Any) -> dict[str, Any]:
    time.sleep((call.params.integer("ms", 1000) or 0) / 1000.0)
    return {"slept": True}


def _where(call: Any) -> dict[str, Any]:
    return {"thread": threading.current_thread().name}


# The same handler three ways: on the loop always, on the loop for some params, on a thread.
method("test.where_loop", on_loop=True)(_where)
method("test.where_maybe", on_loop=lambda params: params.raw("fast") is True)(_where)
method("test.where_thread")(_where)


@method("test.echo")
def echo(call: Any) -> dict[str, Any]:
    return {"params": call.params.data}


@method("test.fail")
def fail(call: Any) -> dict[str, Any]:
    code = call.params.integer("code")
    if code is not None:
        raise RpcError(code, "requested failure")
    raise ValueError("boom")


@method("test.bad_result")
def bad_result(call: Any) -> Any:
    """A handler breaking its contract: ``kind`` "unencodable" (not JSON) or "not_an_object" (a list)."""
    if call.params.string("kind") == "not_an_object":
        return ["not", "an", "object"]
    return {"value": object()}


@method("test.tcp_nodelay")
def tcp_nodelay(call: Any) -> dict[str, Any]:
    """TCP_NODELAY of this process's socket to the caller (found by the caller's address)."""
    host, port = call.conn.peer.rsplit(":", 1)
    for obj in gc.get_objects():
        if not isinstance(obj, socket.socket) or obj.fileno() < 0 or obj.type != socket.SOCK_STREAM:
            continue
        try:
            peer = obj.getpeername()
        except OSError:
            continue
        if peer[:2] == (host, int(port)):
            return {"nodelay": bool(obj.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))}
    return {"nodelay": None}


@method("test.flood", session=True)
def flood(call: Any, live: LiveSession) -> dict[str, Any]:
    """Emit ``count`` status.update events of ``size`` characters each (no merging), from a thread."""
    p = call.params
    count, size = p.integer("count", 100), p.integer("size", 65536)
    delay = (p.integer("delay_ms", 0) or 0) / 1000.0

    def run() -> None:
        for i in range(count):
            emit(live.id, "status.update", {"kind": "flood", "text": f"{i:08d}" + "x" * size})
            if delay:
                time.sleep(delay)

    threading.Thread(target=run, daemon=True).start()
    return {"status": "flooding"}


@method("test.big")
def big(call: Any) -> dict[str, Any]:
    """A result of about ``bytes`` bytes (``data``: that many ``x``)."""
    return {"data": "x" * (call.params.integer("bytes", 0, minimum=0) or 0)}


@method("test.after", pool=True)
def after(call: Any) -> dict[str, Any]:
    """Return once a timer of the server's own scheduler, set ``ms`` from now, has fired.

    The gateway's timers (orphan grace, sweeps) run on the same scheduler in due order, so a
    test waits here for "the server's clock passed T" instead of sleeping on its own clock.
    """
    fired = threading.Event()
    workers.call_later((call.params.integer("ms", 0, minimum=0) or 0) / 1000.0, fired.set)
    if not fired.wait(60):
        raise RpcError(5000, "timer did not fire")
    return {"fired": True}


# A gate a handler waits on until the test opens it: holds a handler (or the connection's
# ordered lane) busy for exactly as long as the test needs, with no race against a sleep.
_gates: dict[str, threading.Event] = {}
_gates_lock = threading.Lock()


def _gate(name: str) -> threading.Event:
    with _gates_lock:
        return _gates.setdefault(name, threading.Event())


@method("test.wait_gate", pool=True)
def wait_gate(call: Any) -> dict[str, Any]:
    """Block (on the pool) until ``test.open_gate`` opens gate ``name``."""
    if not _gate(call.params.string("name", "") or "").wait(60):
        raise RpcError(5000, "gate never opened")
    return {"passed": True}


@method("test.inline_wait_gate")
def inline_wait_gate(call: Any) -> dict[str, Any]:
    """Like ``test.wait_gate``, on the connection's ordered inline lane."""
    return wait_gate(call)


@method("test.open_gate")
def open_gate(call: Any) -> dict[str, Any]:
    _gate(call.params.string("name", "") or "").set()
    return {"opened": True}


@method("test.buffers", pool=True)
def buffers(call: Any) -> dict[str, Any]:
    """What this process holds for its clients, by its own counters (no RSS, which varies by machine)."""
    held = [
        (conn._out_bytes, conn._transport.unsent_bytes() if conn._transport is not None else 0)
        for conn in list(connections.values())
    ]
    return {
        "event_log_bytes": outbox.logs._total,
        "queued_bytes": max((q for q, _ in held), default=0),
        "unsent_bytes": max((u for _, u in held), default=0),
    }
