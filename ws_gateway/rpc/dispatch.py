"""Dispatch of inbound JSON-RPC frames for one connection.

Runs on the event loop and never blocks it: ``gateway.ping`` is answered at
once; inline methods go through the connection's lane (one at a time, in
arrival order, each on an ``inline`` pool thread); pool methods run
concurrently on the shared ``pool``. A call is first routed on the loop by
the router installed at start-up (:func:`install_router`: which process serves it):
one for a session owned by another process waits for the owner's answer
there, holding no thread. Clients' replies to server requests go to the
handlers registered with :func:`~.registry.on_client_reply`. Precedence of errors: parse,
invalid request, unknown method, invalid params.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from .. import errors, framing, logs, pacing, workers
from ..caller import Caller, Request
from ..conf import gateway_settings
from ..errors import RpcError
from ..events.outbox import encode
from .call import Call, Params
from .registry import MethodSpec, client_reply, registry


class Counters(Protocol):
    parse_errors: int
    dispatch_crashes: int


class Socket(Caller, Protocol):
    """The connection a dispatcher serves, as the RPC layer sees it (the transport's Connection)."""

    @property
    def stats(self) -> Counters: ...
    def push(self, text: str) -> None: ...
    async def join(self, session_id: str) -> None: ...
    def start_cursor(self, session_id: str, baseline: int, server_requests: bool | None = None) -> None: ...


log = logging.getLogger(__name__)

PING = "gateway.ping"
_EMPTY_LANE: deque[Any] = deque(maxlen=0)  # the lane of a connection that never queued a call

# Run on the loop before a call runs here: the owner's result when the call's session is owned
# by another process, else None (awaits, holds no thread).
Router = Callable[[str, Request, Executor], Awaitable[dict[str, Any] | None]]
_router: list[Router] = []


def install_router(router: Router) -> None:
    """The router asked before each call runs (installed at start-up; one at a time)."""
    _router[:] = [router]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise ValueError(f"{text} is out of range")
    return value


# One decoder for every frame: json.loads with hooks builds a new one per call.
_decoder = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def parse(text: str) -> Any:
    """A frame's JSON, strictly: NaN, Infinity and out-of-range numbers are not JSON (RFC 8259),
    though Python's decoder takes them; they would come back out unencodable."""
    return _decoder.decode(text)


def response(request_id: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def error_response(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": err}


class TokenBucket:
    """Requests a connection may make: ``rate`` per second, bursts of ``burst``."""

    def __init__(self, rate: float | None, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp = time.monotonic()

    @classmethod
    def from_settings(cls) -> TokenBucket:
        limit = gateway_settings.RATE_LIMIT
        return cls(limit["rate"], limit["burst"]) if limit else cls(None, 0)

    def take(self) -> int:
        """0 when a request may go ahead, else milliseconds until one may."""
        if self.rate is None:
            return 0
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0
        return max(1, int((1 - self.tokens) / self.rate * 1000))


@dataclass
class Job:
    spec: MethodSpec
    call: Call


class Dispatcher:
    """Turns one connection's frames into handler runs and response frames."""

    def __init__(self, conn: Socket) -> None:
        self.conn = conn
        self.loop = asyncio.get_running_loop()
        self._lane: deque[Any] = _EMPTY_LANE  # its own deque once a call queues (idle sockets: none)
        self._lane_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._bucket = TokenBucket.from_settings()

    # -- inbound -------------------------------------------------------

    def handle_text(self, text: str) -> None:
        text = text.strip()
        if not text:
            return
        try:
            obj = parse(text)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply to parse
            self.conn.stats.parse_errors += 1
            self._push(error_response(None, errors.PARSE_ERROR, "parse error"))
            return
        check = framing.may_hold_unstorable(text)
        if isinstance(obj, list):
            self._batch(obj, check)
            return
        outcome = self._prepare(obj, check)
        if isinstance(outcome, Job):
            self._schedule(outcome)
        elif outcome is not None:
            self._push(outcome)

    def handle_binary(self) -> None:
        self._push(
            error_response(None, errors.INVALID_REQUEST, "invalid request: binary frames are not supported")
        )

    def _prepare(self, obj: Any, check: bool = False) -> Job | dict[str, Any] | None:
        """A Job to run, a response to send now, or None (nothing to answer).

        ``check``: the frame may hold text that cannot be stored (see :func:`framing.unstorable`)."""
        if not isinstance(obj, dict):
            return error_response(None, errors.INVALID_REQUEST, "invalid request: expected an object")
        request_id = obj.get("id")
        name = obj.get("method")
        if name is None and "id" in obj and ("result" in obj or "error" in obj):
            if check and framing.unstorable(obj.get("result"), "result") is not None:
                log.info("client reply with unstorable text dropped peer=%s", self.conn.peer)
                return None
            client_reply(self.conn, obj)
            return None
        if not isinstance(name, str) or not name:
            return error_response(
                request_id, errors.INVALID_REQUEST, "invalid request: method must be a non-empty string"
            )
        spec = registry.get(name)
        if spec is None and name != PING:
            return error_response(request_id, errors.METHOD_NOT_FOUND, f"unknown method: {name}")
        params = obj.get("params")
        if params is None:
            params = {}
        elif not isinstance(params, dict):
            return error_response(request_id, errors.INVALID_PARAMS, "invalid params: expected an object")
        if name == PING:
            return response(request_id, {"ok": True})
        where = framing.unstorable(params) if check else None
        if where is not None:
            return error_response(
                request_id,
                errors.INVALID_PARAMS,
                f"invalid params: {where} holds a lone surrogate or NUL (text must be storable Unicode)",
            )
        wait_ms = self._bucket.take()
        if wait_ms:
            return error_response(
                request_id, errors.RATE_LIMITED, "rate limited", {"retry_after_ms": wait_ms}
            )
        assert spec is not None  # unknown methods were answered above, and ping before that
        return Job(spec, Call(self.conn, name, Params(params), request_id))

    def _batch(self, items: list[Any], check: bool = False) -> None:
        if not items:
            self._push(error_response(None, errors.INVALID_REQUEST, "invalid request: empty batch"))
            return
        slots: list[Any] = []  # responses, or Jobs to run in the lane, in order
        for item in items:
            outcome = self._prepare(item, check)
            if isinstance(outcome, Job) and outcome.spec.pool:
                self._schedule(outcome)
            elif outcome is not None:
                slots.append(outcome)
        if not slots:
            return
        if all(isinstance(slot, dict) for slot in slots):
            self._push_batch([_sized(encode(slot), slot.get("id"), "") for slot in slots])
            return
        self._queue_in_lane(slots)

    def _schedule(self, job: Job) -> None:
        if job.spec.pool:
            self._spawn(self._run_and_answer(job, workers.pool()))
        else:
            self._queue_in_lane(job)

    # -- running -------------------------------------------------------

    def _queue_in_lane(self, item: Any) -> None:
        if self._lane is _EMPTY_LANE:
            self._lane = deque()
        self._lane.append(item)
        if self._lane_task is None:
            self._lane_task = self._spawn(self._drain_lane())

    async def _drain_lane(self) -> None:
        try:
            while self._lane:
                item = self._lane.popleft()
                if isinstance(item, Job):
                    await self._run_and_answer(item, workers.inline())
                else:
                    await self._run_batch(item)
        finally:
            self._lane_task = None

    async def _run_batch(self, slots: list[Any]) -> None:
        with pacing.urgent.running_now():
            await self._run_batch_slots(slots)

    async def _run_batch_slots(self, slots: list[Any]) -> None:
        texts: list[str] = []
        for slot in slots:
            if isinstance(slot, Job):
                texts.append(await self._run(slot, workers.inline()))
                await self._join(slot.call)
            else:
                texts.append(_sized(encode(slot), slot.get("id"), ""))
        self._push_batch(texts)
        for slot in slots:
            if isinstance(slot, Job):
                self._start_cursors(slot.call)

    async def _run_and_answer(self, job: Job, executor: Any) -> None:
        with pacing.urgent.running_now():  # streaming turns give way until the answer is out
            text = await self._run(job, executor)
            await self._join(job.call)
            self.conn.push(text)
            self._start_cursors(job.call)

    async def _run(self, job: Job, executor: Any) -> str:
        """The encoded response of one job (encoded on the worker thread)."""
        call = job.call
        try:
            routed = await _route(job.spec, call, executor)
            if routed is None and job.spec.on_loop(call.params):
                return _invoke(job.spec, call, on_loop=True)
            return await self.loop.run_in_executor(executor, _invoke, job.spec, call, routed)
        except Exception:
            self.conn.stats.dispatch_crashes += 1
            log.exception("dispatch crashed method=%s peer=%s", call.method, self.conn.peer)
            return _internal_error(call)

    async def _join(self, call: Call) -> None:
        for sub in call.subscriptions:
            await self.conn.join(sub.session_id)

    def _start_cursors(self, call: Call) -> None:
        for sub in call.subscriptions:
            self.conn.start_cursor(sub.session_id, sub.baseline, sub.server_requests)

    # -- plumbing ------------------------------------------------------

    def _push(self, frame: dict[str, Any]) -> None:
        self.conn.push(_sized(encode(frame), frame.get("id"), ""))

    def _push_batch(self, texts: list[str]) -> None:
        """One array frame; each response alone when together they would not fit one message."""
        joined = "[" + ", ".join(texts) + "]"
        if framing.fits(joined, framing.max_message_bytes()):
            self.conn.push(joined)
            return
        log.warning("batch response of %d bytes sent as %d frames", framing.utf8_len(joined), len(texts))
        for text in texts:
            self.conn.push(text)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def close(self) -> None:
        self._lane.clear()
        for task in list(self._tasks):
            task.cancel()


async def _route(spec: MethodSpec, call: Call, executor: Any) -> dict[str, Any] | Exception | None:
    """The owner's outcome when another process owns the call's session; None: run it here."""
    if not _router:
        return None
    try:
        return await _router[0](spec.name, call, executor)
    except Exception as exc:  # answered like a handler's exception, on the worker thread
        return exc


def _invoke(
    spec: MethodSpec, call: Call, routed: dict[str, Any] | Exception | None = None, on_loop: bool = False
) -> str:
    """Runs on a worker thread (or on the loop, for ``on_loop`` calls): the handler (or the
    owner's outcome), mapped to an encoded response."""
    with bind_call(call):
        return _invoke_bound(spec, call, routed, on_loop)


def bind_call(call: Call) -> Any:
    """Log lines while ``call`` runs name its connection, session and request."""
    target = call.params.raw("session_id")
    return logs.bound(
        conn=call.conn.id, session=target if isinstance(target, str) else None, request=call.request_id
    )


def _invoke_bound(
    spec: MethodSpec, call: Call, routed: dict[str, Any] | Exception | None, on_loop: bool = False
) -> str:
    try:
        if isinstance(routed, Exception):
            raise routed
        if routed is not None:
            result = routed
        elif on_loop:
            result = spec.handler(call)  # touches no database: no connection hygiene
        else:
            result = workers.with_db(spec.handler, call)
    except RpcError as exc:
        frame = {"jsonrpc": "2.0", "id": call.request_id, "error": exc.to_error()}
    except Exception as exc:
        log.exception("handler error method=%s", call.method)
        frame = error_response(call.request_id, errors.HANDLER_ERROR, f"handler error: {exc}")
    else:
        if result is None:
            result = {}
        if not isinstance(result, dict):
            log.error("handler of %s returned %s, not an object", call.method, type(result).__name__)
            return _internal_error(call)
        frame = response(call.request_id, result)
    try:
        text = encode(frame)
    except (TypeError, ValueError):
        log.exception("response of %s is not JSON", call.method)
        return _internal_error(call)
    return _sized(text, call.request_id, call.method)


def _sized(text: str, request_id: Any, method: str) -> str:
    """``text``, or error 4131 in its place when it is too large for one message (logged)."""
    limit = framing.max_message_bytes()
    if framing.fits(text, limit):
        return text
    size = framing.utf8_len(text)
    log.warning("response too large method=%s bytes=%d limit=%d: answered 4131", method, size, limit)
    message = f"result too large for one message ({size} bytes, limit {limit}): request less or page it"
    data = {"bytes": size, "limit": limit}
    answer = encode(error_response(request_id, errors.RESULT_TOO_LARGE, message, data))
    if framing.fits(answer, limit):
        return answer
    # The request id alone is too large to echo.
    return encode(error_response(None, errors.RESULT_TOO_LARGE, message, data))


def _internal_error(call: Call) -> str:
    return encode(error_response(call.request_id, errors.INTERNAL_ERROR, "internal error"))
