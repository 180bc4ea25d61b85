"""The one way from any thread to sockets.

``emit()`` may be called from any thread and never blocks: the event is
queued and the process's event loop is woken once per batch. On the loop,
each session's :class:`Stream` merges streaming deltas, then for every event
it sends, in emission order: stamps the next ``seq``, appends the exact frame
to the session's event log, and delivers it. Connections of this process that
attached the session get it directly (no channel layer in between: measured,
the in-memory layer cost ~6x a bare send per event and grew with every
connected socket). When other processes take part (a shared backplane), the
event is also appended to the durable log and published once to the session's
group, whose members are the worker channels of the other processes with
clients of the session.

Global events (``session.reclaimed``, ``sessions.changed``, ``skin.changed``)
reach the connections of every process, without ``seq``. One that names a
session goes only to the connections of the session's owner (another user may
not even learn its ids; all anonymous clients are one user); ``skin.changed``
goes to everyone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import deque
from typing import Any, Protocol

from channels.layers import get_channel_layer

from .. import framing, ids, metrics
from ..backplane import backplane, receivers
from ..backplane.base import BROADCAST_GROUP, BROADCAST_MESSAGE, EVENT_MESSAGE, session_group
from ..backplane.eventlog import EventLogStore, LoggedEvent, Replay
from ..conf import gateway_settings

log = logging.getLogger(__name__)

DELTA_TYPES = frozenset({"message.delta", "reasoning.delta", "thinking.delta"})
__all__ = ["BROADCAST_GROUP", "EVERYONE", "Outbox", "Stream", "broadcast", "emit", "encode", "outbox"]
# How long the loop may leave queued events before a thread adding deltas waits for it
# (measured with 50 sessions streaming flat out: 2 ms kept loop lag near 10 ms at ~1.3x the
# CPU; waiting every few deltas instead cost 2-3x the CPU).
LOOP_LAG_S = 0.002
BACKLOG_WAIT_S = 0.1  # never longer: the loop may be stuck elsewhere
EVERYONE = object()  # audience of a global event that names no session (skin.changed)


class Subscriber(Protocol):
    """A socket's connection as the outbox sees it (the transport's Connection)."""

    @property
    def user_id(self) -> int | None: ...
    def push(self, text: str) -> None: ...
    def deliver(self, session_id: str, seq: int, text: str, srq_text: str | None = None) -> None: ...


# (srq id, method, params) of an event that is also a server-to-client request.
ServerRequest = tuple[str, str, dict[str, Any]]


def encode(frame: Any) -> str:
    """A frame as sent: UTF-8 JSON without escaping, except where text holds lone surrogates
    (legal in JSON escapes, impossible in UTF-8), which are sent escaped instead."""
    text = json.dumps(frame, ensure_ascii=False)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(frame)
    return text


def event_frame(params: dict[str, Any]) -> str:
    return encode({"jsonrpc": "2.0", "method": "event", "params": params})


class Stream:
    """Numbering, merging and publishing of one session's events (lives on the loop)."""

    def __init__(self, outbox: Outbox, session_id: str) -> None:
        self.outbox = outbox
        self.session_id = session_id
        self.group = session_group(session_id)
        self.log = outbox.logs.open(session_id)
        self.seq = 0
        self._delta_type: str | None = None
        self._delta_parts: list[str] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._last_flush = float("-inf")
        self._publishing: deque[tuple[dict[str, Any], LoggedEvent]] = deque()
        self._publisher: asyncio.Task[Any] | None = None

    def push(
        self, type_: str, payload: dict[str, Any] | None, server_request: ServerRequest | None = None
    ) -> None:
        if type_ in DELTA_TYPES:
            self.push_delta(type_, (payload or {}).get("text", ""))
            return
        self.flush()
        self._send(type_, payload, server_request)

    def push_delta(self, type_: str, text: str) -> None:
        if not text:
            return
        if self._delta_type is not None and self._delta_type != type_:
            self.flush()
        self._delta_type = type_
        self._delta_parts.append(text)
        if self._flush_handle is not None:
            return
        loop = self.outbox.running_loop()
        due = self._last_flush + self.outbox.flush_interval
        if loop.time() >= due:
            self.flush()
        else:
            self._flush_handle = loop.call_at(due, self.flush)

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._delta_type is None:
            return
        type_, text = self._delta_type, "".join(self._delta_parts)
        self._delta_type = None
        self._delta_parts = []
        self._last_flush = self.outbox.running_loop().time()
        for part in self._parts(type_, text):
            self._send(type_, {"text": part})

    def _parts(self, type_: str, text: str) -> list[str]:
        """A merged delta as one or more deltas, each of which fits a frame (seq stays
        contiguous and the concatenation of the parts is the text)."""
        budget = framing.event_budget()
        if len(text) * 6 + 512 <= budget:  # 6: the widest JSON escape of one character
            return [text]
        envelope = framing.json_len(self._params(type_, {"text": ""}, self.seq + 1))
        parts = framing.split_text(text, max(64, budget - envelope - 16))
        if len(parts) > 1:
            log.warning(
                "%s of %d bytes split into %d events to fit frames session=%s",
                type_,
                framing.utf8_len(text),
                len(parts),
                self.session_id,
            )
        return parts

    def _params(self, type_: str, payload: dict[str, Any] | None, seq: int) -> dict[str, Any]:
        params: dict[str, Any] = {"type": type_, "session_id": self.session_id}
        if payload is not None:
            params["payload"] = payload
        params["seq"] = seq
        return params

    def _fit(self, type_: str, params: dict[str, Any], text: str) -> tuple[dict[str, Any], str]:
        """An event too large for a frame loses its largest payload fields, named in
        ``payload.omitted`` (``message.complete.text`` is also the concatenation of the turn's
        deltas and the transcript's row: see docs/protocol.md)."""
        budget = framing.event_budget()
        if framing.fits(text, budget):
            return params, text
        payload = params.get("payload") or {}
        envelope = framing.json_len(self._params(type_, {}, params["seq"]))
        fitted, omitted = framing.fit_payload(payload, budget - envelope - 16)
        params = self._params(type_, fitted, params["seq"])
        log.warning(
            "%s of %d bytes too large for a frame: sent without %s session=%s seq=%d",
            type_,
            framing.utf8_len(text),
            ", ".join(omitted),
            self.session_id,
            params["seq"],
        )
        return params, event_frame(params)

    def _send(
        self, type_: str, payload: dict[str, Any] | None, server_request: ServerRequest | None = None
    ) -> None:
        self.seq += 1
        metrics.events.inc()
        params = self._params(type_, payload, self.seq)
        params, text = self._fit(type_, params, event_frame(params))
        message = {
            "type": EVENT_MESSAGE,
            "sid": self.session_id,
            "seq": self.seq,
            "text": text,
            "origin": backplane.channel,
        }
        srq_text = None
        if server_request is not None:
            srq_id, method, srq_params = server_request
            srq_text = encode(
                {
                    "jsonrpc": "2.0",
                    "id": srq_id,
                    "method": method,
                    "params": {"session_id": self.session_id, **srq_params, "seq": self.seq},
                }
            )
            if framing.fits(srq_text, framing.event_budget()):
                message["srq"] = srq_text
            else:
                # Too large as a request: clients that opted in get the (fitted) event form.
                log.warning("server request %s too large for a frame: sent as its event", srq_id)
                srq_text = None
        event = LoggedEvent(self.seq, params, text, srq_text)
        self.log.append(event)
        if not backplane.shared:
            self._deliver(event)  # one process: at once, on this loop (no task per event)
            return
        # Other processes take part: nobody sees an event before it is in the durable log
        # (a process that adopts the session after a crash continues numbering from there).
        self._publishing.append((message, event))
        if self._publisher is None:
            self._publisher = self.outbox.running_loop().create_task(self._publish())
            self.outbox.publishers.add(self._publisher)
            self._publisher.add_done_callback(self.outbox.publishers.discard)

    async def _publish(self) -> None:
        try:
            while self._publishing:
                batch = list(self._publishing)
                self._publishing.clear()
                try:
                    await backplane.append(self.session_id, [event for _, event in batch])
                except Exception:
                    # The durable log is down: keep serving this process's clients; replay covers the rest.
                    log.warning("durable log append failed session=%s", self.session_id, exc_info=True)
                for _, event in batch:
                    self._deliver(event)
                await backplane.publish(self.session_id, batch)
        finally:
            self._publisher = None

    def _deliver(self, event: LoggedEvent) -> None:
        """Hand an event to this process's connections attached to the session."""
        for conn in list(self.outbox.local.get(self.session_id, ())):
            conn.deliver(self.session_id, event.seq, event.text, event.srq_text)


