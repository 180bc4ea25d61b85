"""A lean protocol client and the workloads, identical for the gateway and the bare server.

Deliberately minimal (one outstanding call per connection, frames parsed with
``json.loads`` and nothing else) so that the client costs as little CPU as
possible and the same amount against every server. Every loop is bounded in
count and in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

OPEN_TIMEOUT = 15.0
CALL_TIMEOUT = 15.0
# Frames skipped while waiting for one answer before giving up (events in between).
MAX_SKIPPED_FRAMES = 100_000


class BenchError(Exception):
    pass


def expected_text(count: int) -> str:
    return "".join(f"w{i} " for i in range(count))


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile of an already sorted list (q in 0..100)."""
    if not sorted_values:
        return math.nan
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


class Conn:
    """One WebSocket connection; the first frame (``gateway.ready``) is read on open."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0
        self.session_id: str | None = None
        self.last_seq: dict[str, int | None] = {}  # per session: the last seq a stream reader saw

    @classmethod
    async def open(cls, url: str) -> Conn:
        ws = await connect(
            url, max_size=None, compression=None, ping_interval=None, open_timeout=OPEN_TIMEOUT
        )
        try:
            async with asyncio.timeout(OPEN_TIMEOUT):
                first = json.loads(await ws.recv())
        except BaseException:
            await ws.close()
            raise
        if first.get("params", {}).get("type") != "gateway.ready":
            await ws.close()
            raise BenchError(f"first frame is not gateway.ready: {first!r}")
        return cls(ws)

    async def close(self) -> None:
        try:
            async with asyncio.timeout(5):
                await self.ws.close()
        except Exception:
            pass

    def frame(self, method: str, params: dict[str, Any] | None) -> tuple[int, str]:
        self.next_id += 1
        return self.next_id, json.dumps(
            {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        )

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request and read frames (skipping events) until its response; result or BenchError."""
        rid, text = self.frame(method, params)
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                await self.ws.send(text)
                for _ in range(MAX_SKIPPED_FRAMES):
                    msg = json.loads(await self.ws.recv())
                    if isinstance(msg, dict) and msg.get("id") == rid:
                        if "error" in msg:
                            raise BenchError(f"{method} failed: {msg['error']}")
                        return msg["result"]
        except TimeoutError:
            raise BenchError(f"{method}: no response within {CALL_TIMEOUT:g} s") from None
        raise BenchError(f"{method}: no response within {MAX_SKIPPED_FRAMES} frames")

    async def wait_event(self, type_: str, session_id: str, timeout: float = CALL_TIMEOUT) -> dict[str, Any]:
        seen: list[str] = []
        try:
            async with asyncio.timeout(timeout):
                for _ in range(MAX_SKIPPED_FRAMES):
                    msg = json.loads(await self.ws.recv())
                    if isinstance(msg, dict) and msg.get("method") == "event":
                        params = msg["params"]
                        seen.append(f"{params.get('type')}#{params.get('seq')}")
                        if params.get("type") == type_ and params.get("session_id") == session_id:
                            return params
        except TimeoutError:
            raise BenchError(
                f"no {type_} event for session {session_id} within {timeout:g} s (events seen: {seen[-5:]})"
            ) from None
        raise BenchError(f"no {type_} event within {MAX_SKIPPED_FRAMES} frames")

    async def create_session(self) -> str:
        """A session that dies with this connection; waits for its first ``session.info``."""
        created = await self.call("session.create", {"close_on_disconnect": True, "title": ""})
        sid = created["session_id"]
        info = await self.wait_event("session.info", sid)
        self.session_id = sid
        self.last_seq[sid] = info.get("seq")
        return sid


async def open_many(url: str, n: int, with_sessions: bool) -> list[Conn]:
    conns: list[Conn] = []
    try:
        # Open in small waves: a thundering herd of handshakes is not what is measured.
        for start in range(0, n, 10):
            wave = await asyncio.gather(*(Conn.open(url) for _ in range(min(10, n - start))))
            conns.extend(wave)
        if with_sessions:
            await asyncio.gather(*(c.create_session() for c in conns))
    except BaseException:
        await close_many(conns)
        raise
    return conns


async def close_many(conns: list[Conn]) -> None:
    await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)


@contextlib.asynccontextmanager
async def _explain_timeout(timer: Any, explain: Any) -> Any:
    """``async with asyncio.timeout(...)`` whose expiry becomes a BenchError saying what was missing."""
    try:
        async with timer:
            yield
    except TimeoutError:
        raise BenchError(explain()) from None


# -- streams -------------------------------------------------------------------


