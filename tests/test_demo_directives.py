"""The demo agent's directives, in-process: bad arguments end the turn with the usage line,
and what each directive says and emits. A real TurnContext; its events are recorded instead of
going to the outbox, and pending requests are answered from the test through the real registry."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from ws_gateway.agent import context as context_module
from ws_gateway.agent import demo
from ws_gateway.agent import pending as pending_module
from ws_gateway.agent.context import TurnContext, TurnFailed
from ws_gateway.agent.demo import DemoAgent, DemoTurn
from ws_gateway.agent.pending import pending
from ws_gateway.sessions.live import LiveSession


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def record(sid: str, type_: str, payload: Any = None, **kw: Any) -> None:
        seen.append((type_, payload))

    monkeypatch.setattr(context_module, "emit", record)
    monkeypatch.setattr(pending_module, "emit", record)
    return seen


def new_ctx(prompt: str = "", **config: Any) -> TurnContext:
    return TurnContext(LiveSession("rt-demo", "key-demo", owner_id=None, config=dict(config)), prompt, [])


def run(prompt: str, **config: Any) -> TurnContext:
    ctx = new_ctx(prompt, **config)
    DemoAgent().run_turn(ctx)
    return ctx


@pytest.mark.parametrize(
    ("prompt", "reason"),
    [
        ("!stream x", "usage: !stream N [DELAY_MS] (integers 0..1000000 0..60000)"),
        ("!stream", "usage: !stream N [DELAY_MS] (integers 0..1000000 0..60000)"),
        ("!stream 1 2 3", "usage: !stream N [DELAY_MS] (integers 0..1000000 0..60000)"),
        ("!stream 1000001", "usage: !stream N [DELAY_MS]: 1000001 is out of range 0..1000000"),
        ("!stream 5 -1", "usage: !stream N [DELAY_MS]: -1 is out of range 0..60000"),
        ("!sleep 3600001", "usage: !sleep MS: 3600001 is out of range 0..3600000"),
        ("!usage 1", "usage: !usage IN OUT (integers 0..1000000000000 0..1000000000000)"),
        ("!title    ", "usage: !title TITLE"),
        ("!run", "usage: !run COMMAND"),
        ("!bg", "usage: !bg COMMAND"),
        ("!approve", "usage: !approve COMMAND"),
        ("!clarify | yes | no", "usage: !clarify QUESTION | CHOICE | CHOICE"),
        ("!secret", "usage: !secret ENV_VAR PROMPT"),
        ("!delegate no separator", "usage: !delegate GOAL :: CHILD PROMPT"),
        ("!delegate  :: prompt only", "usage: !delegate GOAL :: CHILD PROMPT"),
        ("!todo ; ;", "usage: !todo A; B; C"),
        ("!todo-done 1", "!todo-done: no item 1"),
        ("!fail", "failed"),
        ("!fail the reason", "the reason"),
        ("!nope", "unknown directive: !nope (known: !approve, !bg"),
    ],
)
def test_bad_directive_arguments_end_the_turn_with_the_usage(
    emitted: list[Any], prompt: str, reason: str
) -> None:
    with pytest.raises(TurnFailed) as failed:
        run(prompt)
    assert str(failed.value).startswith(reason)
    assert not [t for t, _ in emitted if t.startswith("tool.")]  # nothing ran


def test_zero_tokens_stream_nothing_and_parts_are_joined_by_newlines(emitted: list[Any]) -> None:
    ctx = run("!stream 0\nhello there\n!stream 2")
    assert ctx.text == "You said: hello there\nt1 t2"
    # Usage counts the prompt's and the reply's words when no !usage reported it.
    assert ctx.session.usage == {"input": 6, "output": 6, "reasoning": 0}


def test_explicit_usage_replaces_the_word_count(emitted: list[Any]) -> None:
    ctx = run("!usage 11 22\nhi")
    assert ctx.session.usage == {"input": 11, "output": 22, "reasoning": 0}


def test_an_interrupted_turn_stops_streaming_and_runs_no_further_directive(emitted: list[Any]) -> None:
    ctx = new_ctx()
    ctx.interrupt_event.set()
    turn = DemoTurn(ctx)
    turn.say("not said")
    assert ctx.text == ""
    ctx2 = new_ctx("!stream 2\n!fail never reached")
    calls: list[str] = []

    def stream_then_interrupt(t: DemoTurn, arg: str) -> None:
        calls.append(arg)
        demo.d_stream(t, arg)
        t.ctx.interrupt_event.set()

    agent = DemoAgent(directives={**demo.DIRECTIVES, "stream": stream_then_interrupt})
    agent.run_turn(ctx2)  # !fail would raise: the interrupt stopped the turn before it
    assert calls == ["2"] and ctx2.text == "t1 t2"


def test_steering_is_acknowledged_after_the_directive(emitted: list[Any]) -> None:
    ctx = new_ctx("one\ntwo")
    ctx.steer("go left")
    DemoAgent().run_turn(ctx)
    assert ctx.text == "You said: one two\nSteered: go left"


def test_attachments_are_named_first(emitted: list[Any]) -> None:
    ctx = new_ctx("look")
    ctx.attachments = [{"name": "a.png", "mime": "image/png", "data": b"x"}, {"name": "b.png"}]
    DemoAgent().run_turn(ctx)
    assert ctx.text == "Attached: a.png, b.png\nYou said: look"


def answer_next(ctx: TurnContext, kind: str, answer: Any) -> threading.Thread:
    """Answer the session's next ``kind`` request (the process-wide registry) from another thread."""

    def answer_it() -> None:
        for _ in range(2000):  # bounded wait for the turn to ask
            open_ = pending.for_session(ctx.session, kind)
            if open_:
                pending.resolve(open_[0].request_id, answer)
                return
            threading.Event().wait(0.005)  # polling interval of a bounded wait

    thread = threading.Thread(target=answer_it)
    thread.start()
    return thread


