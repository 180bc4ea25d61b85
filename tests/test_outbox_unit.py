"""The outbox in-process (a fresh Outbox on the test's loop, connections that record what they
are handed): events queued before the loop exists go out once it does, one event that cannot be
encoded does not stop the others, a server request too large for a frame goes out as its event,
and ended sessions are remembered within a bound."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from ws_gateway.events import outbox as outbox_module
from ws_gateway.events.outbox import Outbox


class Conn:
    def __init__(self, user_id: int | None = None) -> None:
        self.user_id = user_id
        self.seen: list[tuple[int, dict[str, Any], bool]] = []
        self.globals: list[dict[str, Any]] = []

    def deliver(self, session_id: str, seq: int, text: str, srq_text: str | None = None) -> None:
        self.seen.append((seq, json.loads(text), srq_text is not None))

    def push(self, text: str) -> None:
        self.globals.append(json.loads(text)["params"])


async def until(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)  # polling interval of a bounded wait

    await asyncio.wait_for(poll(), timeout)


async def test_events_queued_before_the_loop_go_out_in_order_once_it_is_bound() -> None:
    box = Outbox()
    box.emit("s", "status.update", {"text": "early"})  # no loop yet: kept
    box.emit("s", "status.update", {"text": "also early"})
    assert not box.streams
    conn = Conn()
    box.subscribe("s", conn)
    box.bind(asyncio.get_running_loop())
    box.bind(asyncio.get_running_loop())  # the same loop again: nothing changes
    await until(lambda: len(conn.seen) == 2)
    assert [(seq, p["params"]["payload"]["text"]) for seq, p, _ in conn.seen] == [
        (1, "early"),
        (2, "also early"),
    ]


async def test_rebinding_to_a_new_loop_keeps_the_numbering() -> None:
    box = Outbox()
    box.bind(asyncio.get_running_loop())
    box.emit("s", "status.update", {"text": "one"})
    await until(lambda: "s" in box.streams)
    other = asyncio.new_event_loop()
    try:
        box.bind(other)  # e.g. a test's next loop: pending timers of the old one are forgotten
        assert box.streams["s"]._flush_handle is None
    finally:
        other.close()
    box.bind(asyncio.get_running_loop())
    conn = Conn()
    box.subscribe("s", conn)
    box.emit("s", "status.update", {"text": "two"})
    await until(lambda: conn.seen)
    assert conn.seen[0][0] == 2


async def test_an_event_that_cannot_be_encoded_does_not_stop_the_others() -> None:
    box = Outbox()
    box.bind(asyncio.get_running_loop())
    conn = Conn()
    box.subscribe("s", conn)
    box.emit("s", "status.update", {"text": object()})  # a handler's bug
    box.emit("s", "status.update", {"text": "fine"})
    await until(lambda: conn.seen)
    assert [p["params"]["payload"]["text"] for _, p, _ in conn.seen] == ["fine"]


async def test_a_server_request_too_large_for_a_frame_goes_out_as_its_event(settings: Any) -> None:
    settings.WS_GATEWAY = {**getattr(settings, "WS_GATEWAY", {}), "MAX_MESSAGE_BYTES": 64 * 1024}
    box = Outbox()
    box.bind(asyncio.get_running_loop())
    conn = Conn()
    box.subscribe("s", conn)
    huge = {"request_id": "r1", "question": "q", "context": "x" * 200_000}
    box.emit(
        "s",
        "clarify.request",
        {"request_id": "r1", "question": "q"},
        server_request=("srq1", "clarify", huge),
    )
    await until(lambda: conn.seen)
    ((_, frame, has_srq),) = conn.seen
    assert frame["params"]["type"] == "clarify.request" and not has_srq
    (logged,) = box.logs.get("s").between(0, 99)
    assert logged.srq_text is None  # the log replays it as the event too


async def test_a_merged_delta_just_over_the_quick_estimate_stays_one_event(settings: Any) -> None:
    settings.WS_GATEWAY = {**getattr(settings, "WS_GATEWAY", {}), "MAX_MESSAGE_BYTES": 64 * 1024}
    box = Outbox()
    box.bind(asyncio.get_running_loop())
    conn = Conn()
    box.subscribe("s", conn)
    text = "a" * 12_000  # 6 bytes a character would not fit; measured, it does
    box.emit("s", "message.delta", {"text": text})
    box.emit("s", "status.update", {"text": "after"})  # flushes the merged delta first
    await until(lambda: len(conn.seen) == 2)
    assert conn.seen[0][1]["params"]["payload"]["text"] == text


async def test_unsubscribing_and_closing_unknown_sessions_is_harmless() -> None:
    box = Outbox()
    box.bind(asyncio.get_running_loop())
    assert box.unsubscribe("never", Conn()) is False
    box.close("never")  # no stream, no log
    await until(lambda: "never" in box._ended)
    box.emit("never", "status.update", {"text": "late"})  # a late event of an ended session
    box.broadcast("sessions.changed")  # no payload
    await until(lambda: not box._queue)
    assert "never" not in box.streams and box.latest_seq("never") == 0


async def test_broadcasts_reach_everyone_or_only_the_owners_connections() -> None:
    box = Outbox()
    box.bind(asyncio.get_running_loop())
    mine, theirs, anonymous = Conn(1), Conn(2), Conn(None)
    box.connections.update({mine, theirs, anonymous})
    box.broadcast("sessions.changed")
    box.broadcast("session.reclaimed", {"session_id": "s"}, owner=1)
    box.broadcast("session.reclaimed", {"session_id": "t"}, owner=None)
    await until(lambda: len(mine.globals) == 2 and len(anonymous.globals) == 2)
    assert mine.globals == [
        {"type": "sessions.changed", "session_id": ""},
        {"type": "session.reclaimed", "session_id": "", "payload": {"session_id": "s"}},
    ]
    assert [g["type"] for g in theirs.globals] == ["sessions.changed"]
    assert anonymous.globals[1]["payload"] == {"session_id": "t"}


async def test_the_memory_of_ended_sessions_is_bounded() -> None:
    box = Outbox()
    box.bind(asyncio.get_running_loop())
    for n in range(10_001):
        box._close_now(f"s{n}")
    assert len(box._ended) == 10_000 and "s0" not in box._ended and "s10000" in box._ended


async def test_deltas_queued_between_drains_reach_the_loop_joined_and_in_order() -> None:
    box = Outbox()
    box.bind(asyncio.get_running_loop())
    conn = Conn()
    box.subscribe("s", conn)
    box.subscribe("t", conn)
    # All queued before the loop runs again: one item per session and run of one type.
    for word in ("a ", "b ", "c "):
        box.emit("s", "message.delta", {"text": word})
        box.emit("t", "message.delta", {"text": word.upper()})
    box.emit("s", "status.update", {"text": "between"})
    box.emit("s", "message.delta", {"text": "d"})
    box.emit("s", "reasoning.delta", {"text": "why"})
    box.emit("s", "message.delta", {"text": ""})  # empty: nothing
    assert len(box._queue) == 5
    await until(lambda: len(conn.seen) == 5)
    seen = [
        (p["params"]["session_id"], p["params"]["type"], p["params"]["payload"]["text"])
        for _, p, _ in conn.seen
    ]
    assert seen == [
        ("s", "message.delta", "a b c "),
        ("t", "message.delta", "A B C "),
        ("s", "status.update", "between"),
        ("s", "message.delta", "d"),
        ("s", "reasoning.delta", "why"),
    ]
    assert [p["params"]["seq"] for _, p, _ in conn.seen if p["params"]["session_id"] == "s"] == [1, 2, 3, 4]


async def test_without_a_flush_interval_every_delta_is_its_own_event(settings: Any) -> None:
    settings.WS_GATEWAY = {**getattr(settings, "WS_GATEWAY", {}), "DELTA_FLUSH_MS": 0}
    box = Outbox()
    box.bind(asyncio.get_running_loop())
    conn = Conn()
    box.subscribe("s", conn)
    for word in ("a ", "b ", "c"):
        box.emit("s", "message.delta", {"text": word})
    await until(lambda: len(conn.seen) == 3)
    assert [p["params"]["payload"]["text"] for _, p, _ in conn.seen] == ["a ", "b ", "c"]


async def test_a_thread_that_outruns_the_loop_waits_for_it_and_loses_nothing(monkeypatch: Any) -> None:
    monkeypatch.setattr(outbox_module, "BACKLOG_WAIT_S", 3600.0)  # only a drain releases a waiting thread
    monkeypatch.setattr(outbox_module, "LOOP_LAG_S", 0.0)  # wait whenever the loop is behind at all
    box = Outbox()
    box.bind(asyncio.get_running_loop())
    conn = Conn()
    box.subscribe("s", conn)
    words = [f"w{i} " for i in range(5000)]

    def produce() -> None:
        for word in words:
            box.emit("s", "message.delta", {"text": word})
        box.emit("s", "message.complete", {"text": ""})

    await asyncio.wait_for(asyncio.to_thread(produce), 60)
    await until(lambda: conn.seen and conn.seen[-1][1]["params"]["type"] == "message.complete")
    deltas = [p["params"]["payload"]["text"] for _, p, _ in conn.seen[:-1]]
    assert "".join(deltas) == "".join(words)
    assert [seq for seq, _, _ in conn.seen] == list(range(1, len(conn.seen) + 1))


async def test_deltas_emitted_on_the_loop_itself_never_wait(monkeypatch: Any) -> None:
    monkeypatch.setattr(outbox_module, "BACKLOG_WAIT_S", 3600.0)  # a wait here would hang the test
    monkeypatch.setattr(outbox_module, "LOOP_LAG_S", 0.0)
    box = Outbox()
    box.bind(asyncio.get_running_loop())
    conn = Conn()
    box.subscribe("s", conn)
    for word in ("a ", "b ", "c"):  # the loop cannot drain while this runs: it is the loop
        box.emit("s", "message.delta", {"text": word})
    await until(lambda: len(conn.seen) == 1)
    assert conn.seen[0][1]["params"]["payload"]["text"] == "a b c"


async def test_deltas_queued_before_a_loop_is_bound_never_wait(monkeypatch: Any) -> None:
    monkeypatch.setattr(outbox_module, "BACKLOG_WAIT_S", 3600.0)  # a wait here would hang the test
    monkeypatch.setattr(outbox_module, "LOOP_LAG_S", 0.0)
    box = Outbox()
    conn = Conn()
    box.subscribe("s", conn)
    for word in ("a ", "b ", "c"):  # no loop yet: nobody would drain
        box.emit("s", "message.delta", {"text": word})
    box.bind(asyncio.get_running_loop())
    await until(lambda: len(conn.seen) == 1)
    assert conn.seen[0][1]["params"]["payload"]["text"] == "a b c"
