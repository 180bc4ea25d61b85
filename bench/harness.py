"""Orchestration and report of ``bench/run.py`` (see there and bench/README.md).

Every server (the bare baseline and each gateway configuration) is started up
front, pinned to one core while this client runs on the other, and the
workloads are interleaved across the servers in short rounds (rotating the
order), so slow drift of a shared machine lands on every server alike rather
than on whichever ran last. Figures are medians over the rounds; the spread
column says how much the rounds disagreed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import websockets
from client import (
    BenchError,
    Conn,
    ParallelSessions,
    ParallelStreams,
    RoundTrips,
    SessionStream,
    StreamRun,
    close_many,
    expected_text,
    expected_turn_text,
    open_many,
    parallel_sessions,
    parallel_streams,
    percentile,
    round_trips,
    session_stream,
    stream_once,
)
from procs import (
    Gateway,
    RedisServer,
    UvicornGateway,
    WorkerCluster,
    free_port,
    migrate,
    server_env,
    wait_port,
)

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
STREAM_TIMEOUT = 60.0
SERVER_CPU = 1  # every server process is pinned here ...
CLIENT_CPU = 0  # ... and this client here (when the machine has 2+ cores and --no-pin is not given)
BARE = "bare websockets"
# Round-trip rows: (method, session-scoped); test.echo only at 1 connection.
CALLS = [("gateway.ping", False), ("session.history", True), ("test.echo", False)]


# -- processes -----------------------------------------------------------------


class BareServer:
    """bench/bare_server.py in its own process (so it gets a core of its own, like the gateway)."""

    def __init__(self, logdir: Path) -> None:
        self.port = free_port()
        self.log_path = logdir / f"bare-{self.port}.log"
        argv = [sys.executable, str(BENCH / "bare_server.py"), "--port", str(self.port)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port, proc=self.proc)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def can_pin() -> bool:
    return hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2


def pin(pid: int, cpus: set[int]) -> None:
    """Pin every thread of a process (threads it starts later inherit the mask)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tids = [str(pid)]
    for tid in tids:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(tid), cpus)


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int | None) -> float:
    """user+system CPU of a process (Linux /proc); NaN when unknown."""
    if pid is None:
        return math.nan
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return math.nan


# Every process this run started (servers, redis); set once they are up.
OUR_PIDS: list[int] = []
# A round during which other processes used more of the machine than this is measured again ...
NOISY_SHARE = 0.10
# ... at most this many times.
MAX_REDO = 2


class CpuMeter:
    """CPU used by the server, the Redis server and this client across a block, and by everyone else."""

    def __init__(self, server_pid: int | None, redis_pid: int | None) -> None:
        self.pids = (server_pid, redis_pid)
        self.server = self.redis = self.client = self.wall = 0.0
        self.others = 0.0  # share of the machine used by processes not of this run

    def __enter__(self) -> CpuMeter:
        self.t0 = time.perf_counter()
        self.c0 = [cpu_seconds(p) for p in self.pids] + [time.process_time()]
        self.m0 = machine_jiffies()
        self.o0 = our_user_seconds()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall = time.perf_counter() - self.t0
        c1 = [cpu_seconds(p) for p in self.pids] + [time.process_time()]
        self.server, self.redis, self.client = (b - a for a, b in zip(self.c0, c1, strict=True))
        m1 = machine_jiffies()
        ours = our_user_seconds() - self.o0
        if self.m0 is not None and m1 is not None and m1[2] > self.m0[2] and not math.isnan(ours):
            busy = (m1[0] - self.m0[0] + m1[1] - self.m0[1]) / _CLK_TCK
            self.others = max(0.0, busy - ours) / ((m1[2] - self.m0[2]) / _CLK_TCK)


def user_seconds(pid: int) -> float:
    """User-mode CPU of a process; NaN when unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[11]) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return math.nan


def machine_jiffies() -> tuple[int, int, int] | None:
    """(user+nice, steal, total) jiffies of the whole machine, from /proc/stat.

    Only user time is compared with this run's own: other programs (a test run) show up there,
    while kernel threads doing this run's network work (ksoftirqd) only add system time.
    """
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    v += [0] * (8 - len(v))
    return v[0] + v[1], v[7], sum(v[:8])


def our_user_seconds() -> float:
    return sum(user_seconds(p) for p in OUR_PIDS) + os.times().user


def machine_busy(seconds: float) -> float | None:
    """Fraction of the whole machine busy (incl. steal) over ``seconds``."""
    a = machine_jiffies()
    time.sleep(seconds)
    b = machine_jiffies()
    if a is None or b is None or b[2] == a[2]:
        return None
    return ((b[0] - a[0]) + (b[1] - a[1])) / (b[2] - a[2])


class LoadWatch:
    """How much of the machine (user time) processes other than the benchmark's used while it measured."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    def __enter__(self) -> LoadWatch:
        self.m0 = machine_jiffies()
        self.c0 = sum(user_seconds(p) for p in self.pids) + os.times().user
        return self

    def __exit__(self, *exc: Any) -> None:
        self.m1 = machine_jiffies()
        self.c1 = sum(user_seconds(p) for p in self.pids) + os.times().user

    def others(self) -> tuple[float, float] | None:
        """(share of the machine used by other processes, share stolen by the hypervisor)."""
        if self.m0 is None or self.m1 is None or self.m1[2] == self.m0[2]:
            return None
        total = (self.m1[2] - self.m0[2]) / _CLK_TCK  # CPU-seconds of the machine
        busy = (self.m1[0] - self.m0[0]) / _CLK_TCK
        steal = (self.m1[1] - self.m0[1]) / _CLK_TCK
        ours = self.c1 - self.c0
        if math.isnan(ours):
            return None
        return max(0.0, busy - ours) / total, steal / total


def cpu_sum(meters: list[CpuMeter]) -> dict[str, float]:
    out = {k: sum(getattr(m, k) for m in meters) for k in ("server", "redis", "client", "wall")}
    return out


# -- configuration -------------------------------------------------------------


@dataclass
class Config:
    quick: bool
    layers: list[str]
    servers: list[str]
    redis_layers: list[str]
    count: int
    paced_ms: int
    repeat: int
    duration: float
    rounds: int
    round_warmup: float
    conns: int
    streams: int
    per_delta: bool
    pin: bool
    idle_conns: int
    only: str  # "" (all), "streams", "rpc", "turns" or "cross"
    turns: int = 50  # concurrent sessions of (c); 0 skips it
    turn_paced_ms: int = 5  # spacing of the paced timed streams of (c); 0 skips that row
    turn_rounds: int = 3
    cross_rounds: int = 7
    gateway_settings: dict[str, Any] = field(default_factory=dict)
    max_calls: int = 10_000_000


# The bench measures throughput, not the protective defaults: one client sends as fast as it
# can and (c) opens up to 500 sessions as one anonymous user. --gateway-settings may override.
BENCH_LIMITS: dict[str, Any] = {
    "RATE_LIMIT": None,
    "MAX_SESSIONS_PER_CONNECTION": 0,
    "MAX_SESSIONS_PER_USER": 0,
    "MAX_LIVE_SESSIONS": 0,
}


@dataclass
class Target:
    label: str
    kind: str  # bare | gateway
    server: str = ""  # daphne | uvicorn
    layer: str = ""  # memory | redis
    redis_layer: str = ""  # pubsub | core
    settings: dict[str, Any] = field(default_factory=dict)
    streams_only: bool = False
    diagnostic: bool = False  # shown for insight, never judged against the goals


