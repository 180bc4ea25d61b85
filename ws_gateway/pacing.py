"""Urgent work before bulk streaming: a turn streaming flat out gives way while requests
(and the database writes they wait for) run.

Turn threads, request handlers and the event loop share one interpreter lock.
A thread that streams as fast as it can (the demo agent, a local model, a tool
spilling output) only lets the lock go when the interpreter forces a switch
(every ``sys.getswitchinterval()``, 5 ms), so each lock hand-off a handler or
the loop needs (every socket send, every database call) waits behind it, and
50 such threads turn a 1 ms request into hundreds of milliseconds.

Streaming is throughput; a request (``prompt.submit`` above all: a person
waits for its first token) is latency, and so is the group commit that stores
its prompt (one database round trip after another, each giving the lock up).
So while such work runs, a streaming turn blocks, briefly, before its next
delta; blocking frees the lock at once. It waits only for work younger than :data:`MAX_WAIT_S`
(one that runs long, a shell command, holds nothing back after that) and
never longer than that; after waiting it may run for as long as it waited
without giving way again: a flood of requests slows streams down to half
speed at worst, never to a stop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["MAX_WAIT_S", "StreamPacer", "UrgentWork", "urgent"]

MAX_WAIT_S = 0.05


class UrgentWork:
    """How much urgent work (requests, their commits) runs in this process; streams wait for it."""

    def __init__(self) -> None:
        self._cv = threading.Condition(threading.Lock())
        self.running = 0
        self._hold_until = 0.0  # MAX_WAIT_S after the latest request began

    def begin(self) -> None:
        with self._cv:
            self.running += 1
            self._hold_until = time.monotonic() + MAX_WAIT_S

    def end(self) -> None:
        with self._cv:
            self.running -= 1
            if not self.running:
                self._cv.notify_all()

    @contextmanager
    def running_now(self) -> Iterator[None]:
        self.begin()
        try:
            yield
        finally:
            self.end()

    def give_way(self, timeout: float = MAX_WAIT_S) -> float:
        """Wait up to ``timeout`` while young urgent work runs; returns how long it waited."""
        if not self.running:  # read without the lock: a stale answer costs one delta's order
            return 0.0
        started = time.monotonic()
        timeout = min(timeout, self._hold_until - started)
        if timeout <= 0:
            return 0.0
        with self._cv:
            self._cv.wait_for(lambda: not self.running, timeout)
        return time.monotonic() - started


class StreamPacer:
    """One streaming thread's side: give way to urgent work, then run as long as it waited."""

    __slots__ = ("_free_until",)

    def __init__(self) -> None:
        self._free_until = 0.0

    def pace(self) -> None:
        if not urgent.running:
            return
        now = time.monotonic()
        if now < self._free_until:
            return
        waited = urgent.give_way()
        self._free_until = time.monotonic() + waited


urgent = UrgentWork()
