"""Testing helpers: a protocol-aware WebSocket client for a running gateway.

    async with GatewayClient.connect("ws://127.0.0.1:8000/api/ws") as client:
        created = await client.call("session.create")
        event = await client.event("session.info", session_id=created["session_id"])

Uses the ``websockets`` package (a dependency of the app, as for ``ws_gateway.client``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

DEFAULT_TIMEOUT = 10.0


class RpcFailure(Exception):
    """A JSON-RPC error answer."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.message = error.get("message")
        self.data = error.get("data")


class GatewayClient:
    """Reads every frame into an inbox; calls are matched to responses by id."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ready: dict[str, Any] | None = None
        self.frames: list[Any] = []  # every frame received, in order
        self.events: list[dict[str, Any]] = []  # params of every event, in order
        self.requests: list[dict[str, Any]] = []  # server-to-client requests, in order
        self._responses: dict[Any, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[Any] | None = None
        self.closed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> GatewayClient:
        import websockets

        kwargs.setdefault("max_size", None)
        ws = await websockets.connect(url, **kwargs)
        client = cls(ws)
        first = json.loads(await asyncio.wait_for(ws.recv(), DEFAULT_TIMEOUT))
        client.frames.append(first)
        client.ready = first
        client._reader = asyncio.get_running_loop().create_task(client._read())
        return client

    @classmethod
    def connect(cls, url: str, **kwargs: Any) -> _ClientContext:
        return _ClientContext(url, kwargs)

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await asyncio.wait([self._reader], timeout=DEFAULT_TIMEOUT)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                self.frames.append(frame)
                for item in frame if isinstance(frame, list) else [frame]:
                    self._route(item)
                async with self._changed:
                    self._changed.notify_all()
        except Exception as exc:  # connection closed
            if not self.closed.done():
                self.closed.set_result(exc)
        finally:
            if not self.closed.done():
                self.closed.set_result(None)
            async with self._changed:
                self._changed.notify_all()

    def _route(self, item: dict[str, Any]) -> None:
        if item.get("method") == "event":
            self.events.append(item["params"])
        elif "method" in item and "id" in item:
            self.requests.append(item)
        elif "id" in item and ("result" in item or "error" in item):
            key = item["id"]
            future = self._responses.pop(key, None) if isinstance(key, (str, int, float)) else None
            if future is not None and not future.done():
                future.set_result(item)

    # -- requests ------------------------------------------------------

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def reply(self, request_id: str, result: dict[str, Any]) -> None:
        """Answer a server-to-client request."""
        await self.ws.send(json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}))

    async def server_request(
        self, method: str, *, after: int = 0, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """The first server-to-client request of ``method`` past index ``after`` of ``requests``."""
        request: dict[str, Any] = await self.wait_for(
            lambda: next((r for r in self.requests[after:] if r["method"] == method), None), timeout
        )
        return request

    async def request(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """Send a request and return the whole response frame."""
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._responses[request_id] = future
        frame: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            frame["params"] = params
        await self.ws.send(json.dumps(frame))
        return await asyncio.wait_for(future, timeout)

    async def call(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """Send a request and return its result, raising :class:`RpcFailure` on an error."""
        response = await self.request(method, params, timeout=timeout)
        if "error" in response:
            raise RpcFailure(response["error"])
        result: dict[str, Any] = response["result"]
        return result

    # -- waiting -------------------------------------------------------

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Wait until ``predicate()`` is truthy (checked whenever a frame arrives)."""

        async def wait() -> Any:
            async with self._changed:
                while True:
                    value = predicate()
                    if value:
                        return value
                    if self.closed.done():
                        raise ConnectionError("connection closed while waiting")
                    await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    def find_events(self, type_: str | None = None, session_id: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if (type_ is None or e.get("type") == type_)
            and (session_id is None or e.get("session_id") == session_id)
        ]

    async def event(
        self, type_: str, session_id: str | None = None, *, after: int = 0, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """The first event of ``type_`` (optionally of one session) past index ``after`` of ``events``."""

        def found() -> dict[str, Any] | None:
            for e in self.events[after:]:
                if e.get("type") == type_ and (session_id is None or e.get("session_id") == session_id):
                    return e
            return None

        event: dict[str, Any] = await self.wait_for(found, timeout)
        return event


class _ClientContext:
    def __init__(self, url: str, kwargs: dict[str, Any]) -> None:
        self.url = url
        self.kwargs = kwargs
        self.client: GatewayClient | None = None

    async def __aenter__(self) -> GatewayClient:
        self.client = await GatewayClient.open(self.url, **self.kwargs)
        return self.client

    async def __aexit__(self, *exc: Any) -> None:
        if self.client is not None:
            await self.client.close()
