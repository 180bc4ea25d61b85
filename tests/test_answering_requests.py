"""Answers from people, in-process: approval.respond (one, a named one, all), the *.respond
methods' bad input, and replies to server requests (a bad choice is a denial, "all" answers every
open approval, another user's reply changes nothing). A real pending-request registry, a live
session registered for the test, the turn's side played by threads that ask and wait."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

import ws_gateway.methods  # noqa: F401 - registers the methods
from ws_gateway.agent import pending as pending_module
from ws_gateway.agent.pending import PendingRequests, answer_from_reply, pending
from ws_gateway.caller import RemoteCaller
from ws_gateway.errors import RpcError
from ws_gateway.methods.interact import client_replied
from ws_gateway.rpc.call import Call, Params
from ws_gateway.rpc.registry import registry as methods
from ws_gateway.sessions.live import LiveSession
from ws_gateway.sessions.registry import registry as sessions

OWNER = 7


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveSession]:
    monkeypatch.setattr(pending_module, "emit", lambda *args, **kwargs: None)
    session = LiveSession("rt-answers", "20260101_000000_eeeeee", owner_id=OWNER)
    sessions.add(session)
    yield session
    pending.release(session, "test over")
    sessions.remove(session)


def ask(live: LiveSession, kind: str, count: int = 1) -> list[tuple[threading.Thread, list[Any]]]:
    """``count`` requests of ``kind`` asked from threads, each open when this returns."""
    out = []
    for n in range(count):
        answers: list[Any] = []
        thread = threading.Thread(
            target=lambda a=answers, n=n: a.append(pending.ask(live, kind, {"n": n}, 60))
        )
        thread.start()
        for _ in range(2000):  # bounded wait for the request to be open
            if len(pending.for_session(live, kind)) == n + 1:
                break
            threading.Event().wait(0.005)  # polling interval of a bounded wait
        out.append((thread, answers))
    assert len(pending.for_session(live, kind)) == count
    return out


def answers_of(asked: list[tuple[threading.Thread, list[Any]]]) -> list[Any]:
    for thread, _ in asked:
        thread.join(10)
    return [a[0] if a else "(open)" for _, a in asked]


def call(method: str, user: int | None = OWNER, **params: Any) -> Any:
    spec = methods.get(method)
    assert spec is not None
    return spec.handler(Call(RemoteCaller("c-answers", user), method, Params(params)))


def test_approval_respond_answers_the_oldest_a_named_one_or_all(live: LiveSession) -> None:
    asked = ask(live, "approval", 4)
    third = pending.for_session(live, "approval")[2]
    assert call("approval.respond", session_id=live.id, request_id=third.request_id, choice="once") == {
        "resolved": 1
    }
    assert call("approval.respond", session_id=live.id, choice="session") == {"resolved": 1}  # the oldest
    assert call("approval.respond", session_id=live.id, all=True) == {"resolved": 2}  # deny by default
    assert answers_of(asked) == [
        {"choice": "session"},
        {"choice": "deny"},
        {"choice": "once"},
        {"choice": "deny"},
    ]
    assert call("approval.pending", session_id=live.id) == {"approvals": []}


def test_a_bad_choice_is_refused_and_answers_nothing(live: LiveSession) -> None:
    ask(live, "approval")
    with pytest.raises(RpcError) as failed:
        call("approval.respond", session_id=live.id, choice="forever")
    assert failed.value.code == 4002 and "choice must be one of" in failed.value.message
    assert len(pending.for_session(live, "approval")) == 1


@pytest.mark.parametrize("method", ["clarify.respond", "sudo.respond", "secret.respond"])
def test_respond_without_a_request_id_is_invalid_params(live: LiveSession, method: str) -> None:
    with pytest.raises(RpcError) as failed:
        call(method, answer="x")
    assert failed.value.code == -32602 and failed.value.message == "request_id required"


def test_another_users_answer_or_the_wrong_kind_is_refused(live: LiveSession) -> None:
    asked = ask(live, "clarify")
    (request,) = pending.for_session(live, "clarify")
    for method, user in (("clarify.respond", OWNER + 1), ("sudo.respond", OWNER)):
        with pytest.raises(RpcError) as failed:
            call(method, user=user, request_id=request.request_id, answer="x", password="x")
        assert failed.value.code == 4009
    assert call("clarify.respond", request_id=request.request_id, answer="mine") == {"status": "ok"}
    assert answers_of(asked) == ["mine"]
    # The same request again: it ended, so the answer is late, not wrong.
    assert call("clarify.respond", request_id=request.request_id, answer="again") == {"status": "expired"}


# -- replies to server requests -----------------------------------------------------------------


def reply(srq_id: Any, result: Any, user: int | None = OWNER) -> None:
    client_replied(RemoteCaller("c-answers", user), {"id": srq_id, "result": result})


def test_a_reply_with_an_unknown_choice_is_a_denial(live: LiveSession) -> None:
    asked = ask(live, "approval")
    (request,) = pending.for_session(live, "approval")
    reply(request.srq_id, {"choice": "forever"})
    assert answers_of(asked) == [{"choice": "deny"}]


def test_a_reply_for_all_answers_every_open_approval(live: LiveSession) -> None:
    asked = ask(live, "approval", 3)
    first = pending.for_session(live, "approval")[0]
    reply(first.srq_id, {"choice": "once", "all": True})
    assert answers_of(asked) == [{"choice": "once"}] * 3


def test_replies_that_are_not_for_an_open_request_of_the_user_change_nothing(live: LiveSession) -> None:
    ask(live, "sudo")
    (request,) = pending.for_session(live, "sudo")
    reply(request.srq_id, {"value": "pw"}, user=OWNER + 1)  # another user's
    reply(12345, {"value": "pw"})  # not a server-request id
    reply("srq-unknown", {"value": "pw"})  # no such request (and no cluster to pass it to)
    assert pending.for_session(live, "sudo") == [request]


@pytest.mark.parametrize(
    ("kind", "result", "answer"),
    [
        ("approval", None, {"choice": "deny"}),  # an error reply declines
        ("approval", {"choice": "once"}, {"choice": "once", "all": False}),
        ("clarify", {"answers": {"q1": "blue"}}, "blue"),
        ("clarify", {"answers": {"other": "red"}}, "red"),
        ("clarify", {"answers": {}}, ""),
        ("clarify", {"answer": "green"}, "green"),
        ("clarify", {"answer": 5}, ""),
        ("sudo", {"value": "pw"}, "pw"),
        ("secret", {"value": ["x"]}, ""),
        ("secret", "not an object", ""),
    ],
)
def test_the_answer_carried_by_a_reply(kind: str, result: Any, answer: Any) -> None:
    assert answer_from_reply(kind, {"result": result}) == answer


def test_ended_requests_are_remembered_for_a_while_then_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pending_module, "emit", lambda *args, **kwargs: None)
    registry = PendingRequests()
    live = LiveSession("rt-forget", "k", owner_id=None)
    thread = threading.Thread(target=registry.ask, args=(live, "clarify", {}, 60))
    thread.start()
    for _ in range(2000):  # bounded wait for the request to be open
        if registry.for_session(live):
            break
        threading.Event().wait(0.005)  # polling interval of a bounded wait
    (request,) = registry.for_session(live)
    assert registry.resolve(request.request_id, "a") == "ok"
    thread.join(10)
    assert registry.resolve(request.request_id, "b") == "expired"
    assert registry.kind_of_ended(request.request_id) == "clarify"
    monkeypatch.setattr(pending_module, "ENDED_MEMORY_S", -1.0)  # everything ended is now old
    assert registry.resolve(request.request_id, "c") == "unknown"
    assert registry.kind_of_ended(request.request_id) is None
