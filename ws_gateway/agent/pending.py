"""Interactive requests: the agent's thread asks a person and waits (PROTOCOL.md section 8).

A request is one seq-stamped session event (``approval.request``,
``clarify.request``, ``sudo.request``, ``secret.request``). Each connection
receives it in exactly one form: clients that opted into server requests for
the session get a JSON-RPC request ``{"id": "srq-...", "method": KIND}``, the
others the event. The first answer by either path wins; every ending (answer,
timeout, interrupt, session close) emits exactly one ``request.cancel``.
Ended ids are remembered for an hour so late answers get ``expired``.

Passwords and secret values travel only in the answering frame: they are
never logged, never in an event, never in the transcript.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .. import ids
from ..conf import gateway_settings
from ..events.outbox import emit
from ..sessions.live import LiveSession

log = logging.getLogger(__name__)

KINDS = ("approval", "clarify", "sudo", "secret")
EXPIRE_KINDS = ("clarify", "sudo", "secret")
ENDED_MEMORY_S = 3600.0
DECLINED: dict[str, Any] = {"approval": {"choice": "deny"}, "clarify": "", "sudo": "", "secret": ""}


@dataclass(eq=False)
class Request:
    kind: str
    session: LiveSession
    payload: dict[str, Any]  # the event payload, request_id included
    request_id: str = field(default_factory=ids.request_id)
    srq_id: str = field(default_factory=ids.server_request_id)
    created: float = field(default_factory=time.time)
    answer: Any = None
    done: threading.Event = field(default_factory=threading.Event)
    ended_reason: str | None = None

    def public(self) -> dict[str, Any]:
        """What resume/activate/events.since show of an open request."""
        return {"kind": self.kind, "id": self.srq_id, "created_at": self.created, **self.payload}


class PendingRequests:
    """All open requests of this process, by request id and by server-request id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, Request] = {}
        self._by_srq: dict[str, str] = {}
        self._ended: OrderedDict[str, tuple[str, float]] = OrderedDict()

    # -- the agent's side ------------------------------------------------

    def ask(self, session: LiveSession, kind: str, payload: dict[str, Any], timeout: float) -> Any:
        """Emit the request and block until answered, released or timed out; returns the answer."""
        request = Request(kind, session, payload)
        request.payload = {"request_id": request.request_id, **payload}
        with self._lock:
            self._open[request.request_id] = request
            self._by_srq[request.srq_id] = request.request_id
        with session.lock:
            session.open_requests += 1
        emit(
            session.id,
            f"{kind}.request",
            request.payload,
            server_request=(request.srq_id, kind, _srq_params(kind, request.payload)),
        )
        log.info("request open session=%s kind=%s request_id=%s", session.id, kind, request.request_id)
        if not request.done.wait(timeout):
            self._end(request, DECLINED[kind], "timeout")
        return request.answer

    # -- the people's side -----------------------------------------------

    def resolve(self, request_id: str, answer: Any, reason: str = "resolved") -> str:
        """Answer an open request: ``ok``, ``expired`` (it ended) or ``unknown`` (never existed)."""
        with self._lock:
            request = self._open.get(request_id)
            if request is None:
                self._forget_old()
                return "expired" if request_id in self._ended else "unknown"
        return "ok" if self._end(request, answer, reason) else "expired"

    def by_srq(self, srq_id: str) -> Request | None:
        request_id = self._by_srq.get(srq_id)
        return self._open.get(request_id) if request_id else None

    def get(self, request_id: str) -> Request | None:
        return self._open.get(request_id)

    def __len__(self) -> int:
        return len(self._open)

    def kind_of_ended(self, request_id: str) -> str | None:
        entry = self._ended.get(request_id)
        return entry[0] if entry else None

    def for_session(self, session: LiveSession, kind: str | None = None) -> list[Request]:
        with self._lock:
            return [
                r for r in self._open.values() if r.session is session and (kind is None or r.kind == kind)
            ]

    def release(self, session: LiveSession, reason: str) -> int:
        """End every open request of a session: approvals denied, the others answered ""."""
        requests = self.for_session(session)
        for request in requests:
            self._end(request, DECLINED[request.kind], reason)
        return len(requests)

    # -- internals -------------------------------------------------------

    def _end(self, request: Request, answer: Any, reason: str) -> bool:
        with self._lock:
            if self._open.pop(request.request_id, None) is None:
                return False
            self._by_srq.pop(request.srq_id, None)
            self._ended[request.request_id] = (request.kind, time.monotonic())
            self._forget_old()
        request.answer = answer
        request.ended_reason = reason
        with request.session.lock:
            request.session.open_requests -= 1
        if request.kind in EXPIRE_KINDS and reason == "timeout":
            # Clients close the prompt on *.expire (approvals time out as a plain deny).
            emit(request.session.id, f"{request.kind}.expire", {"request_id": request.request_id})
        emit(
            request.session.id,
            "request.cancel",
            {
                "id": request.srq_id,
                "method": request.kind,
                "reason": reason,
                "request_id": request.request_id,
            },
        )
        request.done.set()
        log.info(
            "request ended session=%s kind=%s request_id=%s reason=%s",
            request.session.id,
            request.kind,
            request.request_id,
            reason,
        )
        return True

    def _forget_old(self) -> None:
        cutoff = time.monotonic() - ENDED_MEMORY_S
        while self._ended:
            _, (_, ended) = next(iter(self._ended.items()))
            if ended >= cutoff:
                break
            self._ended.popitem(last=False)


pending = PendingRequests()


def _srq_params(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    if kind == "clarify":
        question = {"qid": "q1", "question": payload.get("question", ""), "choices": payload.get("choices")}
        return {**payload, "questions": [question]}
    return dict(payload)


def answer_from_reply(kind: str, reply: dict[str, Any]) -> Any:
    """The answer carried by a client's response to a server request (an error declines)."""
    result = reply.get("result")
    if not isinstance(result, dict):
        return DECLINED[kind]
    if kind == "approval":
        return {"choice": result.get("choice", "deny"), "all": bool(result.get("all"))}
    if kind == "clarify":
        answers = result.get("answers")
        if isinstance(answers, dict):
            value = answers.get("q1", next(iter(answers.values()), ""))
        else:
            value = result.get("answer", "")
        return value if isinstance(value, str) else ""
    value = result.get("value", "")
    return value if isinstance(value, str) else ""


def timeout_for(kind: str) -> float:
    return float(gateway_settings.REQUEST_TIMEOUTS_S.get(kind, 300.0))
