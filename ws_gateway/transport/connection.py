"""One client connection: identity, ordered outbound queue, and per-session event cursors.

Lives on the event loop. The cursor of a subscribed session is the last
``seq`` written to this socket: an event at or below it is a duplicate and is
dropped; an event beyond ``cursor + 1`` means the layer lost something, and
the missing events are written from the event log first. So a client sees
each session's events contiguously from the moment it attached, whatever the
channel layer drops.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from .. import metrics
from ..backplane.eventlog import LoggedEvent
from ..conf import gateway_settings
from ..errors import CLOSE_SLOW_CONSUMER
from ..events.outbox import event_frame, outbox
from ..framing import utf8_len
from .daphne import TransportView

log = logging.getLogger(__name__)

# The queue of a connection that never queued a frame (shared, always empty).
_NOTHING_QUEUED: deque[str] = deque(maxlen=0)
# Seconds a slow consumer gets to read up to its close frame before the connection is dropped.
SLOW_CONSUMER_ABORT_S = 10.0


@dataclass
class Stats:
    messages: int = 0
    parse_errors: int = 0
    dispatch_crashes: int = 0
    send_failures: int = 0
    reaped_sessions: int = 0
    detached_sessions: int = 0


class Connection:
    """Per-socket state shared by the consumer, the dispatcher and the session services."""

    def __init__(
        self,
        conn_id: str,
        *,
        user_id: int | None,
        is_staff: bool = False,
        peer: str,
        send_text: Callable[[str], Awaitable[None]],
        close: Callable[[int], Coroutine[Any, Any, None]],
        transport: TransportView | None = None,
    ) -> None:
        self.id = conn_id
        self.user_id = user_id
        self.is_staff = is_staff  # may change deployment-wide settings (the skin) when auth is on
        self.peer = peer
        self.stats = Stats()
        self.cursors: dict[str, int] = {}
        # Sessions for which this client takes interactive requests as server requests (8.2).
        self.server_requests: set[str] = set()
        self.sessions: set[str] = set()  # sessions whose events this connection receives
        self.closed = False
        self._send_text = send_text
        self._close = close
        # Frames waiting for the socket, with their writer: made when first needed (with the
        # daphne seam most sockets never queue; an idle socket costs less without them).
        self._out: deque[str] = _NOTHING_QUEUED
        self._out_bytes = 0
        self._transport = transport
        # Sessions whose missed events are being read from the durable log: deliveries wait here.
        self._filling: dict[str, list[tuple[int, str, str | None]]] = {}
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None

    # -- outbound ------------------------------------------------------

    def push(self, text: str) -> None:
        """Write (or queue) a frame for the socket, in order. Never blocks."""
        if self.closed:
            return
        metrics.frames_sent.inc()
        if self._transport is not None and not self._out:
            try:
                self._transport.send_now(text)
            except Exception as exc:
                self._send_failed(text, exc)
            if self._transport.unsent_bytes() > gateway_settings.OUTBOUND_MAX_BYTES:
                self._slow_consumer()
            return
        if self._wake is None:
            self._start_writer()
        self._out.append(text)
        self._out_bytes += len(text)
        if (
            len(self._out) > gateway_settings.OUTBOUND_MAX_FRAMES
            or self._out_bytes > gateway_settings.OUTBOUND_MAX_BYTES
        ):
            self._slow_consumer()
            return
        assert self._wake is not None
        self._wake.set()

    def _start_writer(self) -> None:
        self._out = deque()
        self._wake = asyncio.Event()
        self._writer = asyncio.get_running_loop().create_task(self._write(self._wake))

    async def _write(self, wake: asyncio.Event) -> None:
        out = self._out
        while True:
            await wake.wait()
            wake.clear()
            while out:
                text = out.popleft()
                self._out_bytes -= len(text)
                try:
                    await self._send_text(text)
                except Exception as exc:
                    self._send_failed(text, exc)
            if (
                self._transport is not None
                and self._transport.unsent_bytes() > gateway_settings.OUTBOUND_MAX_BYTES
            ):
                self._slow_consumer()

    def _send_failed(self, text: str, exc: Exception) -> None:
        # The app sizes every frame under the limit (framing), so this is a fault worth seeing.
        self.stats.send_failures += 1
        log.warning(
            "send failed peer=%s bytes=%d: %s: %s", self.peer, utf8_len(text), type(exc).__name__, exc
        )

    def _slow_consumer(self) -> None:
        """The client does not read: stop queuing, close with 4008, and abort if it stays stuck."""
        if self.closed:
            return
        unsent = self._transport.unsent_bytes() if self._transport is not None else self._out_bytes
        log.warning(
            "slow consumer peer=%s unsent_bytes=%d queued=%d: closing 4008", self.peer, unsent, len(self._out)
        )
        self._out.clear()
        self._out_bytes = 0
        self.closed = True
        loop = asyncio.get_running_loop()
        if self._transport is not None:
            self._transport.allow_slow_close(SLOW_CONSUMER_ABORT_S)
            loop.call_later(SLOW_CONSUMER_ABORT_S + 1, self._transport.abort)
        self._closing = loop.create_task(self._close(CLOSE_SLOW_CONSUMER))

    # -- session events ------------------------------------------------

    async def join(self, session_id: str) -> None:
        """Receive a session's events (those published by its other processes too)."""
        if session_id in self.sessions:
            return
        self.sessions.add(session_id)
        await outbox.join(session_id, self)

    def start_cursor(self, session_id: str, baseline: int, server_requests: bool | None = None) -> None:
        """Start (or keep) delivering a session's events after ``baseline``, catching up from the log."""
        if server_requests is not None:
            if server_requests:
                self.server_requests.add(session_id)
            else:
                self.server_requests.discard(session_id)
        if session_id in self.cursors:
            return
        self.cursors[session_id] = baseline
        log_ = outbox.logs.get(session_id)
        if log_ is not None:
            self._fill(session_id, log_.latest_seq + 1)
        elif outbox.shared:
            self._filling[session_id] = []
            asyncio.get_running_loop().create_task(self._fill_remote(session_id))

    def deliver(self, session_id: str, seq: int, text: str, srq_text: str | None = None) -> None:
        cursor = self.cursors.get(session_id)
        if cursor is None or seq <= cursor:
            return
        waiting = self._filling.get(session_id)
        if waiting is not None:
            waiting.append((seq, text, srq_text))
            return
        if seq > cursor + 1 and not self._fill(session_id, seq):
            self._filling[session_id] = [(seq, text, srq_text)]
            asyncio.get_running_loop().create_task(self._fill_remote(session_id))
            return
        self.push(srq_text if srq_text is not None and session_id in self.server_requests else text)
        self.cursors[session_id] = seq

    def _fill(self, session_id: str, before: int) -> bool:
        """Write kept events between the cursor and ``before`` from this process's log.

        False when this process has no log of the session (another process owns it)."""
        log_ = outbox.logs.get(session_id)
        if log_ is None:
            return not outbox.shared
        for event in log_.between(self.cursors[session_id], before):
            self._write_logged(session_id, event)
        return True

    def _write_logged(self, session_id: str, event: LoggedEvent) -> None:
        opted_in = session_id in self.server_requests
        self.push(event.srq_text if opted_in and event.srq_text is not None else event.text)
        self.cursors[session_id] = event.seq

    async def _fill_remote(self, session_id: str) -> None:
        """Catch up from the durable log, then replay what arrived meanwhile."""
        try:
            events = await outbox.read_shared_log(session_id, self.cursors.get(session_id, 0))
        except Exception:
            log.warning("durable log unreadable session=%s", session_id, exc_info=True)
            events = []
        waiting = self._filling.pop(session_id, [])
        if session_id not in self.cursors or self.closed:
            return
        for event in events:
            if event.seq > self.cursors[session_id]:
                self._write_logged(session_id, event)
        # What the durable log lacked (trimmed, or unreadable) is not asked for again: reading
        # once per arriving event would spin. The client sees the jump and replays (truncated).
        for seq, text, srq_text in waiting:
            if seq > self.cursors[session_id]:
                self.push(srq_text if srq_text is not None and session_id in self.server_requests else text)
                self.cursors[session_id] = seq

    def push_event(self, type_: str, payload: dict[str, Any]) -> None:
        """A global event for this client only (``gateway.draining``)."""
        self.push(event_frame({"type": type_, "session_id": "", "payload": payload}))

    async def close(self, code: int) -> None:
        """Close after writing what is queued (bounded wait)."""
        if self.closed:
            return
        for _ in range(200):
            if not self._out:
                break
            await asyncio.sleep(0.01)
        self.closed = True
        await self._close(code)

    async def leave(self, session_id: str) -> None:
        self.cursors.pop(session_id, None)
        self.server_requests.discard(session_id)
        if session_id in self.sessions:
            self.sessions.discard(session_id)
            await outbox.leave(session_id, self)

    # -- lifecycle -----------------------------------------------------

    async def shutdown(self) -> None:
        self.closed = True
        if self._writer is not None:
            self._writer.cancel()
        outbox.connections.discard(self)
        for session_id in list(self.sessions):
            try:
                await self.leave(session_id)
            except Exception:
                log.debug("leaving session=%s failed", session_id, exc_info=True)
        self.cursors.clear()


# Connections of this process, by id.
connections: dict[str, Connection] = {}
