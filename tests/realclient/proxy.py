"""A recording WebSocket proxy: the real client talks to daphne through it, every frame is kept.

The proxy runs its own event loop on a thread, so synchronous tests (typing into tmux) can read
the recorded frames at any time. Each client connection gets its own upstream connection to the
gateway with the same path and query; close codes pass through both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests.services import free_port

# The proxy's own connection chatter is noise in a failing test's output.
_log = logging.getLogger("tests.realclient.proxy")
_log.setLevel(logging.WARNING)


@dataclass
class Frame:
    """One recorded frame: ``direction`` is ``"up"`` (client -> gateway) or ``"down"``."""

    conn: int
    direction: str
    at: float
    raw: str
    data: Any = field(default=None)

    def items(self) -> list[dict[str, Any]]:
        """The JSON-RPC messages of the frame (a batch is a list of them)."""
        data = self.data if isinstance(self.data, list) else [self.data]
        return [item for item in data if isinstance(item, dict)]


@dataclass
class Exchange:
    """A request the client sent and the response it got (``None`` while none came)."""

    conn: int
    id: Any
    method: str
    params: Any
    response: dict[str, Any] | None = None

    @property
    def error(self) -> dict[str, Any] | None:
        return None if self.response is None else self.response.get("error")

    def __str__(self) -> str:
        params = json.dumps(self.params, sort_keys=True)
        if len(params) > 160:
            params = params[:160] + "..."
        if self.response is None:
            outcome = "no response"
        elif self.error is not None:
            outcome = f"error {self.error.get('code')}: {self.error.get('message')}"
        else:
            outcome = "ok"
        return f"{self.method} {params} -> {outcome}"


class RecordingProxy:
    """Forwards WebSocket connections on ``url`` to ``upstream`` and records every frame."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.frames: list[Frame] = []
        self.connections = 0
        self.paths: list[str] = []  # the path and query of each client connection
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="recording-proxy", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("recording proxy did not start")

    @property
    def url(self) -> str:
        """The gateway URL to give the client (same path as the gateway's)."""
        return f"ws://127.0.0.1:{self.port}/api/ws"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with serve(
            self._handle, "127.0.0.1", self.port, max_size=None, ping_interval=None, logger=_log
        ):
            self._started.set()
            await self._stop.wait()

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _record(self, conn: int, direction: str, raw: str | bytes) -> None:
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        with self._lock:
            self.frames.append(Frame(conn, direction, time.monotonic(), text, data))

    async def _handle(self, client: ServerConnection) -> None:
        with self._lock:
            self.connections += 1
            conn = self.connections
        path = client.request.path if client.request is not None else "/api/ws"
        with self._lock:
            self.paths.append(path)
        target = self.upstream.split("/api/ws")[0] + path
        try:
            upstream = await connect(target, max_size=None, ping_interval=None, logger=_log)
        except Exception:
            await client.close(1011, "upstream unavailable")
            return
        async with upstream:
            pumps = [
                asyncio.create_task(self._pump(conn, "up", client, upstream)),
                asyncio.create_task(self._pump(conn, "down", upstream, client)),
            ]
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for side in (client, upstream):
                other = upstream if side is client else client
                if side.close_code is not None and other.close_code is None:
                    with contextlib.suppress(Exception):
                        await other.close(side.close_code, side.close_reason or "")
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    async def _pump(self, conn: int, direction: str, source: Any, sink: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in source:
                self._record(conn, direction, message)
                await sink.send(message)

    # -- reading what was recorded -------------------------------------------------------------

    def snapshot(self) -> list[Frame]:
        with self._lock:
            return list(self.frames)

    def exchanges(self) -> list[Exchange]:
        """Every request the client sent, in order, each with the response it got."""
        found: list[Exchange] = []
        by_key: dict[tuple[int, Any], Exchange] = {}
        for frame in self.snapshot():
            for item in frame.items():
                if frame.direction == "up" and "method" in item and "id" in item:
                    exchange = Exchange(frame.conn, item["id"], item["method"], item.get("params"))
                    found.append(exchange)
                    by_key[(frame.conn, item["id"])] = exchange
                elif frame.direction == "down" and "method" not in item and "id" in item:
                    match = by_key.get((frame.conn, item["id"]))
                    if match is not None and match.response is None:
                        match.response = item
        return found

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        """Params of every event the gateway sent (of one type when given)."""
        out = []
        for frame in self.snapshot():
            if frame.direction != "down":
                continue
            for item in frame.items():
                params = item.get("params") if item.get("method") == "event" else None
                if isinstance(params, dict) and type_ in (None, params.get("type")):
                    out.append(params)
        return out

    def calls(self, method: str) -> list[Exchange]:
        return [exchange for exchange in self.exchanges() if exchange.method == method]

    def wait(self, predicate: Callable[[RecordingProxy], Any], timeout: float, what: str) -> Any:
        """Poll ``predicate(self)`` until truthy; fail with ``what`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"frames: {what} not seen within {timeout}s")
            time.sleep(0.05)

    def wait_answer(
        self,
        method: str,
        since: int = 0,
        timeout: float = 15.0,
        where: Callable[[Exchange], bool] | None = None,
    ) -> Exchange:
        """The first ``method`` request after exchange number ``since`` that got its response."""

        def found(proxy: RecordingProxy) -> Exchange | None:
            matches = (x for x in proxy.exchanges()[since:] if x.method == method and x.response is not None)
            return next((x for x in matches if where is None or where(x)), None)

        return self.wait(found, timeout, f"an answered {method}")
