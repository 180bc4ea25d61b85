"""The baseline: a bare ``websockets`` asyncio server speaking just enough of the gateway protocol.

    python bench/bare_server.py --port 8765

It answers the frames the benchmark sends, with the same frame shapes as the
gateway, and nothing else:

- ``gateway.ping`` -> ``{"ok": true}``; ``test.echo`` -> ``{"params": ...}``;
  ``session.history`` -> ``{"count": 0, "messages": []}`` (answered on the loop,
  no thread hop, no session lookup: the floor);
- ``session.create`` -> ``{"session_id": ...}`` then a ``session.info`` event;
- ``test.stream {session_id, count, delay_ms}``: a plain thread emits
  ``message.start``, ``count`` x ``message.delta {text: "w<i> "}`` and
  ``message.complete``, each through ``loop.call_soon_threadsafe``; on the loop
  every event gets its ``seq``, is encoded and written as its own frame
  (one frame per delta, no merging) by the connection's writer task;
- ``test.timed_stream {session_id, count, delay_ms}``: the same, each delta
  ``"<i>:<time.monotonic_ns() at emit> "`` (as the gateway's test method), for
  emit -> receipt latency;
- ``prompt.submit {session_id, text: "!stream N [DELAY_MS]"}``: the demo
  agent's turn without the agent: ``message.start``, deltas ``"t1 "`` ..
  ``"tN"``, ``message.complete`` and ``session.info``, emitted the same way.

Like the gateway it sends a ``gateway.ready`` frame first. Compression is off
(the benchmark client does not offer it to any server either).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


def encode(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


class Conn:
    """Ordered outbound queue of one socket, fed on the loop, drained by a writer task."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.out: deque[str] = deque()
        self.wake = asyncio.Event()
        self.seqs: dict[str, int] = {}

    def push(self, text: str) -> None:
        self.out.append(text)
        self.wake.set()

    def push_event(self, session_id: str, type_: str, payload: dict[str, Any] | None) -> None:
        seq = self.seqs[session_id] = self.seqs.get(session_id, 0) + 1
        params: dict[str, Any] = {"type": type_, "session_id": session_id}
        if payload is not None:
            params["payload"] = payload
        params["seq"] = seq
        self.push(encode({"jsonrpc": "2.0", "method": "event", "params": params}))

    async def writer(self) -> None:
        out = self.out
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while out:
                    await self.ws.send(out.popleft())
        except ConnectionClosed:
            pass


def stream_thread(
    loop: asyncio.AbstractEventLoop,
    conn: Conn,
    sid: str,
    count: int,
    delay: float,
    word: Callable[[int], str] = "w{} ".format,
    turn: bool = False,
) -> None:
    """Emit ``message.start``, ``count`` deltas ``word(i)`` and ``message.complete`` from this thread.

    ``turn``: ``session.info`` follows, as after a gateway turn.
    """
    call = loop.call_soon_threadsafe
    call(conn.push_event, sid, "message.start", None)
    parts = []
    for i in range(count):
        text = word(i)
        parts.append(text)
        call(conn.push_event, sid, "message.delta", {"text": text})
        if delay:
            time.sleep(delay)
    call(conn.push_event, sid, "message.complete", {"text": "".join(parts), "status": "complete"})
    if turn:
        call(conn.push_event, sid, "session.info", {"title": ""})


def timed_word(i: int) -> str:
    return f"{i}:{time.monotonic_ns()} "


def turn_words(count: int) -> Callable[[int], str]:
    """The demo agent's ``!stream N`` tokens: ``"t1 "`` .. ``"tN"`` (the last without its space)."""
    return lambda i: f"t{i + 1}" if i == count - 1 else f"t{i + 1} "


def parse_stream_prompt(text: str) -> tuple[int, float] | None:
    """``!stream N [DELAY_MS]`` -> (N, delay in seconds); None for any other prompt."""
    parts = text.strip().split()
    if not 2 <= len(parts) <= 3 or parts[0] != "!stream" or not all(p.isdigit() for p in parts[1:]):
        return None
    return int(parts[1]), (int(parts[2]) if len(parts) == 3 else 0) / 1000.0


async def handler(ws: ServerConnection) -> None:
    loop = asyncio.get_running_loop()
    conn = Conn(ws)
    writer = loop.create_task(conn.writer())
    conn.push(
        encode(
            {
                "jsonrpc": "2.0",
                "method": "event",
                "params": {"type": "gateway.ready", "payload": {"server": {"name": "bare"}}},
            }
        )
    )
    try:
        async for raw in ws:
            if not isinstance(raw, str):
                await ws.send(
                    encode(
                        {
                            "jsonrpc": "2.0",
                            "id": None,
                            "error": {"code": -32600, "message": "invalid request"},
                        }
                    )
                )
                continue
            try:
                req = json.loads(raw)
            except ValueError:
                await ws.send(
                    encode(
                        {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}
                    )
                )
                continue
            rid = req.get("id")
            method = req.get("method")
            params = req.get("params") or {}
            after = None
            if method == "gateway.ping":
                result: dict[str, Any] = {"ok": True}
            elif method == "test.echo":
                result = {"params": params}
            elif method == "session.history":
                result = {"count": 0, "messages": []}
            elif method == "session.create":
                sid = secrets.token_hex(4)
                result = {"session_id": sid}
                after = (sid, "session.info", {"title": ""})
            elif method == "session.close":
                result = {"closed": True}
            elif method in ("test.stream", "test.timed_stream"):
                sid = params["session_id"]
                count = int(params.get("count", 100))
                delay = int(params.get("delay_ms", 0) or 0) / 1000.0
                args = (loop, conn, sid, count, delay) + (
                    (timed_word,) if method == "test.timed_stream" else ()
                )
                threading.Thread(target=stream_thread, args=args, daemon=True).start()
                result = {"status": "streaming"}
            elif method == "prompt.submit" and parse_stream_prompt(str(params.get("text", ""))):
                sid = params["session_id"]
                count, delay = parse_stream_prompt(str(params["text"]))
                threading.Thread(
                    target=stream_thread,
                    args=(loop, conn, sid, count, delay, turn_words(count), True),
                    daemon=True,
                ).start()
                result = {"status": "streaming"}
            else:
                await ws.send(
                    encode(
                        {
                            "jsonrpc": "2.0",
                            "id": rid,
                            "error": {"code": -32601, "message": f"unknown method: {method}"},
                        }
                    )
                )
                continue
            await ws.send(encode({"jsonrpc": "2.0", "id": rid, "result": result}))
            if after is not None:
                conn.push_event(*after)
    except ConnectionClosed:
        pass
    finally:
        writer.cancel()


async def main(host: str, port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with serve(handler, host, port, compression=None, max_size=None, ping_interval=None):
        print(f"bare websockets server on ws://{host}:{port}/", flush=True)
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port))
