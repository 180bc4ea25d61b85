"""How a turn ends when something goes wrong, in-process: a backend that crashes, an agent that
never built or failed to, a reply or a queued prompt that cannot be stored. Every turn still ends
with exactly one message.complete and the session is idle again. The database is replaced by an
in-memory store that can be told to fail; the turn runs on its real thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from ws_gateway.agent import context as context_module
from ws_gateway.agent import turns
from ws_gateway.agent.context import TurnContext, TurnFailed
from ws_gateway.errors import RpcError
from ws_gateway.sessions import store
from ws_gateway.sessions.live import LiveSession


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.changed = threading.Condition()

    def record(self, sid: str, type_: str, payload: Any = None, **kw: Any) -> None:
        with self.changed:
            self.seen.append((type_, payload))
            self.changed.notify_all()

    def of(self, type_: str) -> list[Any]:
        with self.changed:
            return [p for t, p in self.seen if t == type_]

    def wait_for(self, type_: str, count: int = 1, timeout: float = 10.0) -> list[Any]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.of(type_)) >= count, timeout), self.seen
            return self.of(type_)


class Store:
    """The transcript writes, in memory; ``fail_on(role)`` makes writes of that role raise."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.failing: set[str] = set()

    def append(self, live: LiveSession, rows: list[dict[str, Any]], start: int) -> None:
        if any(r["role"] in self.failing for r in rows):
            raise OSError("disk full")
        self.rows.extend(rows)


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> Events:
    seen = Events()
    monkeypatch.setattr(turns, "emit", seen.record)
    monkeypatch.setattr(context_module, "emit", seen.record)
    return seen


@pytest.fixture
def db(monkeypatch: pytest.MonkeyPatch) -> Store:
    fake = Store()
    monkeypatch.setattr(store, "append", fake.append)
    return fake


class Agent:
    def __init__(self, run: Callable[[TurnContext], None]) -> None:
        self.run = run

    def tools(self) -> dict[str, list[str]]:
        return {}

    def run_turn(self, ctx: TurnContext) -> None:
        self.run(ctx)


def session(agent: Any = None, **fields: Any) -> LiveSession:
    live = LiveSession("rt-turn", "20260101_000000_ffffff", owner_id=None, **{"title": "set", **fields})
    if agent is not None:
        live.agent = agent
        live.built.set()
    return live


def finished(live: LiveSession) -> None:
    assert live.idle.wait(10) and not live.running


def say_then(action: Callable[[TurnContext], None]) -> Agent:
    def run(ctx: TurnContext) -> None:
        ctx.delta("partial")
        action(ctx)

    return Agent(run)


def crash(ctx: TurnContext) -> None:
    raise KeyError("missing")


def test_a_crashing_backend_ends_the_turn_with_its_error(events: Events, db: Store) -> None:
    live = session(say_then(crash))
    assert turns.submit(live, "go") == {"status": "streaming"}
    (complete,) = events.wait_for("message.complete")
    finished(live)
    assert complete["status"] == "error" and complete["error"] == "KeyError: 'missing'"
    assert complete["text"] == "partial\nError: KeyError: 'missing'"
    assert [r["role"] for r in db.rows] == ["user", "assistant"]
    assert live.config["last_status"] == "error" and live.usage["calls"] == 1


def test_an_agent_that_failed_to_build_fails_the_turn_with_the_reason(events: Events, db: Store) -> None:
    live = session()
    live.build_error = None
    live.built.set()  # built, but no agent: the build failed after the submit was accepted
    turns.submit(live, "go")
    (complete,) = events.wait_for("message.complete")
    finished(live)
    assert complete["error"] == "agent unavailable"
    live.build_error = "agent init failed: no key"
    with pytest.raises(RpcError) as refused:  # a known failure is refused before anything is stored
        turns.submit(live, "again")
    assert refused.value.message == "agent init failed: no key"


def test_an_agent_still_building_after_the_timeout_fails_the_turn(
    events: Events, db: Store, settings: Any
) -> None:
    settings.WS_GATEWAY = {**getattr(settings, "WS_GATEWAY", {}), "AGENT_BUILD_TIMEOUT_S": 0.01}
    live = session()  # never built
    turns.submit(live, "go")
    (complete,) = events.wait_for("message.complete")
    finished(live)
    assert complete["status"] == "error" and complete["error"] == "agent initialization timed out"


def test_a_reply_that_cannot_be_stored_still_completes_the_turn(events: Events, db: Store) -> None:
    db.failing.add("assistant")
    live = session(Agent(lambda ctx: ctx.delta("hello")))
    turns.submit(live, "go")
    (complete,) = events.wait_for("message.complete")
    finished(live)
    assert complete["status"] == "complete" and complete["text"] == "hello"
    assert [r["role"] for r in db.rows] == ["user"]


def test_a_queued_prompt_that_cannot_be_stored_leaves_the_session_idle(events: Events, db: Store) -> None:
    gate = threading.Event()
    live = session(Agent(lambda ctx: gate.wait(10)))
    turns.submit(live, "first")
    assert turns.submit(live, "second", queued=True) == {"status": "queued"}
    db.failing.add("user")  # the queued prompt's row cannot be written
    gate.set()
    events.wait_for("message.complete")
    finished(live)
    assert len(events.of("message.start")) == 1  # the queued prompt never started
    assert not live.queue and live.turn is None


def test_a_prompt_that_cannot_be_stored_is_refused_and_leaves_no_title(events: Events, db: Store) -> None:
    db.failing.add("user")
    live = session(Agent(lambda ctx: None), title="")
    with pytest.raises(OSError, match="disk full"):
        turns.submit(live, "please name me")
    assert live.title == "" and not live.running and not events.seen


def test_interrupted_turns_and_submission_refs(events: Events, db: Store) -> None:
    gate = threading.Event()
    live = session(Agent(lambda ctx: gate.wait(10) and None))
    turns.submit(live, "first")
    with pytest.raises(RpcError) as busy:
        turns.submit(live, "rewind", truncate_before=0, confirm_truncate=True)
    assert busy.value.message == "session busy"
    # Each submission ref is remembered (a retry gets the first answer), the oldest forgotten first.
    for n in range(turns.MAX_SUBMISSION_REFS + 1):
        assert turns.submit(live, f"q{n}", queued=True, submission_ref=f"ref{n}") == {"status": "queued"}
    assert "ref0" not in live.submissions and len(live.submissions) == turns.MAX_SUBMISSION_REFS
    assert turns.submit(live, "dup", submission_ref="ref5") == {"status": "queued"}
    assert list(live.queue)[-1] == f"q{turns.MAX_SUBMISSION_REFS}"  # the retry queued nothing
    assert turns.interrupt(live)  # stops the turn and clears the queue
    gate.set()
    (complete,) = events.wait_for("message.complete")
    finished(live)
    assert complete["status"] == "interrupted" and not live.queue
    assert not turns.interrupt(live)  # nothing runs now


def test_a_backend_that_reports_a_turn_failure_ends_it_with_the_reason(events: Events, db: Store) -> None:
    def fail(ctx: TurnContext) -> None:
        raise TurnFailed("model said no")

    live = session(Agent(fail))
    turns.submit(live, "go")
    (complete,) = events.wait_for("message.complete")
    finished(live)
    assert complete["text"] == "Error: model said no" and complete["error"] == "model said no"
