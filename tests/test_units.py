"""The pure parts, in-process and fast: a bug here is caught in milliseconds, not by a daphne run.

Event-log trimming and the process-wide cap, delta merging of a session stream (a real asyncio
loop, a fake connection), seq gap filling of a connection, ending a pending request once, the
token bucket, Params getters, command splitting and lookup, demo directive parsing,
dangerous-command matching, and the OpenAI backend's history building.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from ws_gateway import backplane as backplanes
from ws_gateway import commands as commands_module
from ws_gateway.agent import approvals, demo
from ws_gateway.agent import pending as pending_module
from ws_gateway.agent.openai_backend import history_messages, user_content
from ws_gateway.agent.pending import PendingRequests
from ws_gateway.backplane.eventlog import EventLogStore, LoggedEvent
from ws_gateway.conf import gateway_settings
from ws_gateway.errors import RpcError
from ws_gateway.events.outbox import Outbox
from ws_gateway.params import Params
from ws_gateway.rpc.dispatch import TokenBucket
from ws_gateway.sessions.live import LiveSession
from ws_gateway.transport.connection import Connection

# -- event log ---------------------------------------------------------------


@pytest.fixture
def small_logs(settings):
    """Caps small enough to count by hand: keep 4..8 events, 40..80 bytes; 200 bytes per process."""
    settings.WS_GATEWAY = {
        **getattr(settings, "WS_GATEWAY", {}),
        "EVENT_LOG_MAX_EVENTS": 8,
        "EVENT_LOG_MAX_BYTES": 80,
        "EVENT_LOG_MIN_EVENTS": 4,
        "EVENT_LOG_MIN_BYTES": 40,
        "EVENT_LOG_TOTAL_BYTES": 200,
    }
    assert gateway_settings.EVENT_LOG_MAX_EVENTS == 8
    return EventLogStore()


def ev(seq: int, size: int = 5) -> LoggedEvent:
    return LoggedEvent(seq, {"seq": seq}, "x" * size)


@pytest.mark.parametrize(
    ("count", "size", "kept"),
    [
        (3, 5, [1, 2, 3]),  # under every cap
        (8, 5, list(range(1, 9))),  # exactly the event cap
        (9, 5, list(range(2, 10))),  # one over: the oldest goes
        (20, 5, list(range(13, 21))),  # FIFO, 8 kept
        (10, 10, list(range(3, 11))),  # 100 bytes > 80: down to 8 events (80 bytes)
        (6, 30, [5, 6]),  # 4 events weigh more than the 40-byte floor: the last 40+ bytes stay
        (9, 12, [4, 5, 6, 7, 8, 9]),  # 108 bytes: the oldest go until 72 <= 80
        (3, 100, [3]),  # huge events: the last one always stays
    ],
)
def test_event_log_trims_to_its_caps_and_never_below_the_floor(small_logs, count, size, kept):
    log = small_logs.open("s")
    for seq in range(1, count + 1):
        log.append(ev(seq, size))
    assert [e.seq for e in log.since(0).events] == kept
    assert log.nbytes == size * len(kept)
    assert log.latest_seq == count


@pytest.mark.parametrize(
    ("last_seen", "seqs", "truncated"),
    [
        (0, list(range(13, 21)), True),  # older than the oldest kept: says so
        (11, list(range(13, 21)), True),
        (12, list(range(13, 21)), False),  # exactly the one before the oldest
        (15, [16, 17, 18, 19, 20], False),
        (20, [], False),
        (25, [], True),  # from the future (another lifetime)
    ],
)
def test_event_log_since(small_logs, last_seen, seqs, truncated):
    log = small_logs.open("s")
    for seq in range(1, 21):
        log.append(ev(seq))
    replay = log.since(last_seen)
    assert [e.seq for e in replay.events] == seqs
    assert (replay.latest_seq, replay.truncated) == (20, truncated)


@pytest.mark.parametrize(
    ("after", "before", "seqs"),
    [(14, 18, [15, 16, 17]), (0, 15, [13, 14]), (19, 21, [20]), (16, 17, []), (20, 30, [20][:0])],
)
def test_event_log_between(small_logs, after, before, seqs):
    log = small_logs.open("s")
    assert log.between(0, 5) == []
    for seq in range(1, 21):
        log.append(ev(seq))
    assert [e.seq for e in log.between(after, before)] == seqs


def test_process_cap_shrinks_the_biggest_logs_to_their_floor_first(small_logs):
    big, small = small_logs.open("big"), small_logs.open("small")
    for seq in range(1, 9):
        big.append(ev(seq, 10))  # 80 bytes: at its own cap
    for seq in range(1, 9):
        small.append(ev(seq, 9))  # 72 bytes
    assert small_logs._total == 152
    other = small_logs.open("other")
    for seq in range(1, 7):
        other.append(ev(seq, 9))  # 54 more: 206 > 200, the biggest log shrinks to its floor
    assert [e.seq for e in big.since(0).events] == [5, 6, 7, 8]
    assert len(small.since(0).events) == 8 and len(other.since(0).events) == 6
    assert small_logs._total == big.nbytes + small.nbytes + other.nbytes == 166
    small_logs.drop("big")
    assert small_logs._total == 126 and small_logs.get("big") is None


# -- delta merging (a real loop, a fake connection) ---------------------------


class FakeConn:
    def __init__(self) -> None:
        self.seen: list[tuple[int, dict[str, Any]]] = []

    def deliver(self, session_id: str, seq: int, text: str, srq_text: str | None = None) -> None:
        self.seen.append((seq, json.loads(text)["params"]))


@pytest.fixture
async def stream_box():
    box = Outbox()
    box.bind(asyncio.get_running_loop())
    box.flush_interval = 3600.0  # a second flush happens only when the test (or an event) asks
    conn = FakeConn()
    box.subscribe("s", conn)
    return box, box.open("s"), conn


def kinds(conn: FakeConn) -> list[tuple[int, str, str]]:
    return [(seq, p["type"], (p.get("payload") or {}).get("text", "")) for seq, p in conn.seen]


async def test_deltas_within_the_interval_become_one_event(stream_box):
    _box, stream, conn = stream_box
    for i in range(50):
        stream.push("message.delta", {"text": f"w{i} "})
    # The first delta goes at once (nothing was flushed for an interval); the other 49 wait.
    assert kinds(conn) == [(1, "message.delta", "w0 ")]
    stream.push("message.complete", {"text": "all"})  # any other event flushes them first
    assert kinds(conn) == [
        (1, "message.delta", "w0 "),
        (2, "message.delta", "".join(f"w{i} " for i in range(1, 50))),
        (3, "message.complete", "all"),
    ]
    assert [e.seq for e in stream.log.since(0).events] == [1, 2, 3]


async def test_a_delta_of_another_kind_flushes_the_merged_one(stream_box):
    _box, stream, conn = stream_box
    stream.push("message.delta", {"text": "a"})
    stream.push("reasoning.delta", {"text": "r1"})
    stream.push("reasoning.delta", {"text": "r2"})
    stream.push("message.delta", {"text": "b"})
    stream.push("message.delta", {"text": ""})  # empty: nothing to send
    stream.push("message.delta", {"text": "c"})
    stream.flush()
    stream.flush()  # idempotent
    assert kinds(conn) == [
        (1, "message.delta", "a"),
        (2, "reasoning.delta", "r1r2"),
        (3, "message.delta", "bc"),
    ]


async def test_merged_deltas_flush_on_the_loop_after_the_interval(stream_box):
    box, stream, conn = stream_box
    box.flush_interval = 0.0
    stream.push("message.delta", {"text": "a"})
    stream._last_flush = box.loop.time() + 0.01  # the next flush is due on the loop's clock
    stream.push("message.delta", {"text": "b"})
    stream.push("message.delta", {"text": "c"})
    assert kinds(conn) == [(1, "message.delta", "a")]
    await asyncio.wait_for(_until(lambda: len(conn.seen) == 2), 5)
    assert kinds(conn)[1] == (2, "message.delta", "bc")


async def _until(predicate: Any) -> None:
    while not predicate():
        await asyncio.sleep(0.005)  # polling interval; the caller's wait_for bounds it


async def test_emitted_events_of_a_thread_are_numbered_in_order(stream_box):
    box, _stream, conn = stream_box
    box.flush_interval = 0.0

    def produce() -> None:
        for i in range(20):
            box.emit("s", "status.update", {"text": str(i)})

    thread = threading.Thread(target=produce)
    thread.start()
    thread.join()
    await asyncio.wait_for(_until(lambda: len(conn.seen) == 20), 5)
    assert [(seq, p["payload"]["text"]) for seq, p in conn.seen] == [(i + 1, str(i)) for i in range(20)]


# -- seq gaps of one connection ------------------------------------------------


@pytest.fixture
async def conn_with_log(monkeypatch):
    from ws_gateway.transport import connection as connection_module

    box = Outbox()
    box.bind(asyncio.get_running_loop())
    monkeypatch.setattr(connection_module, "outbox", box)
    sent: list[str] = []

    async def send_text(text: str) -> None:
        sent.append(text)

    async def close(code: int) -> None:
        pass

    conn = Connection("c1", user_id=None, peer="test", send_text=send_text, close=close)
    log = box.logs.open("s")
    for seq in range(1, 11):
        log.append(LoggedEvent(seq, {}, f"e{seq}", f"r{seq}"))
    yield conn, sent
    await conn.shutdown()


async def _written(sent: list[str], count: int) -> list[str]:
    await asyncio.wait_for(_until(lambda: len(sent) >= count), 5)
    return sent


async def test_a_gap_in_a_clients_seq_is_filled_from_the_log(conn_with_log):
    conn, sent = conn_with_log
    conn.cursors["s"] = 3
    conn.deliver("s", 4, "e4")
    conn.deliver("s", 8, "e8")  # 5..7 never arrived: written from the log first
    conn.deliver("s", 8, "e8")  # a duplicate is dropped
    conn.deliver("s", 2, "e2")  # so is an old one
    assert await _written(sent, 5) == ["e4", "e5", "e6", "e7", "e8"]
    assert conn.cursors["s"] == 8


async def test_start_cursor_catches_up_in_the_form_the_client_chose(conn_with_log):
    conn, sent = conn_with_log
    conn.start_cursor("s", 7, server_requests=True)
    conn.deliver("s", 11, "e11", "r11")
    assert await _written(sent, 4) == ["r8", "r9", "r10", "r11"]
    conn.start_cursor("s", 0)  # already delivering: kept where it is
    assert conn.cursors["s"] == 11


async def test_an_unknown_session_is_not_delivered(conn_with_log):
    conn, sent = conn_with_log
    conn.deliver("other", 1, "x")
    conn.push("marker")
    assert await _written(sent, 1) == ["marker"]


# -- pending requests ------------------------------------------------------------


@pytest.fixture
def requests(monkeypatch):
    emitted: list[tuple[str, str, dict[str, Any]]] = []
    monkeypatch.setattr(pending_module, "emit", lambda sid, t, p=None, **kw: emitted.append((sid, t, p)))
    return PendingRequests(), LiveSession("rt1", "key1", owner_id=None), emitted


def _ask_in_thread(registry: PendingRequests, live: LiveSession, kind: str, timeout: float = 60):
    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(registry.ask(live, kind, {}, timeout)))
    thread.start()
    for _ in range(2000):
        if registry.for_session(live):
            break
        threading.Event().wait(0.005)  # polling interval of a bounded wait
    (request,) = registry.for_session(live)
    return thread, answers, request


@pytest.mark.parametrize("kind", ["approval", "clarify", "sudo", "secret"])
def test_a_request_ends_exactly_once(requests, kind):
    registry, live, emitted = requests
    thread, answers, request = _ask_in_thread(registry, live, kind)
    assert live.open_requests == 1
    assert registry.resolve(request.request_id, "first") == "ok"
    assert registry.resolve(request.request_id, "second") == "expired"
    assert registry._end(request, "third", "resolved") is False
    assert registry.release(live, "interrupted") == 0
    thread.join(5)
    assert answers == ["first"] and request.ended_reason == "resolved"
    assert live.open_requests == 0
    assert [t for _, t, _ in emitted] == [f"{kind}.request", "request.cancel"]
    assert registry.resolve("nosuchid", "x") == "unknown"
    assert registry.kind_of_ended(request.request_id) == kind


@pytest.mark.parametrize(
    ("kind", "answer"),
    [("approval", {"choice": "deny"}), ("clarify", ""), ("sudo", ""), ("secret", "")],
)
def test_release_declines(requests, kind, answer):
    registry, live, emitted = requests
    thread, answers, request = _ask_in_thread(registry, live, kind)
    assert registry.release(live, "interrupted") == 1
    thread.join(5)
    assert answers == [answer]
    cancel = emitted[-1][2]
    assert cancel == {
        "id": request.srq_id,
        "method": kind,
        "reason": "interrupted",
        "request_id": request.request_id,
    }


@pytest.mark.parametrize(("kind", "expires"), [("approval", False), ("clarify", True), ("secret", True)])
def test_a_timed_out_request_expires_once(requests, kind, expires):
    registry, live, emitted = requests
    assert registry.ask(live, kind, {}, 0.01) == pending_module.DECLINED[kind]
    types = [t for _, t, _ in emitted]
    assert types == [f"{kind}.request", *([f"{kind}.expire"] if expires else []), "request.cancel"]
    assert live.open_requests == 0


# -- token bucket -------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("rate", "burst", "steps", "expected"),
    [
        (None, 0, [0, 0, 0], [0, 0, 0]),  # no limit
        (10, 3, [0, 0, 0, 0], [0, 0, 0, 100]),  # a burst of 3, then wait 1/rate
        (10, 3, [0, 0, 0, 0.05], [0, 0, 0, 50]),  # half a token came back
        (10, 3, [0, 0, 0, 0.1], [0, 0, 0, 0]),  # a whole one
        (2, 1, [0, 10, 0], [0, 0, 500]),  # refills never above the burst
        (1000, 1, [0, 0], [0, 1]),  # at least 1 ms
    ],
)
def test_token_bucket(monkeypatch, rate, burst, steps, expected):
    clock = Clock()
    monkeypatch.setattr("ws_gateway.rpc.dispatch.time.monotonic", clock)
    bucket = TokenBucket(rate, burst)
    got = []
    for step in steps:
        clock.now += step
        got.append(bucket.take())
    assert got == expected


# -- params ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("getter", "data", "args", "expected"),
    [
        ("string", {"k": "v"}, (), "v"),
        ("string", {}, ("d",), "d"),
        ("string", {"k": None}, ("d",), "d"),
        ("string", {"k": 1}, (), RpcError),
        ("boolean", {"k": True}, (), True),
        ("boolean", {}, (), False),
        ("boolean", {"k": 1}, (), RpcError),
        ("integer", {"k": 3}, (), 3),
        ("integer", {}, (7,), 7),
        ("integer", {"k": True}, (), RpcError),
        ("integer", {"k": 1.5}, (), RpcError),
        ("integer", {"k": "3"}, (), RpcError),
        ("array", {"k": [1]}, (), [1]),
        ("array", {}, (), None),
        ("array", {"k": {}}, (), RpcError),
    ],
)
def test_params_getters(getter, data, args, expected):
    params = Params(data)
    if expected is RpcError:
        with pytest.raises(RpcError) as err:
            getattr(params, getter)("k", *args)
        assert err.value.code == -32602 and "k must be" in err.value.message
    else:
        assert getattr(params, getter)("k", *args) == expected


@pytest.mark.parametrize(("value", "ok"), [(0, True), (5, True), (-1, False)])
def test_params_int_minimum(value, ok):
    if ok:
        assert Params({"n": value}).integer("n", minimum=0) == value
    else:
        with pytest.raises(RpcError, match="n must be >= 0"):
            Params({"n": value}).integer("n", minimum=0)


@pytest.mark.parametrize("data", [{}, {"session_id": ""}, {"session_id": None}])
def test_params_session_id_required(data):
    with pytest.raises(RpcError) as err:
        Params(data).session_id()
    assert err.value.code == 4006
    assert Params({"session_id": "abc"}).session_id() == "abc"
    assert "session_id" in Params({"session_id": "abc"}) and Params({"x": 1}).raw("x") == 1


# -- commands ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/help", ("help", "")),
        ("  /model  gpt-x  ", ("model", "gpt-x")),
        ("/title a  b", ("title", "a  b")),
        ("/", ("", "")),
        ("///", ("", "")),
        ("", ("", "")),
        ("noslash arg", ("noslash", "arg")),
    ],
)
def test_command_split(line, expected):
    assert commands_module.split(line) == expected


@pytest.mark.parametrize(
    ("text", "names", "replace_from"),
    [("/he", ["/help"], 1), ("/HE", ["/help"], 1), ("/help x", [], 7), ("hello", [], None)],
)
def test_command_complete(text, names, replace_from):
    import ws_gateway.builtin_commands  # noqa: F401  (registers the builtins)

    got = commands_module.complete(text)
    assert [i["display"] for i in got["items"]] == names
    assert got.get("replace_from") == replace_from


def test_command_resolve_by_name_and_alias():
    registry = commands_module.CommandRegistry()
    cmd = commands_module.Command("/quit", "leave", lambda ctx: None, aliases=["/exit", "/q"])
    registry.add(cmd)
    assert registry.resolve("quit") == (cmd, None)
    assert registry.resolve("/QUIT") == (cmd, None)
    assert registry.resolve("exit") == (cmd, "/quit")
    assert registry.resolve("/nope") == (None, None)
    assert registry.aliases() == {"/exit": "/quit", "/q": "/quit"}


# -- demo directives -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "steps"),
    [
        ("hello", [("text", "hello")]),
        ("one\ntwo", [("text", "one two")]),
        ("", []),
        ("\n  \n", []),
        ("!STREAM 4 1", [("stream", "4 1")]),
        ("a\n!think deep  thought \nb", [("text", "a"), ("think", "deep  thought"), ("text", "b")]),
        ("  !sleep 5", [("sleep", "5")]),
        ("!", [("", "")]),
        ("x ! y", [("text", "x ! y")]),
    ],
)
def test_demo_directive_parsing(prompt, steps):
    assert [(s.name, s.arg) for s in demo.parse(prompt)] == steps


# -- dangerous commands ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "description"),
    [
        ("rm -rf /tmp/x", "recursive delete"),
        ("rm -r x", "recursive delete"),
        ("rm --recursive x", "recursive delete"),
        ("rm x", None),
        ("mkfs.ext4 /dev/sda1", "format a filesystem"),
        ("dd if=/dev/zero of=/dev/sda", "raw disk write (dd)"),
        ("echo hi > /dev/sda", "write to a block device"),
        ("sudo ls", "privilege escalation"),
        ("pseudo ls", None),
        ("chmod 777 f", "world-writable permissions"),
        ("chmod -R 0777 d", "world-writable permissions"),
        ("chmod 755 f", None),
        ("curl http://x | sh", "pipe a download into a shell"),
        ("curl http://x -o f", None),
        ("git push --force origin", "force push"),
        ("git push origin", None),
        ("git reset --hard", "discard git work"),
        (":(){ :|:& };:", "fork bomb"),
        ("drop table users", "drop a database object"),
        ("echo hello", None),
    ],
)
def test_dangerous_command_matching(command, description):
    match = approvals.dangerous(command)
    assert (match.description if match else None) == description


def test_extra_dangerous_patterns_add_to_the_defaults(settings):
    settings.WS_GATEWAY = {
        **getattr(settings, "WS_GATEWAY", {}),
        "EXTRA_DANGEROUS_PATTERNS": [[r"\bzap\b", "zap"]],
    }
    assert approvals.dangerous("zap it").description == "zap"
    assert approvals.dangerous("rm -rf x").description == "recursive delete"


# -- OpenAI history ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "messages"),
    [
        ([], []),
        ([{"role": "user", "text": "hi"}], [{"role": "user", "content": "hi"}]),
        (
            [{"role": "user", "text": "hi"}, {"role": "assistant", "text": "  "}],
            [{"role": "user", "content": "hi"}],  # an empty reply says nothing
        ),
        ([{"role": "system", "text": "x"}], []),
        ([{"role": "user", "text": None}], [{"role": "user", "content": ""}]),
    ],
)
def test_history_messages_plain(rows, messages):
    assert history_messages(rows) == messages


def test_history_messages_groups_consecutive_tool_rows_before_the_reply():
    rows = [
        {"role": "user", "text": "list"},
        {"role": "tool", "name": "terminal", "args": {"command": "ls"}, "text": "a b"},
        {"role": "tool", "name": None, "args": "not a dict", "text": "ok"},
        {"role": "assistant", "text": "done"},
        {"role": "tool", "name": "todo", "args": {}, "text": "t"},
    ]
    out = history_messages(rows)
    assert out[0] == {"role": "user", "content": "list"}
    assert out[1]["role"] == "assistant" and out[1]["content"] is None
    calls = out[1]["tool_calls"]
    assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("call_h1", "terminal", {"command": "ls"}),
        ("call_h2", "tool", {}),
    ]
    assert out[2:4] == [
        {"role": "tool", "tool_call_id": "call_h1", "content": "a b"},
        {"role": "tool", "tool_call_id": "call_h2", "content": "ok"},
    ]
    assert out[4] == {"role": "assistant", "content": "done"}
    assert out[5]["tool_calls"][0]["id"] == "call_h4" and out[6]["tool_call_id"] == "call_h4"
    assert len(out) == 7


@pytest.mark.parametrize(
    ("attachments", "expected"),
    [
        ([], "look"),
        (
            [{"mime": "image/png", "data": b"\x89PNG"}],
            [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}},
            ],
        ),
    ],
)
def test_user_content(attachments, expected):
    assert user_content("look", attachments) == expected


async def test_late_events_of_an_ended_session_are_dropped_not_renumbered(stream_box):
    box, _stream, conn = stream_box
    box.flush_interval = 0.0
    box.emit("s", "status.update", {"text": "before"})
    box.close("s")
    box.emit("s", "status.update", {"text": "late"})  # from a thread that has not heard yet
    box.emit("t", "status.update", {"text": "other"})
    await asyncio.wait_for(_until(lambda: "t" in box.streams), 5)
    assert [(seq, p["payload"]["text"]) for seq, p in conn.seen] == [(1, "before")]
    assert "s" not in box.streams and box.logs.get("s") is None


@pytest.mark.parametrize(("frames", "closed"), [(5, False), (6, True)])
async def test_a_client_that_does_not_read_is_closed_past_the_frame_cap(settings, frames, closed):
    settings.WS_GATEWAY = {**getattr(settings, "WS_GATEWAY", {}), "OUTBOUND_MAX_FRAMES": 5}
    codes: list[int] = []
    stuck = asyncio.Event()

    async def send_text(text: str) -> None:
        await stuck.wait()  # the socket takes nothing

    async def close(code: int) -> None:
        codes.append(code)

    conn = Connection("c2", user_id=None, peer="test", send_text=send_text, close=close)
    conn.push("first")  # taken by the writer, which then blocks in send_text
    await asyncio.wait_for(_until(lambda: not conn._out), 5)
    for i in range(frames):
        conn.push(f"f{i}")
    assert conn.closed is closed
    if closed:
        await asyncio.wait_for(_until(lambda: codes), 5)
        assert codes == [4008] and not conn._out
    stuck.set()
    await conn.shutdown()


class FakeCluster:
    """The durable log of a session owned by another process (what ``backplane.read_log`` returns)."""

    shared = True

    def __init__(self, events: list[LoggedEvent], fail: bool = False) -> None:
        self.events, self.fail, self.reads = events, fail, []
        self.release = asyncio.Event()

    async def read_log(self, session_id: str, after: int) -> list[LoggedEvent]:
        self.reads.append((session_id, after))
        await self.release.wait()  # the test decides when the read completes
        if self.fail:
            raise ConnectionError("redis is down")
        return [e for e in self.events if e.seq > after]

    async def watch(self, session_id: str) -> None:
        pass

    async def unwatch(self, session_id: str) -> None:
        pass


@pytest.fixture
async def remote_conn(monkeypatch):
    from ws_gateway.transport import connection as connection_module

    box = Outbox()
    box.bind(asyncio.get_running_loop())
    monkeypatch.setattr(connection_module, "outbox", box)
    sent: list[str] = []

    async def send_text(text: str) -> None:
        sent.append(text)

    async def close(code: int) -> None:
        pass

    def make(fake: FakeCluster) -> Connection:
        monkeypatch.setattr(backplanes._current, "impl", fake)
        conns.append(Connection("c3", user_id=None, peer="test", send_text=send_text, close=close))
        return conns[-1]

    conns: list[Connection] = []
    yield make, sent
    for conn in conns:
        await conn.shutdown()


async def test_a_gap_is_filled_from_the_durable_log_before_what_arrived_meanwhile(remote_conn):
    make, sent = remote_conn
    fake = FakeCluster([LoggedEvent(seq, {}, f"e{seq}") for seq in range(1, 8)])
    conn = make(fake)
    conn.cursors["s"] = 2
    conn.deliver("s", 3, "e3")
    conn.deliver("s", 6, "e6")  # 4 and 5 are missing, and this process keeps no log of "s"
    conn.deliver("s", 7, "e7")  # waits behind the read
    conn.deliver("s", 5, "e5")
    fake.release.set()
    assert await _written(sent, 5) == ["e3", "e4", "e5", "e6", "e7"]
    assert fake.reads == [("s", 3)] and conn.cursors["s"] == 7
    conn.deliver("s", 8, "e8")
    assert await _written(sent, 6) == ["e3", "e4", "e5", "e6", "e7", "e8"]


async def test_attaching_to_a_session_owned_elsewhere_catches_up_from_the_durable_log(remote_conn):
    make, sent = remote_conn
    fake = FakeCluster([LoggedEvent(seq, {}, f"e{seq}", f"r{seq}") for seq in range(1, 5)])
    conn = make(fake)
    conn.start_cursor("s", 1, server_requests=True)
    conn.deliver("s", 5, "e5", "r5")  # a live event during the read: after it, in order
    fake.release.set()
    assert await _written(sent, 4) == ["r2", "r3", "r4", "r5"]


async def test_an_unreadable_durable_log_still_delivers_what_comes(remote_conn):
    make, sent = remote_conn
    fake = FakeCluster([], fail=True)
    conn = make(fake)
    conn.cursors["s"] = 2
    conn.deliver("s", 5, "e5")
    fake.release.set()
    assert await _written(sent, 1) == ["e5"]  # the client's own replay (events.since) covers 3..4
    assert conn.cursors["s"] == 5


async def test_a_connection_gone_during_the_read_writes_nothing(remote_conn):
    make, sent = remote_conn
    fake = FakeCluster([LoggedEvent(seq, {}, f"e{seq}") for seq in range(1, 5)])
    conn = make(fake)
    conn.cursors["s"] = 1
    conn.deliver("s", 4, "e4")
    await conn.leave("s")
    fake.release.set()
    await asyncio.wait_for(_until(lambda: not conn._filling), 5)
    conn.push("marker")
    assert await _written(sent, 1) == ["marker"]


async def test_events_missing_from_the_durable_log_are_skipped_not_read_forever(remote_conn):
    """The owner publishes even when its durable append failed: the log lacks those events."""
    make, sent = remote_conn
    fake = FakeCluster([LoggedEvent(3, {}, "e3")])  # 4 and 5 never reached the log
    conn = make(fake)
    conn.cursors["s"] = 2
    conn.deliver("s", 6, "e6")
    fake.release.set()
    assert await _written(sent, 2) == ["e3", "e6"]
    conn.deliver("s", 7, "e7")
    assert await _written(sent, 3) == ["e3", "e6", "e7"]
    assert fake.reads == [("s", 2)]  # one read, not one per event
