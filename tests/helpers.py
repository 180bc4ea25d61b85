"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from ws_gateway.testing import GatewayClient


async def eventually(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.005) -> None:
    """From a test's thread: poll ``predicate`` until it is truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"condition not met within {timeout}s"
        time.sleep(interval)


def stored_rows(database_url: str, key: str) -> list[tuple[str, str]]:
    """(role, text) of a stored transcript, read straight from the servers' database."""
    import dj_database_url

    db = dj_database_url.parse(database_url)
    sql = "SELECT role, text FROM ws_gateway_transcriptmessage WHERE session_id = {} ORDER BY ordinal"
    if db["ENGINE"].endswith("sqlite3"):
        import sqlite3

        with sqlite3.connect(db["NAME"]) as conn:
            return conn.execute(sql.format("?"), (key,)).fetchall()
    import psycopg

    with psycopg.connect(database_url) as conn:
        return conn.execute(sql.format("%s"), (key,)).fetchall()


class Session:
    """A client holding one session: ``call`` fills in ``session_id``; ``turn`` runs one prompt."""

    def __init__(self, gateway: Any, client: GatewayClient, created: dict[str, Any]) -> None:
        self.gateway = gateway
        self.client = client
        self.sid = created["session_id"]
        self.key = created["stored_session_id"]

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, gateway: Any, **create: Any) -> AsyncIterator[Session]:
        client = await GatewayClient.open(gateway.url)
        try:
            created = await client.call("session.create", create)
            await client.event("session.info", created["session_id"])
            yield cls(gateway, client, created)
        finally:
            await client.close()

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.client.call(method, {"session_id": self.sid, **(params or {})})

    def events(self, type_: str | None = None, after: int = 0) -> list[dict[str, Any]]:
        return [
            e
            for e in self.client.events[after:]
            if e.get("session_id") == self.sid and (type_ is None or e["type"] == type_)
        ]

    async def completes(self, count: int, after: int, timeout: float = 30) -> list[dict[str, Any]]:
        """Wait for ``count`` turns to end (message.complete and the session.info after it)."""

        def done() -> list[dict[str, Any]] | None:
            events = self.events(after=after)
            completes = [i for i, e in enumerate(events) if e["type"] == "message.complete"]
            if len(completes) < count:
                return None
            if not any(e["type"] == "session.info" for e in events[completes[count - 1] :]):
                return None
            return [events[i] for i in completes[:count]]

        return await self.client.wait_for(done, timeout)

    async def turn(self, text: str, **params: Any) -> list[dict[str, Any]]:
        """Submit a prompt; the turn's events from message.start to the session.info after it."""
        mark = len(self.client.events)
        await self.call("prompt.submit", {"text": text, **params})
        await self.completes(1, mark)
        events = self.events(after=mark)
        start = next(i for i, e in enumerate(events) if e["type"] == "message.start")
        complete = next(i for i, e in enumerate(events) if e["type"] == "message.complete")
        info = next(i for i, e in enumerate(events) if i > complete and e["type"] == "session.info")
        return events[start : info + 1]

    async def seqs_are_contiguous(self) -> bool:
        seqs = [e["seq"] for e in self.events()]
        return seqs == list(range(1, len(seqs) + 1))

    async def stored_texts(self) -> list[str]:
        return [text for _, text in stored_rows(self.gateway.env["DATABASE_URL"], self.key)]


async def server_saw_close(gateway: Any, client: GatewayClient) -> None:
    """Wait until the gateway has handled ``client``'s disconnect (its summary line is logged)."""
    port = client.ws.local_address[1]
    await eventually(lambda: f"ws closed peer=127.0.0.1:{port} " in gateway.log_text())


def sleeping(duration: str) -> list[int]:
    """Pids of the machine's ``sleep DURATION`` processes (a test picks a DURATION of its own)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[:2] == [b"sleep", duration.encode()]:
                    found.append(int(pid))
        except OSError:
            continue
    return found