@pytest.mark.parametrize(("answer", "said"), [("hunter2", "sudo: received"), ("", "sudo: declined")])
def test_sudo_says_whether_a_password_came(emitted: list[Any], answer: str, said: str) -> None:
    ctx = new_ctx("!sudo")
    thread = answer_next(ctx, "sudo", answer)
    DemoAgent().run_turn(ctx)
    thread.join(10)
    assert ctx.text == said
    assert "hunter2" not in repr(emitted)  # the password is never emitted


@pytest.mark.parametrize(
    ("answer", "said", "env"), [("s3cret", "stored", {"API": "s3cret"}), ("", "skipped", {})]
)
def test_a_secret_goes_to_the_sessions_environment(
    emitted: list[Any], answer: str, said: str, env: dict[str, str]
) -> None:
    ctx = new_ctx("!secret API the key please")
    thread = answer_next(ctx, "secret", answer)
    DemoAgent().run_turn(ctx)
    thread.join(10)
    assert ctx.text == f"secret: {said}"
    assert ctx.session.secret_env == env
    (request,) = [p for t, p in emitted if t == "secret.request"]
    assert request["env_var"] == "API" and request["prompt"] == "the key please"


def test_a_denied_approval_runs_nothing(emitted: list[Any]) -> None:
    ctx = new_ctx("!approve echo never-run")
    thread = answer_next(ctx, "approval", {"choice": "deny"})
    DemoAgent().run_turn(ctx)
    thread.join(10)
    assert ctx.text == "Denied: echo never-run"
    assert not [t for t, _ in emitted if t.startswith("tool.")]


def test_an_approval_answered_with_an_unoffered_choice_is_a_denial(emitted: list[Any]) -> None:
    ctx = new_ctx("!approve echo never-run")
    thread = answer_next(ctx, "approval", {"choice": "forever-and-ever"})
    DemoAgent().run_turn(ctx)
    thread.join(10)
    assert ctx.text == "Denied: echo never-run"
