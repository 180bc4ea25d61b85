"""The backplane of several processes on one Redis: leases, heartbeats, worker channels, durable log.

A live session is owned by one process: its agent, turn thread, pending
requests and processes live there. The owner holds a lease in Redis
(``wsg:o:<sid>`` = its worker channel) and renews it; ``wsg:m:<sid>`` keeps
what another process needs to adopt the session when the lease lapses
(stored key, user, whether a turn was running), ``wsg:k:<key>`` maps a stored
key to the runtime id. A session-scoped call that reaches another process is
forwarded to the owner's worker channel over the channel layer and answered
back; the caller's socket joins the session's group, so events reach it
wherever it is connected. Every event also goes to a Redis Stream
(``wsg:log:<sid>``, entry id ``<seq>-0``), so replay works from any process
and across restarts; ``wsg:epoch`` names the life of those logs.

Everything here runs on the event loop; worker threads reach it with
:meth:`RedisBackplane.run` (a hop onto the existing loop, never a new loop).
What arrives on the worker channel goes to the :class:`~.base.Receivers` the
layers above registered.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Coroutine
from typing import Any

from .. import ids, metrics
from ..conf import gateway_settings, redis_options
from .base import (
    BROADCAST_GROUP,
    BROADCAST_MESSAGE,
    DETACH,
    EVENT_MESSAGE,
    FORWARD,
    REPLY,
    LocalBackplane,
    Message,
    Owner,
    OwnerGone,
    Receivers,
    session_group,
    worker_of,
)
from .eventlog import LoggedEvent, Replay

log = logging.getLogger(__name__)

STREAM_TTL_S = 24 * 3600


class ClusterUnavailable(Exception):
    """Redis could not be reached for a cluster operation."""


def renew_interval() -> float:
    """Seconds between an owner's heartbeat and lease renewals (a third of the lease)."""
    return float(gateway_settings.LEASE_S) / 3