@dataclass
class StreamRun:
    count: int
    delay_ms: int
    elapsed: float  # request sent -> message.complete received
    first_delta: float  # request sent -> first delta received
    frames: int  # every frame received in between (response, start, deltas, complete)
    delta_frames: int
    chars: int
    exact: bool
    seq_ok: bool
    problem: str = ""

    @property
    def chars_per_s(self) -> float:
        return self.chars / self.elapsed if self.elapsed > 0 else math.nan

    @property
    def deltas_per_s(self) -> float:
        """Deltas' worth of text per second (the emitted deltas, however they were framed)."""
        return self.count / self.elapsed if self.elapsed > 0 else math.nan


async def stream_once(conn: Conn, count: int, delay_ms: int, timeout: float) -> StreamRun:
    """``test.stream`` on the connection's session; reads until ``message.complete``, checks the text."""
    sid = conn.session_id
    assert sid is not None
    want = expected_text(count)
    rid, text = conn.frame("test.stream", {"session_id": sid, "count": count, "delay_ms": delay_ms})
    parts: list[str] = []
    frames = delta_frames = 0
    first_delta = math.nan
    last_seq: int | None = None
    seq_ok = True
    complete: dict[str, Any] | None = None
    responded = False
    max_frames = 2 * count + 1000
    t0 = time.perf_counter()
    timer = asyncio.timeout(timeout)
    async with _explain_timeout(
        timer,
        lambda: (
            f"stream: no message.complete within {timeout:g} s"
            f" ({frames} frames, {len(parts)} deltas, responded={responded})"
        ),
    ):
        await conn.ws.send(text)
        while complete is None or not responded:
            if frames >= max_frames:
                raise BenchError(f"stream: more than {max_frames} frames without message.complete")
            raw = await conn.ws.recv()
            frames += 1
            msg = json.loads(raw)
            for item in msg if isinstance(msg, list) else [msg]:
                if item.get("id") == rid:
                    if "error" in item:
                        raise BenchError(f"test.stream failed: {item['error']}")
                    responded = True
                    continue
                if item.get("method") != "event":
                    continue
                params = item["params"]
                if params.get("session_id") != sid:
                    continue
                seq = params.get("seq")
                if last_seq is not None and seq != last_seq + 1:
                    seq_ok = False
                last_seq = seq
                type_ = params.get("type")
                if type_ == "message.delta":
                    if not parts:
                        first_delta = time.perf_counter() - t0
                    delta_frames += 1
                    parts.append(params["payload"]["text"])
                elif type_ == "message.complete":
                    complete = params.get("payload") or {}
                    elapsed = time.perf_counter() - t0
    got = "".join(parts)
    exact = got == want and complete.get("text") == want
    problem = ""
    if not exact:
        problem = f"text mismatch: got {len(got)} chars, want {len(want)}"
    elif not seq_ok:
        problem = "seq gap"
    return StreamRun(
        count, delay_ms, elapsed, first_delta, frames, delta_frames, len(got), exact, seq_ok, problem
    )


@dataclass
class ParallelStreams:
    streams: int
    count: int
    elapsed: float  # first request sent -> last message.complete
    frames: int
    chars: int
    exact: bool
    problem: str = ""

    @property
    def chars_per_s(self) -> float:
        return self.chars / self.elapsed if self.elapsed > 0 else math.nan

    @property
    def deltas_per_s(self) -> float:
        return self.streams * self.count / self.elapsed if self.elapsed > 0 else math.nan


async def parallel_streams(conns: list[Conn], count: int, timeout: float) -> ParallelStreams:
    t0 = time.perf_counter()
    runs = await asyncio.gather(*(stream_once(c, count, 0, timeout) for c in conns))
    elapsed = time.perf_counter() - t0
    problems = sorted({r.problem for r in runs if r.problem})
    return ParallelStreams(
        len(conns),
        count,
        elapsed,
        sum(r.frames for r in runs),
        sum(r.chars for r in runs),
        all(r.exact and r.seq_ok for r in runs),
        "; ".join(problems),
    )


# -- round trips ---------------------------------------------------------------


@dataclass
class RoundTrips:
    method: str
    conns: int
    calls: int
    elapsed: float
    latencies: list[float] = field(repr=False)  # sorted, seconds

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.elapsed if self.elapsed > 0 else math.nan

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)


async def _caller(
    conn: Conn,
    method: str,
    params: dict[str, Any],
    deadline: float,
    max_calls: int,
    latencies: list[float] | None,
) -> None:
    ws = conn.ws
    perf = time.perf_counter
    loads = json.loads
    for _ in range(max_calls):
        if perf() >= deadline:
            return
        rid, text = conn.frame(method, params)
        t0 = perf()
        await ws.send(text)
        for _ in range(MAX_SKIPPED_FRAMES):
            msg = loads(await ws.recv())
            if isinstance(msg, dict) and msg.get("id") == rid:
                break
        else:
            raise BenchError(f"{method}: no response")
        if latencies is not None:
            latencies.append(perf() - t0)
        if "error" in msg:
            raise BenchError(f"{method} failed: {msg['error']}")


