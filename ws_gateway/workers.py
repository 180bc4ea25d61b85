"""The process's own thread pools (never asgiref's single sync thread) and timers.

- ``inline``: ordered per-connection lane work (one thread per busy connection).
- ``pool``: slow methods, shared by every connection, bounded.
- ``background``: agent builds, teardowns, reaper checks.
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
