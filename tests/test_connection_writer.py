"""One connection's writer, in-process (a real loop; the socket is a callable that records or
fails, the transport a stand-in with a settable backlog): a failed send is counted and the
stream goes on, a transport backlog past the cap closes with 4008 once, a close writes what is
queued first, and a client that opts out of server requests gets plain events again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ws_gateway.backplane.eventlog import LoggedEvent
from ws_gateway.events.outbox import Outbox
from ws_gateway.transport import connection as connection_module
from ws_gateway.transport.connection import Connection


async def until(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)  # polling interval of a bounded wait

    await asyncio.wait_for(poll(), timeout)


class Socket:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.codes: list[int] = []
        self.fail_on: set[str] = set()
        self.gate = asyncio.Event()
        self.gate.set()

    async def send_text(self, text: str) -> None:
        await self.gate.wait()
        if text in self.fail_on:
            raise RuntimeError("frame too big")
        self.sent.append(text)

    async def close(self, code: int) -> None:
        self.codes.append(code)


class Transport:
    """What the connection sees of daphne's transport."""

    def __init__(self, socket: Socket) -> None:
        self.socket = socket
        self.backlog = 0
        self.aborted = False
        self.slow_close: float | None = None

    def send_now(self, text: str) -> None:
        if text in self.socket.fail_on:
            raise RuntimeError("frame too big")
        self.socket.sent.append(text)

    def unsent_bytes(self) -> int:
        return self.backlog

    def allow_slow_close(self, seconds: float) -> None:
        self.slow_close = seconds

    def abort(self) -> None:
        self.aborted = True


@pytest.fixture
async def box(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Outbox]:
    outbox = Outbox()
    outbox.bind(asyncio.get_running_loop())
    monkeypatch.setattr(connection_module, "outbox", outbox)
    yield outbox


@pytest.fixture
async def sock(box: Outbox) -> AsyncIterator[tuple[Connection, Socket]]:
    socket = Socket()
    conn = Connection("c-writer", user_id=None, peer="test", send_text=socket.send_text, close=socket.close)
    yield conn, socket
    await conn.shutdown()


async def test_a_failed_send_is_counted_and_the_next_frames_still_go(sock: tuple[Connection, Socket]) -> None:
    conn, socket = sock
    socket.fail_on.add("bad")
    for text in ("one", "bad", "two"):
        conn.push(text)
    await until(lambda: len(socket.sent) == 2)
    assert socket.sent == ["one", "two"] and conn.stats.send_failures == 1 and not conn.closed


async def test_a_failed_direct_send_is_counted(box: Outbox) -> None:
    socket = Socket()
    transport = Transport(socket)
    conn = Connection(
        "c-t", user_id=None, peer="t", send_text=socket.send_text, close=socket.close, transport=transport
    )
    socket.fail_on.add("bad")
    conn.push("bad")
    conn.push("good")
    assert socket.sent == ["good"] and conn.stats.send_failures == 1
    await conn.shutdown()


async def test_a_transport_backlog_past_the_cap_closes_once_with_4008(box: Outbox, settings: Any) -> None:
    settings.WS_GATEWAY = {**getattr(settings, "WS_GATEWAY", {}), "OUTBOUND_MAX_BYTES": 100}
    socket = Socket()
    transport = Transport(socket)
    conn = Connection(
        "c-slow", user_id=None, peer="t", send_text=socket.send_text, close=socket.close, transport=transport
    )
    conn.push("fits")
    assert not conn.closed
    transport.backlog = 101  # the client stopped reading
    conn.push("over")
    assert conn.closed and transport.slow_close is not None
    conn._slow_consumer()  # a second trigger does nothing more
    conn.push("dropped")
    await until(lambda: socket.codes)
    assert socket.codes == [4008] and socket.sent == ["fits", "over"]
    await conn.shutdown()


async def test_a_backlog_found_after_queued_writes_closes_with_4008(box: Outbox, settings: Any) -> None:
    settings.WS_GATEWAY = {**getattr(settings, "WS_GATEWAY", {}), "OUTBOUND_MAX_BYTES": 100}
    socket = Socket()
    transport = Transport(socket)
    conn = Connection(
        "c-q", user_id=None, peer="t", send_text=socket.send_text, close=socket.close, transport=transport
    )
    conn._start_writer()
    conn._out.append("queued")  # a frame already waiting: the next ones queue behind it
    conn.push("behind")
    transport.backlog = 500
    await until(lambda: socket.codes)
    assert socket.codes == [4008] and socket.sent == ["queued", "behind"]
    await conn.shutdown()


async def test_close_writes_what_is_queued_then_closes_once(sock: tuple[Connection, Socket]) -> None:
    conn, socket = sock
    socket.gate.clear()  # the socket is slow to take frames
    conn.push("a")
    conn.push("b")
    closing = asyncio.create_task(conn.close(4012))
    await asyncio.sleep(0)  # one loop turn (a yield, not a wait): the writer takes "a" and blocks
    assert not socket.codes
    socket.gate.set()
    await asyncio.wait_for(closing, 5)
    assert socket.sent == ["a", "b"] and socket.codes == [4012]
    await conn.close(4012)  # already closed: nothing more
    assert socket.codes == [4012]


async def test_opting_out_of_server_requests_brings_back_plain_events(
    box: Outbox, sock: tuple[Connection, Socket]
) -> None:
    conn, socket = sock
    log = box.logs.open("s")
    for seq in (1, 2):
        log.append(LoggedEvent(seq, {}, f"e{seq}", f"r{seq}"))
    conn.start_cursor("s", 0, server_requests=True)
    conn.start_cursor("s", 0, server_requests=False)  # already started: only the preference changes
    conn.deliver("s", 3, "e3", "r3")
    await until(lambda: len(socket.sent) == 3)
    assert socket.sent == ["r1", "r2", "e3"]
    assert "s" not in conn.server_requests


async def test_a_failing_leave_does_not_stop_the_shutdown(
    box: Outbox, sock: tuple[Connection, Socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    conn, _ = sock
    await conn.join("s1")
    await conn.join("s1")  # joined once
    await conn.join("s2")

    def broken(session_id: str, c: Connection) -> bool:
        raise RuntimeError("layer gone")

    monkeypatch.setattr(box, "unsubscribe", broken)
    await conn.shutdown()
    assert conn.closed and not conn.cursors