async def round_trips(
    conns: list[Conn],
    method: str,
    *,
    session_scoped: bool,
    duration: float,
    warmup: float,
    max_calls: int,
    measure: contextlib.AbstractContextManager[Any] | None = None,
) -> RoundTrips:
    """Every connection calls ``method`` back to back (one outstanding call each) for ``duration``.

    ``measure`` (e.g. a CPU meter) is entered around the measured phase only, not the warm-up.
    """

    def params(c: Conn) -> dict[str, Any]:
        return {"session_id": c.session_id} if session_scoped else {}

    limit = duration + warmup + 30.0
    async with _explain_timeout(asyncio.timeout(limit), lambda: f"{method}: a call took longer than 30 s"):
        if warmup > 0:
            end = time.perf_counter() + warmup
            await asyncio.gather(*(_caller(c, method, params(c), end, max_calls, None) for c in conns))
        per_conn: list[list[float]] = [[] for _ in conns]
        with measure or contextlib.nullcontext():
            t0 = time.perf_counter()
            deadline = t0 + duration
            await asyncio.gather(
                *(
                    _caller(c, method, params(c), deadline, max_calls, lat)
                    for c, lat in zip(conns, per_conn, strict=True)
                )
            )
            elapsed = time.perf_counter() - t0
    latencies = sorted(x for lat in per_conn for x in lat)
    return RoundTrips(method, len(conns), len(latencies), elapsed, latencies)


# -- turns and timed streams (emit -> receipt latency) -------------------------


def expected_turn_text(count: int) -> str:
    """The demo agent's reply to ``!stream N``: ``"t1 t2 ... tN"``."""
    return " ".join(f"t{i}" for i in range(1, count + 1))


@dataclass
class SessionStream:
    """What one client received of one session's stream (a turn, or a ``test.timed_stream``)."""

    count: int  # deltas emitted
    t0: int  # monotonic ns: the request was sent
    done: int  # monotonic ns: message.complete received here
    events: int  # session events received (each with its seq), deltas merged or not
    delta_events: int
    chars: int  # characters of delta text received
    exact: bool  # text as expected and equal to message.complete.text (timed: every index in order)
    lost: int  # seq numbers skipped + (timed) delta indices missing
    latencies: list[float] = field(repr=False)  # ms, emit -> receipt, one per delta (timed streams)
    first_delta: int = 0  # monotonic ns: the first delta received here
    problem: str = ""

    @property
    def elapsed(self) -> float:
        return (self.done - self.t0) / 1e9

    @property
    def first_delta_ms(self) -> float:
        return (self.first_delta - self.t0) / 1e6 if self.first_delta else math.nan

    @property
    def ok(self) -> bool:
        return self.exact and not self.lost

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed if self.elapsed > 0 else math.nan

    @property
    def deltas_per_s(self) -> float:
        return self.count / self.elapsed if self.elapsed > 0 else math.nan