class RedisBackplane(LocalBackplane):
    """This process's membership in the cluster (started when ``REDIS_URL`` is set)."""

    def __init__(self, receivers: Receivers | None = None) -> None:
        super().__init__(receivers)
        self.layer: Any = None
        self.redis: Any = None
        self.channel: str | None = None
        self._started: asyncio.Future[None] | None = None
        self._replies: dict[str, asyncio.Future[Message]] = {}
        self._corr = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._missing: dict[str, int] = {}  # workers missing their heartbeat, and for how many checks

    @property
    def shared(self) -> bool:  # type: ignore[override]
        return self.channel is not None

    # -- lifecycle -------------------------------------------------------

    async def start(self, loop: asyncio.AbstractEventLoop, layer: Any) -> None:
        """Join the cluster once per process (idempotent; concurrent callers wait for the first)."""
        if self._started is not None and self.loop is loop:
            await asyncio.shield(self._started)
            return
        self.loop, self.layer = loop, layer
        self._started = loop.create_future()
        try:
            import redis.asyncio as aioredis

            options = gateway_settings.REDIS_OPTIONS
            self.redis = aioredis.Redis.from_url(
                gateway_settings.REDIS_URL,
                decode_responses=True,
                **(redis_options() if options is None else options),
            )
            # XRANGE replies as hiredis parsed them: redis-py's per-entry conversion to dicts
            # cost most of the loop time of a full log's read (4,096 entries).
            self.redis.set_response_callback("XRANGE", _as_parsed)
            # The default prefix: channels_redis core serves all local channels through one
            # receive lock, and a receiver on a prefix of its own would starve the others.
            self.channel = await layer.new_channel()
            await layer.group_add(BROADCAST_GROUP, self.channel)
            self._spawn(self._receive())
            self._spawn(self._renew_leases())
            self._started.set_result(None)
        except Exception as exc:
            self._started.set_exception(exc)
            raise
        log.info("joined the cluster as %s", self.channel)

    async def epoch(self) -> str | None:
        """The replay epoch shared by every process while Redis keeps the logs."""
        candidate = ids.epoch()
        await self.redis.set("wsg:epoch", candidate, nx=True)
        return await self.redis.get("wsg:epoch") or candidate

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = self._loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        """From a worker thread: run ``coro`` on the loop and wait for its result."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop())
        return future.result(timeout if timeout is not None else gateway_settings.FORWARD_TIMEOUT_S)

    # -- ownership -------------------------------------------------------

    async def claim(self, session_id: str, key: str, owner_id: int | None, *, take: bool = False) -> bool:
        """Record this process as the owner (``take``: only if nobody holds the lease)."""
        lease_ms = int(gateway_settings.LEASE_S * 1000)
        owner_key = f"wsg:o:{session_id}"
        if take:
            if not await self.redis.set(owner_key, self.channel, nx=True, px=lease_ms):
                return False
        else:
            await self.redis.set(owner_key, self.channel, px=lease_ms)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(
            f"wsg:m:{session_id}", mapping={"key": key, "owner_id": "" if owner_id is None else owner_id}
        )
        pipe.expire(f"wsg:m:{session_id}", STREAM_TTL_S)
        pipe.set(f"wsg:k:{key}", session_id, ex=STREAM_TTL_S)
        await pipe.execute()
        return True

    async def release(self, session_id: str, key: str, *, ended: bool) -> None:
        """Give up ownership; ``ended`` also forgets the session (a later resume starts afresh)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(f"wsg:o:{session_id}")
        if ended:
            pipe.delete(f"wsg:m:{session_id}")
            pipe.delete(f"wsg:k:{key}")
        await pipe.execute()

    async def remember(self, session_id: str, config: str) -> None:
        """Keep a session's settings where an adopting process finds them (JSON)."""
        await self.redis.hset(f"wsg:m:{session_id}", "config", config)

    async def locate(self, session_id: str) -> Owner | None:
        """The owner of a session the cluster knows, or None if it has none (dead or unknown)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(f"wsg:o:{session_id}")
        pipe.hgetall(f"wsg:m:{session_id}")
        channel, meta = await pipe.execute()
        if not meta:
            return None
        return Owner(channel or "", meta)

    async def session_for_key(self, key: str) -> str | None:
        session_id: str | None = await self.redis.get(f"wsg:k:{key}")
        return session_id

    async def _renew_leases(self) -> None:
        script = self.redis.register_script(
            "if redis.call('get', KEYS[1]) == ARGV[1] then "
            "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
        )
        while True:
            lease_ms = int(gateway_settings.LEASE_S * 1000)
            try:
                await self.redis.set(f"wsg:w:{self.channel}", "1", px=lease_ms)
                await self._detach_lost_clients()
            except Exception:
                metrics.redis_errors.labels("heartbeat").inc()
                log.warning("worker heartbeat failed", exc_info=True)
            sessions = list(self.receivers.owned())
            try:
                # One round trip for every lease (2,000 sessions: ~26 ms of loop time, not ~180 ms).
                pipe = self.redis.pipeline(transaction=False)
                for live in sessions:
                    # Awaiting a script on a pipeline only queues it (EVALSHA, loaded first if needed).
                    await script(keys=[f"wsg:o:{live.id}"], args=[self.channel, lease_ms], client=pipe)
                renewed = await pipe.execute() if sessions else []
                for live, ok in zip(sessions, renewed, strict=True):
                    if not ok:  # lapsed (a Redis restart, a long stall): take it again
                        await self.claim(live.id, live.key, live.owner_id)
            except Exception:
                metrics.redis_errors.labels("lease").inc()
                log.warning("lease renewal failed for %d session(s)", len(sessions), exc_info=True)
            await asyncio.sleep(renew_interval())

    async def _detach_lost_clients(self) -> None:
        """Detach clients of sessions owned here whose worker stopped heartbeating (killed).

        A worker must be missing at two checks in a row: after a Redis restart every
        heartbeat is gone until each worker's next tick."""
        remote: dict[str, list[tuple[str, str]]] = {}
        for live in list(self.receivers.owned()):
            for conn_id in list(live.clients):
                worker = worker_of(conn_id)
                if worker not in (None, self.channel):
                    remote.setdefault(worker, []).append((live.id, conn_id))
        missing = set()
        for worker in remote:
            if not await self.redis.exists(f"wsg:w:{worker}"):
                missing.add(worker)
        lost = {w: self._missing.get(w, 0) + 1 for w in missing}
        self._missing = lost
        for worker, count in lost.items():
            if count < 2:
                continue
            log.warning("worker %s is gone: detaching its %d client(s)", worker, len(remote[worker]))
            for session_id, conn_id in remote[worker]:
                await self._notice({"type": DETACH, "session_id": session_id, "conn_id": conn_id})

    async def watch(self, session_id: str) -> None:
        """Receive a session's events published by other processes (first local subscriber)."""
        await self.layer.group_add(session_group(session_id), self.channel)

    async def unwatch(self, session_id: str) -> None:
        await self.layer.group_discard(session_group(session_id), self.channel)

    # -- forwarding ------------------------------------------------------

    async def forward(self, owner: str, session_id: str, message: dict[str, Any]) -> dict[str, Any]:
        """Send a call to the owner's worker channel and wait for its reply, on the loop.

        While waiting, the owner is checked every renewal interval: once its heartbeat
        has stopped and its lease on ``session_id`` has lapsed it is dead and
        :class:`OwnerGone` is raised at once (the caller adopts the session), without
        waiting out ``FORWARD_TIMEOUT_S``. A live owner that released the session while
        serving the call (``session.close``) still heartbeats, so its answer is awaited."""
        corr = f"{self.channel}:{next(self._corr)}"
        loop = self._loop()
        future: asyncio.Future[Message] = loop.create_future()
        self._replies[corr] = future
        deadline = loop.time() + gateway_settings.FORWARD_TIMEOUT_S
        try:
            await self.layer.send(owner, {**message, "type": FORWARD, "corr": corr, "reply_to": self.channel})
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError(f"no answer from {owner}")
                await asyncio.wait({future}, timeout=min(renew_interval(), remaining))
                if future.done():
                    reply: Message = future.result()
                    return reply
                if not await self.holds(owner, session_id):
                    log.warning(
                        "worker %s died with a forwarded %s outstanding (session=%s): failing over",
                        owner,
                        message.get("method"),
                        session_id,
                    )
                    raise OwnerGone(owner)
        finally:
            self._replies.pop(corr, None)

    async def ask(self, worker: str, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send ``message`` (a type in the other worker's ``receivers.requests``) and wait for its reply."""
        corr = f"{self.channel}:{next(self._corr)}"
        future: asyncio.Future[Message] = self._loop().create_future()
        self._replies[corr] = future
        try:
            await self.layer.send(worker, {**message, "corr": corr, "reply_to": self.channel})
            return await asyncio.wait_for(future, timeout)
        finally:
            self._replies.pop(corr, None)

    async def workers(self) -> list[str]:
        """The worker channels whose heartbeat is current (every live process of the cluster)."""
        prefix = "wsg:w:"
        return sorted([key[len(prefix) :] async for key in self.redis.scan_iter(match=prefix + "*")])

    async def alive(self, worker: str) -> bool:
        """Whether a worker's heartbeat (renewed with its leases) is current."""
        return bool(await self.redis.exists(f"wsg:w:{worker}"))

    async def holds(self, worker: str, session_id: str) -> bool:
        """Whether ``worker`` may still own ``session_id``: it heartbeats, or its lease has not lapsed."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(f"wsg:w:{worker}")
        pipe.get(f"wsg:o:{session_id}")
        heartbeat, lease = await pipe.execute()
        return bool(heartbeat) or lease == worker

    async def lapse(self, worker: str, session_id: str) -> bool:
        """Wait, on the loop, until a silent ``worker``'s lease on ``session_id`` lapses.

        True once the lease no longer names it (the session can be adopted), False if
        its heartbeat came back first (it is alive: forward to it). Waits at most one
        lease plus a renewal interval (the lease cannot outlive that without renewal)."""
        loop = self._loop()
        deadline = loop.time() + gateway_settings.LEASE_S + renew_interval()
        while True:
            pipe = self.redis.pipeline(transaction=False)
            pipe.exists(f"wsg:w:{worker}")
            pipe.get(f"wsg:o:{session_id}")
            pipe.pttl(f"wsg:o:{session_id}")
            heartbeat, lease, ttl_ms = await pipe.execute()
            if heartbeat:
                return False
            if lease != worker:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            # Wake when the lease expires (a little after), or at the next check.
            await asyncio.sleep(min(max(ttl_ms, 0) / 1000 + 0.005, renew_interval() / 2, remaining))

    async def tell(self, owner: str, message: dict[str, Any]) -> None:
        """Fire-and-forget message to another worker."""
        try:
            await self.layer.send(owner, message)
        except Exception:
            metrics.redis_errors.labels("send").inc()
            log.warning("could not reach worker %s", owner, exc_info=True)

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                metrics.redis_errors.labels("receive").inc()
                log.warning("worker channel receive failed", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            kind = message.get("type")
            if kind in (EVENT_MESSAGE, BROADCAST_MESSAGE):
                if message.get("origin") != self.channel and self.receivers.events is not None:
                    self.receivers.events(message)
            elif kind == REPLY:
                future = self._replies.get(message["corr"])
                if future is not None and not future.done():
                    future.set_result(message)
            elif kind == FORWARD:
                self._spawn(self._serve(message))
            elif kind in self.receivers.notices:
                self._spawn(self._notice(message))
            elif kind in self.receivers.requests:
                self._spawn(self._serve_request(message))

    async def _serve(self, message: Message) -> None:
        serve = self.receivers.calls
        try:
            if serve is None:
                raise LookupError("no receiver of forwarded calls")
            reply = await serve(message)
        except Exception:
            log.exception("forwarded call failed method=%s", message.get("method"))
            reply = {"text": None}
        await self.tell(message["reply_to"], {"type": REPLY, "corr": message["corr"], **reply})

    async def _notice(self, message: Message) -> None:
        handler = self.receivers.notices.get(message["type"])
        if handler is None:
            return
        try:
            await handler(message)
        except Exception:
            log.exception("notice %s failed", message["type"])

    async def _serve_request(self, message: Message) -> None:
        try:
            reply = await self.receivers.requests[message["type"]](message)
        except Exception:
            log.exception("%s failed", message["type"])
            reply = {"error": "failed"}
        await self.tell(message["reply_to"], {"type": REPLY, "corr": message["corr"], **reply})

    # -- publishing ------------------------------------------------------

    async def publish(self, session_id: str, batch: list[tuple[Message, LoggedEvent]]) -> None:
        """Send a batch of a session's events to the processes with clients of it (its group)."""
        group = session_group(session_id)
        for message, event in batch:
            try:
                await self.layer.group_send(group, message)
            except Exception:
                metrics.redis_errors.labels("publish").inc()
                log.warning("publish failed session=%s seq=%s", session_id, event.seq, exc_info=True)

    async def publish_global(self, message: Message) -> None:
        try:
            await self.layer.group_send(BROADCAST_GROUP, message)
        except Exception:
            log.warning("broadcast failed group=%s", BROADCAST_GROUP, exc_info=True)

    # -- durable event log -----------------------------------------------

    async def append(self, session_id: str, events: list[LoggedEvent]) -> None:
        """Add events to the session's durable log (one round trip)."""
        key = f"wsg:log:{session_id}"
        pipe = self.redis.pipeline(transaction=False)
        for event in events:
            # The frame only: its params are parsed back on the (rare) read, not stored twice.
            fields = {"t": event.text}
            if event.srq_text is not None:
                fields["s"] = event.srq_text
            pipe.xadd(
                key,
                fields,
                id=f"{event.seq}-0",
                maxlen=gateway_settings.EVENT_LOG_MAX_EVENTS,
                approximate=True,
            )
        pipe.expire(key, STREAM_TTL_S)
        try:
            await pipe.execute()
        except Exception:
            metrics.redis_errors.labels("append").inc()
            raise

    async def read_log(self, session_id: str, after: int, before: int | None = None) -> list[LoggedEvent]:
        """Events with ``after < seq`` (``< before`` when given), oldest first."""
        end = f"{before - 1}-0" if before is not None else "+"
        if before is not None and before - 1 <= after:
            return []
        key = f"wsg:log:{session_id}"
        out: list[LoggedEvent] = []
        while True:
            # Pages, so that a full log (thousands of events) never holds the loop for long.
            entries = await self.redis.xrange(key, min=f"({after}-0", max=end, count=LOG_READ_PAGE)
            out.extend(_logged(entry_id, fields) for entry_id, fields in entries)
            if len(entries) < LOG_READ_PAGE:
                return out
            after = out[-1].seq

    async def replay(self, session_id: str, last_seen: int) -> Replay:
        """``session.events.since`` from the durable log (same rules as the in-memory ring)."""
        oldest, latest = await self.log_bounds(session_id)
        truncated = last_seen > latest or (oldest > 0 and last_seen < oldest - 1)
        events = await self.read_log(session_id, last_seen) if last_seen < latest else []
        return Replay(events, latest, truncated)

    async def log_bounds(self, session_id: str) -> tuple[int, int]:
        """(oldest kept seq, latest seq) of a session's durable log; (0, 0) when empty."""
        key = f"wsg:log:{session_id}"
        first = await self.redis.xrange(key, count=1)
        last = await self.redis.xrevrange(key, count=1)
        if not first:
            return 0, 0
        return int(first[0][0].split("-")[0]), int(last[0][0].split("-")[0])

    async def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self.redis is not None:
            await self.redis.aclose()


LOG_READ_PAGE = 512  # stream entries a read of the durable log takes at a time


def _as_parsed(response: Any, **options: Any) -> Any:
    return response


def _logged(entry_id: str, flat: list[str]) -> LoggedEvent:
    """A stream entry (its id, then field, value, field, value...) as the event it logged."""
    fields = dict(zip(flat[::2], flat[1::2], strict=False))
    # The params are parsed from the frame by whoever reads them ("p": entries of older versions).
    params = json.loads(fields["p"]) if "p" in fields else None
    return LoggedEvent(int(entry_id.split("-", 1)[0]), params, fields["t"], fields.get("s"))
