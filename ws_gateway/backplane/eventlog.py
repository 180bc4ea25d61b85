"""Per-session event logs for replay (``session.events.since``).

In-memory rings with per-session caps that never go below the protocol's floor
(the last 512 events, or the last 4 MiB when 512 events weigh more) and a
process-wide byte cap. Eviction is FIFO and never
touches ``seq``: numbering lives in the outbox, not here.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from ..conf import gateway_settings


class LoggedEvent:
    """One event as sent: its ``seq``, the exact frame, its server-request form.

    ``params`` (what ``session.events.since`` returns) is parsed from the frame when first
    asked for, when not given: a durable log read on the event loop parses no JSON there
    (4,096 events cost ~20 ms of loop time to parse), its readers do, on their threads."""

    __slots__ = ("_params", "seq", "srq_text", "text")

    def __init__(
        self, seq: int, params: dict[str, Any] | None, text: str, srq_text: str | None = None
    ) -> None:
        self.seq = seq
        self._params = params
        self.text = text  # the exact frame that was sent
        self.srq_text = srq_text  # its server-request form, for clients that opted in

    @property
    def params(self) -> dict[str, Any]:
        if self._params is None:
            self._params = json.loads(self.text)["params"]
        return self._params

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LoggedEvent):
            return NotImplemented
        return (self.seq, self.text, self.srq_text) == (other.seq, other.text, other.srq_text)

    __hash__ = None  # type: ignore[assignment]  # equal by value, and params may be filled in later

    def __repr__(self) -> str:
        return f"LoggedEvent(seq={self.seq}, text={self.text[:60]!r})"


@dataclass(frozen=True, slots=True)
class Replay:
    events: list[LoggedEvent]
    latest_seq: int
    truncated: bool


class EventLog:
    """The kept tail of one session's events. Appended on the event loop, read from any thread."""

    def __init__(self, store: EventLogStore) -> None:
        self._store = store
        self._events: deque[LoggedEvent] = deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self.latest_seq = 0

    def append(self, event: LoggedEvent) -> None:
        before = self._bytes
        with self._lock:
            self._events.append(event)
            self._bytes += len(event.text)
            self.latest_seq = event.seq
            self._trim(gateway_settings.EVENT_LOG_MAX_EVENTS, gateway_settings.EVENT_LOG_MAX_BYTES)
        self._store.changed(self._bytes - before)

    def since(self, last_seen: int) -> Replay:
        with self._lock:
            latest = self.latest_seq
            oldest = self._events[0].seq if self._events else latest + 1
            truncated = last_seen > latest or last_seen < oldest - 1
            if last_seen >= latest:
                return Replay([], latest, truncated)
            skip = max(0, last_seen - oldest + 1)
            events = [e for i, e in enumerate(self._events) if i >= skip]
        return Replay(events, latest, truncated)

    def between(self, after: int, before: int) -> list[LoggedEvent]:
        """Events with ``after < seq < before`` that are still kept."""
        with self._lock:
            if not self._events:
                return []
            oldest = self._events[0].seq
            start = max(0, after - oldest + 1)
            stop = min(len(self._events), before - oldest)
            return [self._events[i] for i in range(start, stop)]

    @property
    def nbytes(self) -> int:
        return self._bytes

    def shrink_to_floor(self) -> int:
        """Evict down to the protocol floor; returns bytes freed."""
        before = self._bytes
        with self._lock:
            self._trim(gateway_settings.EVENT_LOG_MIN_EVENTS, gateway_settings.EVENT_LOG_MIN_BYTES)
        return before - self._bytes

    def _trim(self, max_events: int, max_bytes: int) -> None:
        # The floor: never below 512 events unless those alone pass 4 MiB (huge events).
        min_events = gateway_settings.EVENT_LOG_MIN_EVENTS
        min_bytes = gateway_settings.EVENT_LOG_MIN_BYTES
        events = self._events
        while (
            (len(events) > max_events or self._bytes > max_bytes)
            and len(events) > 1
            and (len(events) > min_events or self._bytes - len(events[0].text) >= min_bytes)
        ):
            self._bytes -= len(events.popleft().text)


class EventLogStore:
    """All in-memory logs of this process, with the process-wide byte cap."""

    def __init__(self) -> None:
        self._logs: dict[str, EventLog] = {}
        self._lock = threading.Lock()
        self._total = 0

    def open(self, session_id: str) -> EventLog:
        with self._lock:
            log = self._logs.get(session_id)
            if log is None:
                log = self._logs[session_id] = EventLog(self)
            return log

    def get(self, session_id: str) -> EventLog | None:
        return self._logs.get(session_id)

    def drop(self, session_id: str) -> None:
        with self._lock:
            log = self._logs.pop(session_id, None)
            if log is not None:
                self._total -= log.nbytes

    def changed(self, delta: int) -> None:
        with self._lock:
            self._total += delta
            if self._total <= gateway_settings.EVENT_LOG_TOTAL_BYTES:
                return
            logs = sorted(self._logs.values(), key=lambda item: item.nbytes, reverse=True)
        # Over the process cap: shrink the biggest logs to the floor first.
        for log in logs:
            freed = log.shrink_to_floor()
            with self._lock:
                self._total -= freed
                if self._total <= gateway_settings.EVENT_LOG_TOTAL_BYTES:
                    return