async def read_session_stream(
    conn: Conn,
    sid: str,
    rid: int | None,
    count: int,
    want: str | None,
    t0: int,
    *,
    until: str = "message.complete",
) -> SessionStream:
    """Read one session's stream on ``conn`` until ``until`` (after ``message.complete``) and the
    response ``rid`` (None: this client did not send the request). Bounded in frames; the caller
    bounds it in time.

    ``want``: the exact text expected (None: a timed stream, whose deltas are ``"<i>:<ns> "`` with
    ``i`` = 0, 1, ... in order; each receipt time is taken right after the frame is read, before
    parsing). Seq must follow the connection's last seen seq of the session (when known) without a
    gap; every skipped number counts as lost.
    """
    ws = conn.ws
    clock = time.monotonic_ns
    loads = json.loads
    parts: list[str] = []
    latencies: list[float] = []
    events = delta_events = lost = 0
    last_seq = conn.last_seq.get(sid)
    next_index = 0
    in_order = True
    complete: dict[str, Any] | None = None
    done = first_delta = 0
    ended = False
    responded = rid is None
    problem = ""
    max_frames = 3 * count + 1000
    for _ in range(max_frames):
        if ended and responded:
            break
        raw = await ws.recv()
        recv_ns = clock()
        msg = loads(raw)
        for item in msg if isinstance(msg, list) else [msg]:
            if rid is not None and item.get("id") == rid:
                if "error" in item:
                    raise BenchError(f"request failed: {item['error']}")
                responded = True
                continue
            if item.get("method") != "event":
                continue
            params = item["params"]
            if params.get("session_id") != sid:
                continue
            events += 1
            seq = params.get("seq")
            if not isinstance(seq, int):
                problem = problem or "event without seq"
            else:
                if last_seq is not None and seq != last_seq + 1:
                    lost += max(0, seq - last_seq - 1)
                    problem = problem or f"seq {last_seq} -> {seq}"
                last_seq = seq
            type_ = params.get("type")
            if type_ == "message.delta":
                if not delta_events:
                    first_delta = recv_ns
                delta_events += 1
                text = params["payload"]["text"]
                parts.append(text)
                if want is None:
                    for word in text.split():
                        index, _, ns = word.partition(":")
                        if index != str(next_index) and in_order:
                            in_order = False
                            problem = problem or f"delta {next_index} expected, got {index!r}"
                        next_index += 1
                        latencies.append((recv_ns - int(ns)) / 1e6)
            elif type_ == "message.complete" and complete is None:
                complete = params.get("payload") or {}
                done = recv_ns
                ended = until == "message.complete"
            elif type_ == until and complete is not None:
                ended = True
    else:
        raise BenchError(f"stream: more than {max_frames} frames without {until}")
    conn.last_seq[sid] = last_seq
    got = "".join(parts)
    assert complete is not None
    if want is not None:
        exact = got == want and complete.get("text") == want
    else:
        exact = in_order and next_index == count and got == complete.get("text")
        lost += max(0, count - next_index)  # deltas missing from the text
    if not exact and not problem:
        problem = f"text mismatch: got {len(got)} chars" + (f", want {len(want)}" if want is not None else "")
    return SessionStream(
        count, t0, done, events, delta_events, len(got), exact, lost, latencies, first_delta, problem
    )


async def session_stream(
    conn: Conn,
    method: str,
    params: dict[str, Any],
    count: int,
    want: str | None,
    timeout: float,
    *,
    until: str = "message.complete",
    watchers: list[Conn] = (),  # type: ignore[assignment]
) -> tuple[SessionStream, list[SessionStream]]:
    """Send ``method`` on ``conn`` (its session) and read the stream there and on every watcher
    (other clients attached to the same session), all at once."""
    sid = params["session_id"]
    rid, text = conn.frame(method, params)
    t0 = time.monotonic_ns()
    async with _explain_timeout(
        asyncio.timeout(timeout), lambda: f"{method}: stream not complete within {timeout:g} s"
    ):
        await conn.ws.send(text)
        runs = await asyncio.gather(
            read_session_stream(conn, sid, rid, count, want, t0, until=until),
            *(read_session_stream(w, sid, None, count, want, t0, until=until) for w in watchers),
        )
    return runs[0], list(runs[1:])


@dataclass
class ParallelSessions:
    """N sessions streaming at once, one connection each; aggregate figures."""

    runs: list[SessionStream] = field(repr=False)
    t0: int
    done: int  # the last message.complete

    @property
    def elapsed(self) -> float:
        return (self.done - self.t0) / 1e9

    @property
    def chars(self) -> int:
        return sum(r.chars for r in self.runs)

    @property
    def chars_per_s(self) -> float:
        return self.chars / self.elapsed if self.elapsed > 0 else math.nan

    @property
    def deltas_per_s(self) -> float:
        return sum(r.count for r in self.runs) / self.elapsed if self.elapsed > 0 else math.nan

    @property
    def events(self) -> int:
        return sum(r.events for r in self.runs)

    @property
    def delta_events(self) -> int:
        return sum(r.delta_events for r in self.runs)

    @property
    def lost(self) -> int:
        return sum(r.lost for r in self.runs)

    @property
    def exact(self) -> bool:
        return all(r.exact for r in self.runs)

    @property
    def problem(self) -> str:
        return "; ".join(sorted({r.problem for r in self.runs if r.problem}))


async def parallel_sessions(
    conns: list[Conn],
    method: str,
    extra: dict[str, Any],
    count: int,
    want: str | None,
    timeout: float,
    *,
    until: str = "message.complete",
) -> ParallelSessions:
    """Every connection runs ``method {session_id, **extra}`` on its session, all at once."""
    t0 = time.monotonic_ns()
    pairs = await asyncio.gather(
        *(
            session_stream(
                c, method, {"session_id": c.session_id, **extra}, count, want, timeout, until=until
            )
            for c in conns
        )
    )
    runs = [run for run, _ in pairs]
    return ParallelSessions(runs, t0, max(r.done for r in runs))