@dataclass
class Result:
    target: str
    diagnostic: bool = False
    streams: list[dict[str, Any]] = field(default_factory=list)
    rpcs: list[dict[str, Any]] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    cross: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""


def targets_for(cfg: Config) -> list[Target]:
    out = [Target(BARE, "bare")]
    for server in cfg.servers:
        for layer in cfg.layers:
            for rl in cfg.redis_layers if layer == "redis" else [""]:
                label = f"gateway {server}/{layer}" + (f"-{rl}" if rl and len(cfg.redis_layers) > 1 else "")
                out.append(Target(label, "gateway", server, layer, rl, dict(cfg.gateway_settings)))
    if cfg.per_delta and cfg.only in ("", "streams"):
        # The first gateway again with delta merging off: one frame per delta, like the bare server.
        first = out[1]
        settings = {**cfg.gateway_settings, "DELTA_FLUSH_MS": 0}
        out.append(
            Target(
                f"{first.label} flush=0",
                "gateway",
                first.server,
                first.layer,
                first.redis_layer,
                settings,
                streams_only=True,
                diagnostic=True,
            )
        )
    return out


@dataclass(eq=False)
class Live:
    """A started server of one target."""

    target: Target
    server: Any
    redis_pid: int | None
    result: Result

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def label(self) -> str:
        return self.target.label

    def meter(self) -> CpuMeter:
        return CpuMeter(self.server.proc.pid, self.redis_pid)

    def alive(self) -> bool:
        if self.result.error:
            return False
        code = self.server.proc.poll()
        if code is not None:
            self.result.error = f"server exited with code {code}"
            return False
        return True


def active(lives: list[Live], rotation: int = 0) -> list[Live]:
    alive = [live for live in lives if live.alive()]
    if not alive:
        return alive
    k = rotation % len(alive)
    return alive[k:] + alive[:k]


async def guarded(live: Live, step: Callable[[], Awaitable[Any]], say: Callable[[str], None]) -> Any:
    """Run one step against a server; a failure marks that server failed and the run goes on."""
    try:
        return await step()
    except Exception as exc:
        live.result.error = f"{type(exc).__name__}: {exc}"
        say(f"  FAILED {live.label}: {live.result.error}")
        tail = live.server.log_text()[-2000:]
        if tail.strip():
            say("  server log tail:\n    " + tail.replace("\n", "\n    "))
        return None


# -- rows ----------------------------------------------------------------------


