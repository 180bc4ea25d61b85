"""The process's own thread pools (never asgiref's single sync thread) and timers.

- ``inline``: ordered per-connection lane work (one thread per busy connection).
- ``pool``: slow methods, shared by every connection, bounded.
- ``background``: agent builds, teardowns, reaper checks.
- :func:`spawn`: work that may block for a long time (a turn waiting for a person): a thread
  of its own, an idle one reused when there is one.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import close_old_connections

from .conf import gateway_settings

log = logging.getLogger(__name__)

_lock = threading.Lock()
_pools: dict[str, ThreadPoolExecutor] = {}


def _get(name: str, size: int) -> ThreadPoolExecutor:
    pool = _pools.get(name)
    if pool is None:
        with _lock:
            pool = _pools.get(name)
            if pool is None:
                pool = _pools[name] = ThreadPoolExecutor(size, thread_name_prefix=f"gw-{name}")
    return pool


def inline() -> ThreadPoolExecutor:
    return _get("inline", gateway_settings.INLINE_WORKERS)


def pool() -> ThreadPoolExecutor:
    return _get("pool", gateway_settings.POOL_WORKERS)


def background() -> ThreadPoolExecutor:
    return _get("background", gateway_settings.BUILD_WORKERS)


def with_db(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn`` with Django's per-unit-of-work connection hygiene."""
    close_old_connections()
    try:
        return fn(*args)
    finally:
        close_old_connections()


def submit(fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn`` on the background pool; exceptions are logged, never lost silently."""

    def run() -> None:
        try:
            with_db(fn, *args)
        except Exception:
            log.exception("background task %s failed", getattr(fn, "__qualname__", fn))

    background().submit(run)


class Timer:
    """A cancellable one-shot timer; its callback runs on the background pool."""

    __slots__ = ("cancelled", "due", "fn")

    def __init__(self, due: float, fn: Callable[[], Any]) -> None:
        self.due = due
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _Scheduler:
    """One thread and a heap for every timer of the process."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timer]] = []
        self._cond = threading.Condition()
        self._count = itertools.count()
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, fn: Callable[[], Any]) -> Timer:
        timer = Timer(time.monotonic() + delay, fn)
        with self._cond:
            heapq.heappush(self._heap, (timer.due, next(self._count), timer))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="gw-timers", daemon=True)
                self._thread.start()
            self._cond.notify()
        return timer

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                _, _, timer = heapq.heappop(self._heap)
            if not timer.cancelled:
                submit(timer.fn)


_scheduler = _Scheduler()


def call_later(delay: float, fn: Callable[[], Any]) -> Timer:
    """Run ``fn`` on the background pool after ``delay`` seconds unless cancelled."""
    return _scheduler.call_later(delay, fn)


class _ReusedThread:
    """A thread that runs one task after another, and ends after IDLE_S without one."""

    IDLE_S = 60.0

    def __init__(self, threads: Threads) -> None:
        self._threads = threads
        self._task: tuple[Callable[..., Any], tuple[Any, ...], str] | None = None
        self._cond = threading.Condition(threading.Lock())

    def start(self, fn: Callable[..., Any], args: tuple[Any, ...], name: str) -> None:
        self._task = (fn, args, name)
        threading.Thread(target=self._loop, name=name, daemon=True).start()

    def give(self, fn: Callable[..., Any], args: tuple[Any, ...], name: str) -> None:
        with self._cond:
            self._task = (fn, args, name)
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            task, self._task = self._task, None
            if task is None:
                return
            fn, args, name = task
            threading.current_thread().name = name
            try:
                fn(*args)
            except Exception:
                log.exception("%s failed", name)
            threading.current_thread().name = "gw-idle"
            with self._cond:
                self._threads.idle(self)
                if not self._cond.wait_for(lambda: self._task is not None, self.IDLE_S):
                    if self._threads.retire(self):
                        return
                    self._cond.wait_for(lambda: self._task is not None)  # given one as it retired


class Threads:
    """Threads for long, blocking work: never a queue behind a busy one. Starting a thread
    waits until it runs, which under load (other threads holding the interpreter lock) takes
    milliseconds; handing work to an idle one does not."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_ReusedThread] = []

    def spawn(self, fn: Callable[..., Any], *args: Any, name: str) -> None:
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is None:
            _ReusedThread(self).start(fn, args, name)
        else:
            worker.give(fn, args, name)

    def idle(self, worker: _ReusedThread) -> None:
        with self._lock:
            self._idle.append(worker)

    def retire(self, worker: _ReusedThread) -> bool:
        """Take an idle worker out of use; False when it was handed a task meanwhile."""
        with self._lock:
            if worker in self._idle:
                self._idle.remove(worker)
                return True
            return False

    def idle_count(self) -> int:
        with self._lock:
            return len(self._idle)


_threads = Threads()


def spawn(fn: Callable[..., Any], *args: Any, name: str) -> None:
    """Run ``fn(*args)`` on a thread of its own (an idle one reused), named ``name`` meanwhile."""
    _threads.spawn(fn, *args, name=name)