class Outbox:
    """Process-wide: the bridge from threads to the event loop, and the session streams."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.layer: Any = None
        self.logs = EventLogStore()
        # Names this lifetime of the (in-memory) event logs: replay_epoch.
        self.epoch = ids.epoch()
        self.streams: dict[str, Stream] = {}
        self.flush_interval = gateway_settings.DELTA_FLUSH_MS / 1000.0
        self._queue: deque[tuple[str, str, Any]] = deque()
        # Each session's last queued item when it is a delta: (type, parts) joined by the next.
        self._tails: dict[str, tuple[str, list[str]]] = {}
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)  # notified when the loop takes the queue
        self._loop_thread: int | None = None
        self._wake_pending = False
        self._woken_at = 0.0  # when the loop was last asked to drain the queue
        self.publishers: set[asyncio.Task[Any]] = set()
        # Connections of this process subscribed to each session (delivered to directly).
        self.local: dict[str, set[Subscriber]] = {}
        # Every connection of this process (global events).
        self.connections: set[Subscriber] = set()
        # Ended sessions: late events from their threads are dropped, not renumbered.
        self._ended: dict[str, None] = {}

    def running_loop(self) -> asyncio.AbstractEventLoop:
        """The loop the outbox is bound to (only code that runs on it asks)."""
        assert self.loop is not None
        return self.loop

    def subscribe(self, session_id: str, conn: Subscriber) -> bool:
        """Deliver a session's events to ``conn``; True when it is the process's first subscriber."""
        subscribers = self.local.setdefault(session_id, set())
        first = not subscribers
        subscribers.add(conn)
        return first

    def unsubscribe(self, session_id: str, conn: Subscriber) -> bool:
        """Stop delivering to ``conn``; True when no subscriber of the session is left here."""
        subscribers = self.local.get(session_id)
        if subscribers is None:
            return False
        subscribers.discard(conn)
        if subscribers:
            return False
        del self.local[session_id]
        return True

    def deliver_remote(self, message: dict[str, Any]) -> None:
        """An event or global event published by another process."""
        if message["type"] == BROADCAST_MESSAGE:
            self._push_global(message["text"], message.get("scoped", False), message.get("owner"))
            return
        session_id = message["sid"]
        for conn in list(self.local.get(session_id, ())):
            conn.deliver(session_id, message["seq"], message["text"], message.get("srq"))

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the loop that runs the consumers (first connection, or a test's loop)."""
        if self.loop is loop:
            return
        self.loop = loop
        self._loop_thread = threading.get_ident()
        self.layer = get_channel_layer()
        self.flush_interval = gateway_settings.DELTA_FLUSH_MS / 1000.0
        for stream in self.streams.values():
            stream._flush_handle = None
            stream._publisher = None
        if self._queue:
            loop.call_soon(self._drain)

    def open(self, session_id: str) -> Stream:
        stream = self.streams.get(session_id)
        if stream is None:
            stream = self.streams[session_id] = Stream(self, session_id)
        return stream

    def close(self, session_id: str) -> None:
        """Forget a session once its final events are out; its log goes with it."""
        self._enqueue(("close", session_id, None))

    def continue_from(self, session_id: str, seq: int) -> None:
        """Number a session's next event ``seq + 1`` (a session adopted from another process)."""
        self._enqueue(("continue", session_id, seq))

    def emit(
        self,
        session_id: str,
        type_: str,
        payload: dict[str, Any] | None = None,
        *,
        server_request: ServerRequest | None = None,
    ) -> None:
        """Queue a session event from any thread. Never blocks, never raises for a gone client.

        ``server_request`` ``(srq_id, method, params)`` gives the event a second form: the
        JSON-RPC request that clients opted into server requests receive instead.
        """
        if type_ in DELTA_TYPES and server_request is None and self.flush_interval > 0:
            self._enqueue_delta(session_id, type_, (payload or {}).get("text", ""))
            return
        self._enqueue(("event", session_id, (type_, payload, server_request)))

    def broadcast(self, type_: str, payload: dict[str, Any] | None = None, *, owner: Any = EVERYONE) -> None:
        """Queue a global event for every connected client, or only for the connections of user
        ``owner`` (``None``: the anonymous ones) when it names that user's session."""
        self._enqueue(("broadcast", "", (type_, payload, owner)))

    def _enqueue_delta(self, session_id: str, type_: str, text: str) -> None:
        """A delta joins the session's last queued delta of its type when nothing of the session
        came after it (what the stream would merge anyway): the loop handles one item per
        session and batch, not one per token."""
        if not text:
            return
        with self._lock:
            tail = self._tails.get(session_id)
            if tail is not None and tail[0] == type_:
                tail[1].append(text)
                if (
                    self._wake_pending  # a loop was asked to drain (none bound: nobody would)
                    and time.monotonic() - self._woken_at > LOOP_LAG_S
                    and threading.get_ident() != self._loop_thread
                ):
                    # The loop has not come for the queue: a producer running flat out waits
                    # for it. Blocking frees the interpreter lock, which the loop would
                    # otherwise get only at forced switches (5 ms each, behind every other
                    # such thread).
                    self._drained.wait_for(lambda: self._tails.get(session_id) is not tail, BACKLOG_WAIT_S)
                return
            self._tails[session_id] = (type_, [text])
            self._queue.append(("delta", session_id, self._tails[session_id]))
            if self._wake_pending:
                return
            self._wake_pending = True
            self._woken_at = time.monotonic()
        self._wake()

    def _enqueue(self, item: tuple[str, str, Any]) -> None:
        with self._lock:
            self._queue.append(item)
            self._tails.pop(item[1], None)  # later deltas of the session queue after this item
            if self._wake_pending:
                return
            self._wake_pending = True
            self._woken_at = time.monotonic()
        self._wake()

    def _wake(self) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            with self._lock:
                self._wake_pending = False
            log.debug("outbox has no loop yet; event kept queued")
            return
        loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            items = list(self._queue)
            self._queue.clear()
            self._tails.clear()
            self._wake_pending = False
            self._drained.notify_all()
        for kind, session_id, data in items:
            try:
                if kind == "delta":
                    if session_id not in self._ended:
                        self.open(session_id).push_delta(data[0], "".join(data[1]))
                elif kind == "event":
                    if session_id not in self._ended:
                        self.open(session_id).push(*data)
                elif kind == "broadcast":
                    self._broadcast_now(*data)
                elif kind == "continue":
                    stream = self.open(session_id)
                    stream.seq = max(stream.seq, data)
                    stream.log.latest_seq = stream.seq
                else:
                    self._close_now(session_id)
            except Exception:
                log.exception("outbox failed on %s session=%s", kind, session_id)

    def _close_now(self, session_id: str) -> None:
        stream = self.streams.pop(session_id, None)
        if stream is not None:
            stream.flush()
        self.logs.drop(session_id)
        self._ended[session_id] = None
        if len(self._ended) > 10000:
            del self._ended[next(iter(self._ended))]

    def _broadcast_now(self, type_: str, payload: dict[str, Any] | None, owner: Any) -> None:
        params: dict[str, Any] = {"type": type_, "session_id": ""}
        if payload is not None:
            params["payload"] = payload
        text = event_frame(params)
        scoped = owner is not EVERYONE
        self._push_global(text, scoped, owner if scoped else None)
        if backplane.shared:
            message = {"type": BROADCAST_MESSAGE, "text": text, "origin": backplane.channel, "scoped": scoped}
            if scoped:
                message["owner"] = owner
            task = self.running_loop().create_task(backplane.publish_global(message))
            self.publishers.add(task)
            task.add_done_callback(self.publishers.discard)

    def _push_global(self, text: str, scoped: bool, owner: int | None) -> None:
        for conn in list(self.connections):
            if not scoped or conn.user_id == owner:
                conn.push(text)

    async def flushed(self) -> None:
        """Wait until every queued event is numbered and published (drain)."""
        self._drain()
        for stream in list(self.streams.values()):
            stream.flush()
        while self.publishers:
            await asyncio.gather(*list(self.publishers), return_exceptions=True)

    def latest_seq(self, session_id: str) -> int:
        log_ = self.logs.get(session_id)
        return log_.latest_seq if log_ is not None else 0

    def replay(self, session_id: str, last_seen: int) -> Replay:
        """From a worker thread: a session's events after ``last_seen`` (``session.events.since``).

        This process's ring first; when it starts too late (the session was adopted here, or
        the ring was trimmed) and other processes take part, the durable log goes further back."""
        log_ = self.logs.get(session_id)
        replay = log_.since(last_seen) if log_ is not None else Replay([], 0, last_seen > 0)
        if replay.truncated and backplane.shared:
            durable: Replay = backplane.run(backplane.replay(session_id, last_seen))
            if not durable.truncated:
                replay = durable
        return replay

    # -- a connection's subscriptions (on the loop) -----------------------

    async def join(self, session_id: str, conn: Subscriber) -> None:
        """Deliver a session's events to ``conn`` (also those published by other processes)."""
        if self.subscribe(session_id, conn):
            await backplane.watch(session_id)

    async def leave(self, session_id: str, conn: Subscriber) -> None:
        if self.unsubscribe(session_id, conn):
            await backplane.unwatch(session_id)

    @property
    def shared(self) -> bool:
        """Whether a session's events may come from another process (its log may live there)."""
        return backplane.shared

    async def read_shared_log(self, session_id: str, after: int) -> list[LoggedEvent]:
        """A session's events after ``after`` from the durable log (owned by another process)."""
        return await backplane.read_log(session_id, after)


outbox = Outbox()
receivers.events = outbox.deliver_remote  # events and global events published by other processes
emit = outbox.emit
broadcast = outbox.broadcast