def spread_pct(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    if len(values) < 2:
        return math.nan
    mid = statistics.median(values)
    return 100 * (max(values) - min(values)) / mid if mid else math.nan


def stream_row(label: str, mode: str, runs: list[StreamRun], meters: list[CpuMeter]) -> dict[str, Any]:
    mid = sorted(runs, key=lambda r: r.chars_per_s)[len(runs) // 2]  # the median run
    cpu = cpu_sum(meters)
    return {
        "target": label,
        "mode": mode,
        "runs": len(runs),
        "count": mid.count,
        "delay_ms": mid.delay_ms,
        "elapsed_ms": mid.elapsed * 1000,
        "first_delta_ms": mid.first_delta * 1000,
        "frames": mid.frames,
        "delta_frames": mid.delta_frames,
        "chars_per_s": mid.chars_per_s,
        "deltas_per_s": mid.deltas_per_s,
        "spread_pct": spread_pct([r.chars_per_s for r in runs]),
        "exact": all(r.exact and r.seq_ok for r in runs),
        "problem": "; ".join(sorted({r.problem for r in runs if r.problem})),
        "server_cpu_ms": cpu["server"] * 1000 / len(runs),
        "redis_cpu_ms": cpu["redis"] * 1000 / len(runs),
    }


def parallel_row(label: str, runs: list[ParallelStreams], meters: list[CpuMeter]) -> dict[str, Any]:
    mid = sorted(runs, key=lambda r: r.chars_per_s)[len(runs) // 2]
    cpu = cpu_sum(meters)
    return {
        "target": label,
        "mode": f"burst x{mid.streams}",
        "runs": len(runs),
        "count": mid.count,
        "delay_ms": 0,
        "elapsed_ms": mid.elapsed * 1000,
        "first_delta_ms": math.nan,
        "frames": mid.frames,
        "delta_frames": None,
        "chars_per_s": mid.chars_per_s,
        "deltas_per_s": mid.deltas_per_s,
        "spread_pct": spread_pct([r.chars_per_s for r in runs]),
        "exact": all(r.exact for r in runs),
        "problem": "; ".join(sorted({r.problem for r in runs if r.problem})),
        "server_cpu_ms": cpu["server"] * 1000 / len(runs),
        "redis_cpu_ms": cpu["redis"] * 1000 / len(runs),
    }


def rpc_row(label: str, call: str, conns: int, items: list[tuple[RoundTrips, CpuMeter]]) -> dict[str, Any]:
    rates = [rt.calls_per_s for rt, _ in items]
    latencies = sorted(x for rt, _ in items for x in rt.latencies)
    calls = sum(rt.calls for rt, _ in items)
    cpu = cpu_sum([m for _, m in items])
    per_call = 1e6 / max(calls, 1)
    wall = cpu["wall"] or math.nan
    return {
        "target": label,
        "call": call,
        "conns": conns,
        "rounds": len(items),
        "calls": calls,
        "calls_per_s": statistics.median(rates),
        "spread_pct": spread_pct(rates),
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else math.nan,
        "server_us_per_call": cpu["server"] * per_call,
        "redis_us_per_call": cpu["redis"] * per_call,
        "server_cpu_pct": 100 * cpu["server"] / wall,
        "client_cpu_pct": 100 * cpu["client"] / wall,
        "redone": sum(getattr(m, "redone", 0) for _, m in items),
        "others_pct": 100 * max(m.others for _, m in items),
    }


# -- phases --------------------------------------------------------------------


async def streams_phase(lives: list[Live], cfg: Config, say: Callable[[str], None]) -> None:
    say(f"\n== (a) streams of {cfg.count} deltas: {cfg.repeat} bursts per server, interleaved")
    conns: dict[Live, Conn] = {}
    try:
        for live in active(lives):

            async def setup(live: Live = live) -> None:
                conn = conns[live] = await Conn.open(live.url)
                await conn.create_session()
                await stream_once(conn, cfg.count, 0, STREAM_TIMEOUT)  # warm-up

            await guarded(live, setup, say)
        runs: dict[Live, list[StreamRun]] = {live: [] for live in lives}
        meters: dict[Live, list[CpuMeter]] = {live: [] for live in lives}
        for r in range(cfg.repeat):
            for live in active(lives, r):

                async def burst(live: Live = live) -> None:
                    await asyncio.sleep(0.05)  # a quiet period before each stream, as between turns
                    with live.meter() as m:
                        runs[live].append(await stream_once(conns[live], cfg.count, 0, STREAM_TIMEOUT))
                    meters[live].append(m)

                await guarded(live, burst, say)
        for live in lives:
            if runs[live]:
                live.result.streams.append(stream_row(live.label, "burst", runs[live], meters[live]))
                say(f"  {live.label:<32} burst      {live.result.streams[-1]['chars_per_s']:>12,.0f} chars/s")
        if cfg.paced_ms > 0:
            for live in active(lives):

                async def paced(live: Live = live) -> None:
                    await asyncio.sleep(0.05)
                    with live.meter() as m:
                        run = await stream_once(conns[live], cfg.count, cfg.paced_ms, STREAM_TIMEOUT)
                    live.result.streams.append(stream_row(live.label, f"paced {cfg.paced_ms}ms", [run], [m]))
                    say(f"  {live.label:<32} paced      {run.chars_per_s:>12,.0f} chars/s")

                await guarded(live, paced, say)
    finally:
        await close_many(list(conns.values()))

    if cfg.streams < 2:
        return
    many: dict[Live, list[Conn]] = {}
    try:
        for live in active(lives):

            async def setup_many(live: Live = live) -> None:
                many[live] = await open_many(live.url, cfg.streams, with_sessions=True)
                await parallel_streams(many[live], cfg.count, STREAM_TIMEOUT)  # warm-up

            await guarded(live, setup_many, say)
        pruns: dict[Live, list[ParallelStreams]] = {live: [] for live in lives}
        pmeters: dict[Live, list[CpuMeter]] = {live: [] for live in lives}
        for r in range(max(1, cfg.repeat // 2)):
            for live in active(lives, r):

                async def burst_many(live: Live = live) -> None:
                    await asyncio.sleep(0.05)
                    with live.meter() as m:
                        pruns[live].append(await parallel_streams(many[live], cfg.count, STREAM_TIMEOUT))
                    pmeters[live].append(m)

                await guarded(live, burst_many, say)
        for live in lives:
            if pruns[live]:
                live.result.streams.append(parallel_row(live.label, pruns[live], pmeters[live]))
                rate = live.result.streams[-1]["chars_per_s"]
                say(f"  {live.label:<32} burst x{cfg.streams:<3} {rate:>12,.0f} chars/s")
    finally:
        await close_many([c for cs in many.values() for c in cs])


async def rpc_phase(lives: list[Live], cfg: Config, say: Callable[[str], None]) -> None:
    lives = [live for live in lives if not live.target.streams_only]
    per_round = cfg.duration / cfg.rounds
    say(f"\n== (b) round trips: {cfg.rounds} rounds of {per_round:.2g} s per server, interleaved")
    for n in sorted({1, cfg.conns}):
        conns: dict[Live, list[Conn]] = {}
        try:
            for live in active(lives):

                async def setup(live: Live = live, n: int = n, conns: dict[Live, list[Conn]] = conns) -> None:
                    conns[live] = await open_many(live.url, n, with_sessions=True)

                await guarded(live, setup, say)
            for name, scoped in CALLS:
                if n > 1 and name == "test.echo":
                    continue
                items: dict[Live, list[tuple[RoundTrips, CpuMeter]]] = {live: [] for live in lives}
                for r in range(cfg.rounds):
                    for live in active(lives, r):

                        async def measure(
                            live: Live = live,
                            name: str = name,
                            scoped: bool = scoped,
                            items: Any = items,
                            conns: Any = conns,
                        ) -> None:
                            for attempt in range(MAX_REDO + 1):
                                meter = live.meter()
                                rt = await round_trips(
                                    conns[live],
                                    name,
                                    session_scoped=scoped,
                                    duration=cfg.duration / cfg.rounds,
                                    warmup=cfg.round_warmup,
                                    max_calls=cfg.max_calls,
                                    measure=meter,
                                )
                                if meter.others <= NOISY_SHARE or attempt == MAX_REDO:
                                    break
                            meter.redone = attempt
                            items[live].append((rt, meter))

                        await guarded(live, measure, say)
                for live in lives:
                    if items[live] and not live.result.error:
                        row = rpc_row(live.label, name, n, items[live])
                        live.result.rpcs.append(row)
                        say(
                            f"  {live.label:<32} {name:<16} x{n:<3} {row['calls_per_s']:>9,.0f} calls/s"
                            f"  p50 {row['p50_ms']:.3f} ms  p99 {row['p99_ms']:.3f} ms"
                        )
        finally:
            await close_many([c for cs in conns.values() for c in cs])


# -- (c) turns -----------------------------------------------------------------

TURN_TEXT = "turn !stream"  # workload names of the (c) rows
TIMED_BURST = "timed burst"


class PidsMeter:
    """CPU of named processes across a block (None pid: not measured), and how busy everyone else was."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.cpu: dict[str, float] = {}
        self.others = 0.0

    def __enter__(self) -> PidsMeter:
        self.c0 = {k: cpu_seconds(p) for k, p in self.pids.items()}
        self.m0 = machine_jiffies()
        self.o0 = our_user_seconds()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cpu = {k: cpu_seconds(p) - self.c0[k] for k, p in self.pids.items()}
        m1 = machine_jiffies()
        ours = our_user_seconds() - self.o0
        self.others = math.nan  # unknown over a block too short for 10 ms ticks (a burst)
        if self.m0 is not None and m1 is not None and m1[2] - self.m0[2] >= 50 and not math.isnan(ours):
            busy = (m1[0] - self.m0[0] + m1[1] - self.m0[1]) / _CLK_TCK
            self.others = max(0.0, busy - ours) / ((m1[2] - self.m0[2]) / _CLK_TCK)


def latency_figures(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "deltas_timed": len(ordered),
        "p50_ms": percentile(ordered, 50),
        "p99_ms": percentile(ordered, 99),
        "max_ms": ordered[-1] if ordered else math.nan,
    }


def turn_row(
    label: str, workload: str, delay_ms: int, runs: list[ParallelSessions], meters: list[CpuMeter]
) -> dict[str, Any]:
    mid = sorted(runs, key=lambda r: r.chars_per_s)[len(runs) // 2]
    cpu = cpu_sum(meters)
    return {
        "target": label,
        "workload": workload,
        "rounds": len(runs),
        "sessions": len(mid.runs),
        "count": mid.runs[0].count,
        "delay_ms": delay_ms,
        "elapsed_ms": mid.elapsed * 1000,
        "chars_per_s": mid.chars_per_s,
        "deltas_per_s": mid.deltas_per_s,
        "spread_pct": spread_pct([r.chars_per_s for r in runs]),
        "events_per_session": statistics.fmean(r.events / len(r.runs) for r in runs),
        "first_delta_ms": statistics.median(s.first_delta_ms for r in runs for s in r.runs),
        **latency_figures([x for r in runs for s in r.runs for x in s.latencies]),
        "lost": sum(r.lost for r in runs),
        "exact": all(r.exact for r in runs),
        "problem": "; ".join(sorted({r.problem for r in runs if r.problem})),
        "server_cpu_ms": cpu["server"] * 1000 / len(runs),
        "others_pct": 100 * max(m.others for m in meters),
    }


@dataclass
class TurnWorkload:
    name: str
    method: str
    extra: dict[str, Any]  # params besides session_id
    count: int  # deltas per session
    want: str | None = None  # the exact text; None: a timed stream (checked by its indices)
    until: str = "message.complete"  # the stream ends with this event (after message.complete)


def check_parallel(run: ParallelSessions, what: str) -> None:
    """A warm-up must be exact too (its figures are dropped, not its errors)."""
    if run.lost or not run.exact:
        raise BenchError(f"{what}: lost {run.lost}, {run.problem}")


async def turns_phase(lives: list[Live], cfg: Config, say: Callable[[str], None]) -> None:
    lives = [live for live in lives if not live.target.diagnostic]
    n, count = cfg.turns, cfg.count
    paced_count = min(count, max(1, 1000 // cfg.turn_paced_ms)) if cfg.turn_paced_ms else 0
    say(
        f"\n== (c) turns: {n} concurrent sessions, one connection each; {cfg.turn_rounds} rounds per"
        " server, interleaved"
    )
    want = expected_turn_text(count)
    workloads = [
        TurnWorkload(TURN_TEXT, "prompt.submit", {"text": f"!stream {count}"}, count, want, "session.info"),
        TurnWorkload(TIMED_BURST, "test.timed_stream", {"count": count, "delay_ms": 0}, count),
    ]
    if paced_count:
        extra = {"count": paced_count, "delay_ms": cfg.turn_paced_ms}
        workloads.append(
            TurnWorkload(f"timed paced {cfg.turn_paced_ms}ms", "test.timed_stream", extra, paced_count)
        )
    conns: dict[Live, list[Conn]] = {}

    async def one_round(live: Live, wl: TurnWorkload) -> ParallelSessions:
        return await parallel_sessions(
            conns[live], wl.method, wl.extra, wl.count, wl.want, STREAM_TIMEOUT, until=wl.until
        )

    try:
        for live in active(lives):

            async def setup(live: Live = live) -> None:
                conns[live] = await open_many(live.url, n, with_sessions=True)
                for wl in workloads[:2]:  # warm-up
                    check_parallel(await one_round(live, wl), f"warm-up {wl.name}")

            await guarded(live, setup, say)
        for wl in workloads:
            runs: dict[Live, list[tuple[ParallelSessions, CpuMeter]]] = {live: [] for live in lives}
            for r in range(cfg.turn_rounds):
                for live in active(lives, r):

                    async def measure(live: Live = live, wl: TurnWorkload = wl, runs: Any = runs) -> None:
                        await asyncio.sleep(0.05)  # a quiet period before each round, as between turns
                        with live.meter() as m:
                            run = await one_round(live, wl)
                        runs[live].append((run, m))

                    await guarded(live, measure, say)
            for live in lives:
                if runs[live] and not live.result.error:
                    got, meters = zip(*runs[live], strict=True)
                    row = turn_row(live.label, wl.name, wl.extra.get("delay_ms", 0), list(got), list(meters))
                    live.result.turns.append(row)
                    lat = (
                        ""
                        if wl.want is not None
                        else f"  p50 {row['p50_ms']:.1f} ms  p99 {row['p99_ms']:.1f} ms"
                    )
                    say(
                        f"  {live.label:<32} {wl.name:<18} {row['chars_per_s']:>12,.0f} chars/s"
                        f"{lat}  lost {row['lost']}"
                    )
    finally:
        await close_many([c for cs in conns.values() for c in cs])


# -- (d) cross-process ---------------------------------------------------------


class BenchCluster(WorkerCluster):
    """``WorkerCluster`` that stops what it started when it fails to come up."""

    def __init__(self, env: dict[str, str], logdir: Path, workers: int) -> None:
        try:
            super().__init__(env, logdir, workers)
        except BaseException:
            if getattr(self, "proc", None) is not None:
                self.workers = getattr(self, "workers", [])
                self.stop()
            raise


@dataclass(eq=False)
class ClusterLive:
    """A started 2-worker cluster on a private Redis, for one channels_redis layer."""

    redis_layer: str
    server: BenchCluster  # named like Live.server for guarded()
    redis: RedisServer
    result: Result

    @property
    def label(self) -> str:
        return f"cluster {self.redis_layer}"

    def meter(self) -> PidsMeter:
        w1, w2 = self.server.workers[:2]
        return PidsMeter({"w1": w1.pid, "w2": w2.pid, "redis": self.redis.proc.pid})

    def alive(self) -> bool:
        if self.result.error:
            return False
        dead = [w.name for w in self.server.workers if not w.alive()]
        if self.server.proc.poll() is not None or dead:
            self.result.error = f"cluster process or worker exited ({', '.join(dead) or 'manager'})"
            return False
        return True


CROSS_WHERE = ("same worker", "other worker")


def cross_row(
    layer: str, variant: str, where: str, runs: list[SessionStream], meters: list[PidsMeter]
) -> dict[str, Any]:
    n = len(runs)
    return {
        "redis_layer": layer,
        "variant": variant,
        "where": where,
        "rounds": n,
        "count": runs[0].count,
        **latency_figures([x for r in runs for x in r.latencies]),
        "events_per_s": statistics.median(r.events_per_s for r in runs),
        "deltas_per_s": statistics.median(r.deltas_per_s for r in runs),
        "events_per_stream": statistics.fmean(r.events for r in runs),
        "elapsed_ms": statistics.median(r.elapsed for r in runs) * 1000,
        "lost": sum(r.lost for r in runs),
        "exact": all(r.exact for r in runs),
        "problem": "; ".join(sorted({r.problem for r in runs if r.problem})),
        "w1_cpu_ms": sum(m.cpu["w1"] for m in meters) * 1000 / n,
        "w2_cpu_ms": sum(m.cpu["w2"] for m in meters) * 1000 / n,
        "redis_cpu_ms": sum(m.cpu["redis"] for m in meters) * 1000 / n,
        "others_pct": 100 * max((m.others for m in meters if not math.isnan(m.others)), default=math.nan),
    }


async def cross_phase(clusters: list[ClusterLive], cfg: Config, say: Callable[[str], None]) -> None:
    count = cfg.count
    variants = [("burst", 0)] + ([(f"paced {cfg.paced_ms}ms", cfg.paced_ms)] if cfg.paced_ms else [])
    say(
        f"\n== (d) cross-process: {count} timed deltas per stream; {cfg.cross_rounds} rounds,"
        f" layers {'/'.join(c.redis_layer for c in clusters)} interleaved"
    )
    pairs: dict[ClusterLive, tuple[Conn, Conn]] = {}
    opened: list[Conn] = []
    try:
        for cl in active(clusters):

            async def setup(cl: ClusterLive = cl) -> None:
                w1, w2 = cl.server.workers[:2]
                owner = await Conn.open(w1.url)
                opened.append(owner)
                created = await owner.call("session.create", {"close_on_disconnect": True, "title": ""})
                sid, key = created["session_id"], created["stored_session_id"]
                info = await owner.wait_event("session.info", sid)
                owner.session_id = sid
                owner.last_seq[sid] = info.get("seq")
                other = await Conn.open(w2.url)
                opened.append(other)
                resumed = await other.call("session.resume", {"session_id": key, "omit_messages": True})
                if resumed.get("session_id") != sid:
                    raise BenchError(
                        f"session.resume on worker 2 gave {resumed.get('session_id')}, not {sid}"
                    )
                other.session_id = sid
                pairs[cl] = (owner, other)
                params = {"session_id": sid, "count": count, "delay_ms": 0}
                for _ in range(2):  # warm-up: also sets both clients' last seen seq
                    same, (cross,) = await session_stream(
                        owner, "test.timed_stream", params, count, None, STREAM_TIMEOUT, watchers=[other]
                    )
                    for run, where in ((same, "same"), (cross, "other")):
                        if run.lost or not run.exact:
                            raise BenchError(f"warm-up ({where} worker): lost {run.lost}, {run.problem}")

            await guarded(cl, setup, say)
        runs = {(cl, v, w): [] for cl in clusters for v, _ in variants for w in CROSS_WHERE}
        meters: dict[tuple[ClusterLive, str], list[PidsMeter]] = {
            (cl, v): [] for cl in clusters for v, _ in variants
        }
        for r in range(cfg.cross_rounds):
            for variant, delay in variants:
                for cl in active(clusters, r):

                    async def measure(
                        cl: ClusterLive = cl, variant: str = variant, delay: int = delay
                    ) -> None:
                        owner, other = pairs[cl]
                        params = {"session_id": owner.session_id, "count": count, "delay_ms": delay}
                        await asyncio.sleep(0.05)  # a quiet period before each stream, as between turns
                        with cl.meter() as m:
                            same, (cross,) = await session_stream(
                                owner,
                                "test.timed_stream",
                                params,
                                count,
                                None,
                                STREAM_TIMEOUT,
                                watchers=[other],
                            )
                        runs[(cl, variant, "same worker")].append(same)
                        runs[(cl, variant, "other worker")].append(cross)
                        meters[(cl, variant)].append(m)

                    await guarded(cl, measure, say)
        for cl in clusters:
            if cl.result.error:
                continue
            for variant, _ in variants:
                for where in CROSS_WHERE:
                    got = runs[(cl, variant, where)]
                    if got:
                        row = cross_row(cl.redis_layer, variant, where, got, meters[(cl, variant)])
                        cl.result.cross.append(row)
                        say(
                            f"  {cl.redis_layer:<7} {variant:<10} {where:<13} p50 {row['p50_ms']:7.2f} ms"
                            f"  p99 {row['p99_ms']:7.2f} ms  {row['events_per_s']:8,.0f} events/s"
                            f"  {row['deltas_per_s']:9,.0f} deltas/s  lost {row['lost']}"
                        )
    finally:
        await close_many(opened)


# -- the run -------------------------------------------------------------------


class Run:
    """All processes of one benchmark run; ``close()`` stops every one of them."""

    def __init__(self, cfg: Config, keep: bool) -> None:
        self.cfg = cfg
        self.keep = keep
        self.tmp = Path(tempfile.mkdtemp(prefix="ws_gateway_bench_"))
        self.logdir = self.tmp / "logs"
        self.logdir.mkdir()
        self.procs: list[Any] = []
        self.redis: RedisServer | None = None
        self.redis_url = ""
        self.db_url = f"sqlite:///{self.tmp / 'bench.sqlite3'}"
        self.failed = False

    def say(self, text: str) -> None:
        print(text, flush=True)

    def prepare(self) -> None:
        self.say(f"temporary directory: {self.tmp}")
        t0 = time.perf_counter()
        migrate(server_env(self.db_url, None))
        self.say(f"migrated {self.db_url} in {time.perf_counter() - t0:.1f}s")
        if "redis" in self.cfg.layers:
            self.redis_url = os.environ.get("REDIS_URL", "")
            if self.redis_url:
                self.say(f"Redis: REDIS_URL={self.redis_url} (its CPU is not measured)")
            else:
                self.redis = RedisServer(self.tmp / "redis")
                self.procs.append(self.redis)
                self.redis_url = self.redis.url
                self.say(f"Redis: private redis-server ({self.redis.binary}) on {self.redis_url}")

    def start(self, target: Target) -> Live:
        t0 = time.perf_counter()
        if target.kind == "bare":
            server: Any = BareServer(self.logdir)
        else:
            extra = {"GATEWAY_SETTINGS": json.dumps(target.settings)} if target.settings else {}
            if target.layer == "redis":
                extra["REDIS_LAYER"] = target.redis_layer
            env = server_env(self.db_url, self.redis_url if target.layer == "redis" else None, extra)
            cls = UvicornGateway if target.server == "uvicorn" else Gateway
            name = target.label.replace(" ", "_").replace("/", "-").replace("=", "")
            server = cls(env, self.logdir, name)
        self.procs.append(server)
        if self.cfg.pin:
            pin(server.proc.pid, {SERVER_CPU})
        took = time.perf_counter() - t0
        self.say(f"started {target.label:<32} {server.url:<32} pid {server.proc.pid} ({took:.1f}s)")
        redis_pid = self.redis.proc.pid if (self.redis and target.layer == "redis") else None
        return Live(target, server, redis_pid, Result(target.label, target.diagnostic))

    def start_cluster(self, redis_layer: str) -> ClusterLive:
        """``manage.py gateway_workers --workers 2`` on a private Redis of its own (always private:
        the cluster's keys and the layer's channels must not meet another run's), the run's database."""
        t0 = time.perf_counter()
        redis = RedisServer(self.tmp / f"redis-{redis_layer}")
        self.procs.append(redis)
        settings = {**self.cfg.gateway_settings, "DRAIN_S": 2.0}
        env = server_env(
            self.db_url, redis.url, {"REDIS_LAYER": redis_layer, "GATEWAY_SETTINGS": json.dumps(settings)}
        )
        cluster = BenchCluster(env, self.logdir, 2)
        self.procs.append(cluster)
        if self.cfg.pin:
            for pid in [cluster.proc.pid] + [w.pid for w in cluster.workers]:
                pin(pid, {SERVER_CPU})
        took = time.perf_counter() - t0
        ports = ", ".join(f"{w.name} :{w.port} pid {w.pid}" for w in cluster.workers)
        self.say(f"started cluster {redis_layer:<24} {ports}; redis :{redis.port} ({took:.1f}s)")
        return ClusterLive(redis_layer, cluster, redis, Result(f"cluster {redis_layer}"))

    def close(self) -> None:
        for proc in reversed(self.procs):
            try:
                proc.stop()
            except Exception as exc:  # keep stopping the others
                print(f"warning: could not stop {proc}: {exc}", file=sys.stderr)
                with contextlib.suppress(Exception):
                    proc.proc.kill()
        self.procs.clear()
        if self.keep or self.failed:
            print(f"logs kept in {self.logdir}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


async def run_phases(
    lives: list[Live], clusters: list[ClusterLive], cfg: Config, say: Callable[[str], None]
) -> None:
    idle: list[Conn] = []
    try:
        if cfg.idle_conns:
            say(f"\nopening {cfg.idle_conns} idle connections per server (kept open for the whole run)")
            for live in active(lives):

                async def open_idle(live: Live = live) -> None:
                    idle.extend(await open_many(live.url, cfg.idle_conns, with_sessions=False))

                await guarded(live, open_idle, say)
        if cfg.only in ("", "streams"):
            await streams_phase(lives, cfg, say)
        if cfg.only in ("", "rpc"):
            await rpc_phase(lives, cfg, say)
        if cfg.only in ("", "turns") and cfg.turns:
            await turns_phase(lives, cfg, say)
        if clusters:
            await cross_phase(clusters, cfg, say)
    finally:
        await close_many(idle)


# -- report --------------------------------------------------------------------


def fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = []
    for cells in [headers, ["-" * w for w in widths], *rows]:
        padded = (
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def redone(row: dict[str, Any]) -> str:
    """Rounds measured again because other processes were busy; flags a row still noisy after that."""
    text = str(row["redone"])
    if row["others_pct"] > 100 * NOISY_SHARE:
        text += f" (noisy: others {row['others_pct']:.0f}%)"
    return text


def streams_table(out: list[str], streams: list[dict[str, Any]], cfg: Config, chars: int) -> None:
    out.append(
        f"\n(a) Streams: {cfg.count} deltas 'w0 '..'w{cfg.count - 1}' ({chars} chars) emitted by a plain"
        " thread; time = request sent -> message.complete received; median run"
    )
    out.append(
        table(
            [
                "target",
                "mode",
                "runs",
                "ms",
                "chars/s",
                "deltas/s",
                "spread",
                "frames",
                "delta frames",
                "1st delta ms",
                "srv CPU ms",
                "exact",
            ],
            [
                [
                    s["target"],
                    s["mode"],
                    str(s["runs"]),
                    fmt(s["elapsed_ms"], ".1f"),
                    fmt(s["chars_per_s"], ",.0f"),
                    fmt(s["deltas_per_s"], ",.0f"),
                    fmt(s["spread_pct"], ".0f") + ("%" if s["runs"] > 1 else ""),
                    str(s["frames"]),
                    fmt(s["delta_frames"], "d"),
                    fmt(s["first_delta_ms"], ".2f"),
                    fmt(s["server_cpu_ms"], ".0f"),
                    "yes" if s["exact"] else f"NO ({s['problem']})",
                ]
                for s in streams
            ],
            {2, 3, 4, 5, 6, 7, 8, 9, 10},
        )
    )


def rpcs_table(out: list[str], rpcs: list[dict[str, Any]], cfg: Config) -> None:
    out.append(
        f"\n(b) Round trips: one outstanding call per connection; {cfg.rounds} rounds x"
        f" {cfg.duration / cfg.rounds:.2g} s per row; calls/s = median round;"
        " latency = send -> response (client side), all rounds"
    )
    out.append(
        table(
            [
                "target",
                "call",
                "conns",
                "calls",
                "calls/s",
                "spread",
                "p50 ms",
                "p99 ms",
                "srv µs/call",
                "srv CPU%",
                "client CPU%",
                "redone",
            ],
            [
                [
                    x["target"],
                    x["call"],
                    str(x["conns"]),
                    str(x["calls"]),
                    fmt(x["calls_per_s"], ",.0f"),
                    fmt(x["spread_pct"], ".0f") + "%",
                    fmt(x["p50_ms"], ".3f"),
                    fmt(x["p99_ms"], ".3f"),
                    fmt(x["server_us_per_call"], ".0f"),
                    fmt(x["server_cpu_pct"], ".0f"),
                    fmt(x["client_cpu_pct"], ".0f"),
                    redone(x),
                ]
                for x in rpcs
            ],
            {2, 3, 4, 5, 6, 7, 8, 9, 10},
        )
    )


def turns_table(out: list[str], turns: list[dict[str, Any]], cfg: Config) -> None:
    out.append(
        f"\n(c) Turns: {cfg.turns} sessions streaming at once, one connection each; {cfg.turn_rounds} rounds,"
        " chars/s = median round (aggregate: all delta text / first request -> last message.complete)"
    )
    out.append(
        f"    '{TURN_TEXT}': prompt.submit '!stream {cfg.count}' (gateway: the real demo agent's turn;"
        " bare: the same events from a thread), for the text rate only"
    )
    out.append(
        "    'timed ...': test.timed_stream, deltas carry time.monotonic_ns() at emit; latency = receipt"
        " - emit of every delta (merged ones too), all rounds; 1st delta ms: request -> first delta,"
        " median session"
    )
    out.append(
        table(
            [
                "target",
                "workload",
                "rounds",
                "deltas",
                "ms",
                "chars/s",
                "deltas/s",
                "spread",
                "events/session",
                "1st delta ms",
                "p50 ms",
                "p99 ms",
                "max ms",
                "srv CPU ms",
                "lost",
                "exact",
            ],
            [
                [
                    t["target"],
                    t["workload"],
                    str(t["rounds"]),
                    f"{t['sessions']}x{t['count']}",
                    fmt(t["elapsed_ms"], ",.0f"),
                    fmt(t["chars_per_s"], ",.0f"),
                    fmt(t["deltas_per_s"], ",.0f"),
                    fmt(t["spread_pct"], ".0f") + "%",
                    fmt(t["events_per_session"], ",.0f"),
                    fmt(t["first_delta_ms"], ".1f"),
                    fmt(t["p50_ms"], ".2f"),
                    fmt(t["p99_ms"], ".2f"),
                    fmt(t["max_ms"], ".1f"),
                    fmt(t["server_cpu_ms"], ",.0f"),
                    str(t["lost"]),
                    ("yes" if t["exact"] else f"NO ({t['problem']})")
                    + (
                        f" (noisy: others {t['others_pct']:.0f}%)"
                        if t["others_pct"] > 100 * NOISY_SHARE
                        else ""
                    ),
                ]
                for t in turns
            ],
            {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
        )
    )


def cross_tables(out: list[str], rows: list[dict[str, Any]], cfg: Config) -> None:
    layers = list(dict.fromkeys(x["redis_layer"] for x in rows))
    variants = list(dict.fromkeys(x["variant"] for x in rows))
    out.append(
        f"\n(d) Cross-process: a 2-worker cluster per Redis layer (gateway_workers, private redis-server);"
        f" session on worker 1, test.timed_stream of {cfg.count} deltas run there; one client on worker 1"
        " (same worker) and one on worker 2 attached with session.resume (other worker) read the same"
        f" stream at once; {cfg.cross_rounds} rounds, layers interleaved"
    )
    out.append(
        "    latency = receipt - emit of every delta, all rounds; events/s and deltas/s per session ="
        " median round (request -> message.complete on that client); events = frames per stream;"
        " CPU ms per stream of worker 1, worker 2 and redis-server (10 ms ticks)"
    )
    out.append(
        table(
            [
                "layer",
                "variant",
                "client on",
                "rounds",
                "p50 ms",
                "p99 ms",
                "max ms",
                "events/s",
                "deltas/s",
                "events",
                "lost",
                "exact",
                "w1 CPU",
                "w2 CPU",
                "redis CPU",
            ],
            [
                [
                    x["redis_layer"],
                    x["variant"],
                    x["where"],
                    str(x["rounds"]),
                    fmt(x["p50_ms"], ".2f"),
                    fmt(x["p99_ms"], ".2f"),
                    fmt(x["max_ms"], ".1f"),
                    fmt(x["events_per_s"], ",.0f"),
                    fmt(x["deltas_per_s"], ",.0f"),
                    fmt(x["events_per_stream"], ".0f"),
                    str(x["lost"]),
                    ("yes" if x["exact"] else f"NO ({x['problem']})")
                    + (
                        f" (noisy: others {x['others_pct']:.0f}%)"
                        if x["others_pct"] > 100 * NOISY_SHARE
                        else ""
                    ),
                    # CPU per stream: both clients read the same stream, so it is shown once.
                    *(
                        (fmt(x[k], ".0f") for k in ("w1_cpu_ms", "w2_cpu_ms", "redis_cpu_ms"))
                        if x["where"] == CROSS_WHERE[0]
                        else ("", "", "")
                    ),
                ]
                for x in rows
            ],
            {3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14},
        )
    )

    def find(layer: str, variant: str, where: str) -> dict[str, Any] | None:
        return next(
            (x for x in rows if (x["redis_layer"], x["variant"], x["where"]) == (layer, variant, where)), None
        )

    figures = [("p50_ms", "p50 ms", ".2f"), ("p99_ms", "p99 ms", ".2f")]
    figures += [("events_per_s", "events/s", ",.0f"), ("deltas_per_s", "deltas/s", ",.0f")]
    ratio_rows = []
    for layer in layers:
        for variant in variants:
            same, other = find(layer, variant, "same worker"), find(layer, variant, "other worker")
            if not same or not other:
                continue
            for key, name, spec in figures:
                ratio_rows.append(
                    [
                        layer,
                        variant,
                        name,
                        fmt(same[key], spec),
                        fmt(other[key], spec),
                        ratio_text(other[key], same[key]),
                    ]
                )
    if ratio_rows:
        out.append("\nCross / same worker (latency > 1x = the other worker's client waits longer)")
        out.append(
            table(["layer", "variant", "figure", "same", "other", "other/same"], ratio_rows, {3, 4, 5})
        )
    if len(layers) > 1:
        a, b = layers[0], layers[1]
        cpu = [("w1_cpu_ms", "w1 CPU ms", ".0f"), ("w2_cpu_ms", "w2 CPU ms", ".0f")]
        cpu += [("redis_cpu_ms", "redis CPU ms", ".0f")]
        side = []
        for variant in variants:
            # Latency and rates for each client; CPU once per stream (both clients read the same one).
            for where, keys in [*((w, figures) for w in CROSS_WHERE), ("(per stream)", cpu)]:
                x = find(a, variant, where if where in CROSS_WHERE else CROSS_WHERE[0])
                y = find(b, variant, where if where in CROSS_WHERE else CROSS_WHERE[0])
                if not x or not y:
                    continue
                for key, name, spec in keys:
                    side.append(
                        [
                            variant,
                            where,
                            name,
                            fmt(x[key], spec),
                            fmt(y[key], spec),
                            ratio_text(y[key], x[key]),
                        ]
                    )
        out.append(
            f"\n{a} vs {b}, same load, rounds interleaved ({b}/{a}: latency or CPU > 1x = {b} costs more;"
            " CPU in 10 ms ticks)"
        )
        out.append(table(["variant", "client on", "figure", a, b, f"{b}/{a}"], side, {3, 4, 5}))


def ratio_text(num: float, den: float) -> str:
    if not den or math.isnan(num) or math.isnan(den):
        return "-"
    return f"{num / den:.2f}x"


def report(results: list[Result], cfg: Config) -> tuple[str, bool]:
    chars = len(expected_text(cfg.count))
    out = []
    streams = [s for r in results for s in r.streams]
    rpcs = [x for r in results for x in r.rpcs]
    turns = [t for r in results for t in r.turns]
    crosses = [x for r in results for x in r.cross]
    if streams:
        streams_table(out, streams, cfg, chars)
    if rpcs:
        rpcs_table(out, rpcs, cfg)
    if turns:
        turns_table(out, turns, cfg)
    if crosses:
        cross_tables(out, crosses, cfg)
    redis_lines = [
        f"  {s['target']:<32} stream {s['mode']:<12} {s['redis_cpu_ms']:.1f} ms per stream"
        for s in streams
        if s["redis_cpu_ms"] > 0
    ] + [
        f"  {x['target']:<32} {x['call']:<15} x{x['conns']:<4} {x['redis_us_per_call']:.0f} µs/call"
        for x in rpcs
        if x["redis_us_per_call"] > 0
    ]
    if redis_lines:
        out.append("\nCPU of the private redis-server (CPU ticks are 10 ms, so small figures are coarse):")
        out.extend(redis_lines)

    bare = next((r for r in results if r.target == BARE), None)
    checked = [s["exact"] for s in streams] + [x["exact"] and not x["lost"] for x in turns + crosses]
    all_ok = all(not r.error for r in results) and all(checked)

    def stream_of(target: str, mode: str) -> dict[str, Any] | None:
        return next((s for s in streams if s["target"] == target and s["mode"] == mode), None)

    def rpc_of(target: str, call: str, conns: int) -> dict[str, Any] | None:
        return next(
            (x for x in rpcs if x["target"] == target and x["call"] == call and x["conns"] == conns), None
        )

    def turn_of(target: str, workload: str) -> dict[str, Any] | None:
        return next((t for t in turns if t["target"] == target and t["workload"] == workload), None)

    specs: list[tuple[str, Callable[[str], dict[str, Any] | None], str, float | None, bool]] = []
    modes = sorted({s["mode"] for s in streams}, key=lambda m: (m != "burst", m))
    for mode in modes:
        specs.append(
            (
                f"stream chars/s, {mode}",
                lambda t, m=mode: stream_of(t, m),
                "chars_per_s",
                1.0 if mode == "burst" else None,
                True,
            )
        )
    for call, _ in CALLS if rpcs else []:
        for n in sorted({1, cfg.conns}):
            goal = 0.6 if (call == "gateway.ping" and n == 1) else None
            specs.append(
                (f"{call} calls/s x{n}", lambda t, c=call, n=n: rpc_of(t, c, n), "calls_per_s", goal, True)
            )
            specs.append(
                (f"{call} p50 x{n} (bare/gw)", lambda t, c=call, n=n: rpc_of(t, c, n), "p50_ms", None, False)
            )
    for workload in dict.fromkeys(t["workload"] for t in turns):
        if workload == TURN_TEXT:
            specs.append(
                (
                    f"turns x{cfg.turns} chars/s",
                    lambda t, w=workload: turn_of(t, w),
                    "chars_per_s",
                    None,
                    True,
                )
            )
            continue
        for q in ("p50", "p99"):
            specs.append(
                (f"{workload} {q} (bare/gw)", lambda t, w=workload: turn_of(t, w), f"{q}_ms", None, False)
            )
    rows = []
    goals_met = True
    judged = 0
    for r in results:
        if bare is None or r is bare:
            continue
        for name, find, key, goal, higher_better in specs:
            mine, base = find(r.target), find(bare.target)
            if not mine or not base or not base.get(key) or not mine.get(key):
                continue
            ratio = mine[key] / base[key] if higher_better else base[key] / mine[key]
            verdict = ""
            if goal is not None and r.diagnostic:
                verdict = "(diagnostic, not judged)"
            elif goal is not None:
                ok = ratio >= goal
                goals_met &= ok
                judged += 1
                verdict = f"{'PASS' if ok else 'FAIL'} (goal >= {goal:g}x)"
            spec = ",.3f" if key.endswith("ms") else ",.0f"
            rows.append(
                [r.target, name, fmt(mine[key], spec), fmt(base[key], spec), f"{ratio:.2f}x", verdict]
            )
    if rows:
        out.append("\nRatios gateway / bare (> 1 = gateway better; latency rows are bare/gateway)")
        out.append(table(["target", "figure", "gateway", "bare", "ratio", "goal"], rows, {2, 3, 4}))
    errors = [f"{r.target}: {r.error}" for r in results if r.error]
    if errors:
        out.append("\nERRORS:\n  " + "\n  ".join(errors))
    exact = ("yes" if all(checked) else "NO") if checked else "n/a (no streams)"
    goals = (
        ("all met" if goals_met else "NOT all met") if judged else "not judged (no baseline or no figures)"
    )
    out.append(f"\nexact text, contiguous seq and no lost event in every stream: {exact}; goals: {goals}")
    return "\n".join(out), all_ok


# -- main ----------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> tuple[Config, argparse.Namespace]:
    p = argparse.ArgumentParser(
        prog="bench/run.py", description="Benchmark ws_gateway against a bare websockets server."
    )
    p.add_argument(
        "--quick", action="store_true", help="shorter runs (~30 s): 1 s per round-trip row, 3 bursts"
    )
    p.add_argument(
        "--layer",
        choices=["memory", "redis", "both"],
        default="memory",
        help="channel layer of the gateway (default memory); redis uses REDIS_URL or starts a private "
        "redis-server",
    )
    p.add_argument(
        "--redis-layer",
        choices=["pubsub", "core", "both"],
        default="pubsub",
        help="channels_redis layer for --layer redis|both (default pubsub, as the settings)",
    )
    p.add_argument(
        "--server",
        choices=["daphne", "uvicorn", "both"],
        default="daphne",
        help="ASGI server of the gateway (default daphne)",
    )
    p.add_argument("--count", type=int, default=1000, help="deltas per stream (default 1000)")
    p.add_argument(
        "--paced-ms", type=int, default=1, help="ms between deltas of the paced stream (default 1; 0 = skip)"
    )
    p.add_argument("--repeat", type=int, help="burst streams per server (default 7, quick 3)")
    p.add_argument(
        "--duration", type=float, help="seconds per round-trip row and server (default 3, quick 1)"
    )
    p.add_argument("--rounds", type=int, help="rounds the duration is split into (default 3, quick 2)")
    p.add_argument(
        "--conns", type=int, default=50, help="connections of the concurrent round-trip rows (default 50)"
    )
    p.add_argument(
        "--streams",
        type=int,
        default=10,
        help="concurrent streams of the 'burst xN' row, one connection each (default 10; 0 = skip)",
    )
    p.add_argument(
        "--no-per-delta",
        action="store_true",
        help="skip the diagnostic gateway with DELTA_FLUSH_MS=0 (one frame per delta)",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="SECONDS",
        help="first wait up to SECONDS for the machine to be idle (other load skews every figure)",
    )
    p.add_argument(
        "--only",
        choices=["streams", "rpc", "turns", "cross"],
        help="run only the streams (a), the round trips (b), the concurrent turns (c) or the"
        " cross-process streams (d)",
    )
    p.add_argument(
        "--turns",
        type=int,
        default=50,
        metavar="N",
        help="concurrent sessions of the turn benchmark (c), one connection each (default 50; 0 = skip)",
    )
    p.add_argument(
        "--turn-paced-ms",
        type=int,
        default=5,
        metavar="MS",
        help="ms between deltas of the paced timed streams of (c), about 1 s of deltas each"
        " (default 5; 0 = skip)",
    )
    p.add_argument(
        "--idle-conns",
        type=int,
        default=0,
        metavar="N",
        help="keep N extra idle connections open on every server during the run (default 0)",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin servers and client to separate cores")
    p.add_argument(
        "--gateway-settings",
        default="{}",
        metavar="JSON",
        help="extra WS_GATEWAY settings for every gateway, e.g. '{\"INLINE_WORKERS\": 4}'",
    )
    p.add_argument("--json", type=Path, metavar="PATH", help="also write every figure to this JSON file")
    p.add_argument(
        "--keep-logs", action="store_true", help="keep the temporary directory with the server logs"
    )
    a = p.parse_args(argv)
    try:
        settings = json.loads(a.gateway_settings)
    except ValueError as exc:
        p.error(f"--gateway-settings is not JSON: {exc}")
    if not isinstance(settings, dict):
        p.error("--gateway-settings must be a JSON object")
    cfg = Config(
        quick=a.quick,
        layers=["memory", "redis"] if a.layer == "both" else [a.layer],
        servers=["daphne", "uvicorn"] if a.server == "both" else [a.server],
        redis_layers=["pubsub", "core"] if a.redis_layer == "both" else [a.redis_layer],
        count=max(1, min(a.count, 100_000)),
        paced_ms=max(0, min(a.paced_ms, 20)),
        repeat=max(1, min(a.repeat or (3 if a.quick else 7), 100)),
        duration=max(0.2, min(a.duration or (1.0 if a.quick else 3.0), 60.0)),
        rounds=max(1, min(a.rounds or (2 if a.quick else 3), 20)),
        round_warmup=0.1 if a.quick else 0.2,
        conns=max(1, min(a.conns, 500)),
        streams=max(0, min(a.streams, 100)),
        per_delta=not a.no_per_delta,
        pin=can_pin() and not a.no_pin,
        idle_conns=max(0, min(a.idle_conns, 5000)),
        only=a.only or "",
        turns=max(0, min(a.turns, 500)),
        turn_paced_ms=max(0, min(a.turn_paced_ms, 100)),
        turn_rounds=2 if a.quick else 3,
        cross_rounds=3 if a.quick else 7,
        gateway_settings={**BENCH_LIMITS, **settings},
    )
    return cfg, a


def wait_quiet(limit: float) -> None:
    """Wait (at most ``limit`` seconds) until the machine has been under 10% busy for 3 s in a row."""
    deadline = time.monotonic() + limit
    quiet = 0
    print(f"waiting up to {limit:.0f}s for a quiet machine ...", flush=True)
    while time.monotonic() < deadline:
        busy = machine_busy(1.0)
        quiet = quiet + 1 if busy is not None and busy < 0.10 else 0
        if quiet >= 3:
            print("machine quiet", flush=True)
            return
    print("machine still busy: going on anyway", flush=True)


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    cfg, args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the finally below stops every process.
    signal.signal(signal.SIGTERM, _sigterm)
    started = time.perf_counter()
    layers = "/".join(cfg.layers) + (f" ({'/'.join(cfg.redis_layers)})" if "redis" in cfg.layers else "")
    print(
        f"ws_gateway benchmark: {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores, websockets {websockets.__version__}; gateway on {'/'.join(cfg.servers)}, "
        f"layer {layers}"
        + (f", settings {json.dumps(cfg.gateway_settings)}" if cfg.gateway_settings else "")
        + (f"; servers pinned to CPU {SERVER_CPU}, client to CPU {CLIENT_CPU}" if cfg.pin else "; not pinned")
        + (f"; {cfg.idle_conns} idle connections per server" if cfg.idle_conns else "")
        + (
            f"; cross-process: 2-worker cluster per Redis layer ({'/'.join(cfg.redis_layers)})"
            if cfg.only in ("", "cross")
            else ""
        )
    )
    if args.wait_quiet > 0:
        wait_quiet(args.wait_quiet)
    busy = machine_busy(0.5)
    if busy is not None and busy > 0.10:
        print(f"WARNING: the machine is {100 * busy:.0f}% busy before the start; figures will be unreliable")
    run = Run(cfg, args.keep_logs)
    try:
        run.prepare()
        lives = [run.start(target) for target in targets_for(cfg)] if cfg.only != "cross" else []
        clusters = [run.start_cluster(rl) for rl in cfg.redis_layers] if cfg.only in ("", "cross") else []
        if cfg.pin:
            os.sched_setaffinity(0, {CLIENT_CPU})
        pids = [live.server.proc.pid for live in lives] + ([run.redis.proc.pid] if run.redis else [])
        for cl in clusters:
            pids += [cl.server.proc.pid, cl.redis.proc.pid] + [w.pid for w in cl.server.workers]
        OUR_PIDS[:] = pids
        with LoadWatch(pids) as watch:
            asyncio.run(run_phases(lives, clusters, cfg, run.say))
        results = [live.result for live in lives] + [cl.result for cl in clusters]
        text, ok = report(results, cfg)
        print(text)
        others = watch.others()
        if others is not None:
            other, steal = others
            print(
                f"\nother processes used {100 * other:.0f}% of the machine while this measured"
                f" (hypervisor steal {100 * steal:.0f}%)"
            )
            if other + steal > 0.10:
                print(
                    "WARNING: the machine was not quiet; figures (and ratios) are unreliable: rerun when idle"
                )
        print(f"\ntotal time {time.perf_counter() - started:.0f}s")
        if args.json:
            payload = {"config": asdict(cfg), "results": [asdict(r) for r in results]}
            args.json.write_text(json.dumps(payload, indent=2, default=str))
            print(f"figures written to {args.json}")
        run.failed = not ok
        return 0 if ok else 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping servers", file=sys.stderr)
        return 130
    except BaseException:
        run.failed = True
        raise
    finally:
        run.close()
