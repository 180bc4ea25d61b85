"""How the OpenAI-compatible backend reads a model server's replies, in-process and fast.

A real :class:`OpenAITurn` talks real HTTP + SSE to the fake server (tests/fake_openai.py) on
the test's own thread; what the turn emits is recorded instead of going to the outbox. The
odd shapes some servers send (a choice other than 0, arguments as an object, a tool call
without an index, a refusal) and the error wording that would otherwise only be seen from a
daphne run are checked here. The end-to-end behaviour is in tests/test_openai_backend.py.
"""

from __future__ import annotations

import socket
from types import SimpleNamespace
from typing import Any

import openai
import pytest

try:  # the HTTP library of openai 3.x; releases before it use httpx
    import httpx2 as httpx
except ImportError:  # the older openai releases of requirements-min.txt
    import httpx

from tests.fake_openai import FakeOpenAI
from tests.services import free_port
from ws_gateway.agent import context as context_module
from ws_gateway.agent import openai_backend
from ws_gateway.agent.context import TurnContext, TurnFailed
from ws_gateway.agent.openai_backend import (
    OpenAIBackend,
    OpenAITurn,
    Round,
    ToolCall,
    parse_arguments,
)
from ws_gateway.sessions.live import LiveSession

API_KEY = "sk-unit-7f3a91"


@pytest.fixture(scope="module")
def fake() -> Any:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any] | None]]:
    """What the turn emits, in order (instead of the process-wide outbox)."""
    seen: list[tuple[str, dict[str, Any] | None]] = []
    monkeypatch.setattr(
        context_module, "emit", lambda sid, type_, payload=None: seen.append((type_, payload))
    )
    return seen


def backend(fake: FakeOpenAI | None = None, **options: Any) -> OpenAIBackend:
    base = {"base_url": fake.url + "/v1" if fake else None, "api_key": API_KEY, "model": "fake-model"}
    return OpenAIBackend(**{"max_retries": 0, **base, **options})


def turn(b: OpenAIBackend, prompt: str = "hi", **config: Any) -> OpenAITurn:
    live = LiveSession("rt-unit", "key-unit", owner_id=None, config=dict(config))
    return OpenAITurn(b, b.model, TurnContext(live, prompt, []))


def of_type(seen: list[tuple[str, Any]], type_: str) -> list[Any]:
    return [payload for t, payload in seen if t == type_]


# -- options ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"modle": "x"}, "unknown option(s) for the openai backend: modle"),
        ({"timeout_s": 0}, "timeout_s must be > 0"),
        ({"max_retries": -1}, "max_retries and max_tool_rounds >= 0"),
        ({"max_tool_rounds": -2}, "max_retries and max_tool_rounds >= 0"),
    ],
)
def test_bad_backend_options_are_refused_with_the_reason(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        OpenAIBackend(**options)


def test_empty_options_mean_the_defaults() -> None:
    # An unset environment variable arrives as "": the default, not a crash on float("").
    b = OpenAIBackend(timeout_s="", max_retries=None, max_tool_rounds="", temperature="", api_key="")
    assert (b.timeout_s, b.max_retries, b.max_tool_rounds, b.temperature) == (60.0, 2, 8, None)
    assert b.redact("key no-key stays") == "key no-key stays"  # the placeholder is no secret


def test_a_session_without_a_model_cannot_build_an_agent() -> None:
    b = OpenAIBackend()
    assert not b.configured()
    with pytest.raises(ValueError, match="no model configured"):
        b.build(LiveSession("rt", "k", owner_id=None, model=""))
    # The session's own model wins over the configured one; a backend name does not count as one.
    b = OpenAIBackend(model="m1")
    assert b.build(LiveSession("rt", "k", owner_id=None, model="m2")).model == "m2"
    assert b.build(LiveSession("rt", "k", owner_id=None, model="openai")).model == "m1"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (None, "the default OpenAI endpoint"),
        ("http://h:8000/v1", "http://h:8000/v1"),
        ("https://user:secret@h:8443/v1", "https://h:8443/v1"),
        ("https://user:secret@h/v1", "https://h/v1"),
    ],
)
def test_the_server_url_is_shown_without_credentials(url: str | None, shown: str) -> None:
    b = OpenAIBackend(base_url=url, model="m", api_key="k-12345")
    assert repr(b) == f"OpenAIBackend(base_url={shown!r}, model='m')"
    assert "secret" not in repr(b) and "k-12345" not in repr(b)


def test_the_api_key_is_redacted_from_text() -> None:
    b = OpenAIBackend(api_key=API_KEY)
    assert b.redact(f"bad key {API_KEY}!") == "bad key ***!"
    assert OpenAIBackend(api_key="abc").redact("abc") == "abc"  # too short to tell from words


# -- the model list -------------------------------------------------------------------


def test_model_list_comes_from_the_server_and_is_cached(fake: FakeOpenAI) -> None:
    b = backend(fake)
    before = len([r for r in fake.requests if r["path"].endswith("/models")])
    assert b.list_models() == ["fake-model"]
    assert b.list_models() == ["fake-model"]
    after = len([r for r in fake.requests if r["path"].endswith("/models")])
    assert after == before + 1  # the second answer came from the cache


def test_model_list_of_a_silent_server_is_the_configured_model() -> None:
    port = free_port()  # nothing listens there
    assert backend(None, base_url=f"http://127.0.0.1:{port}/v1", model="mine").list_models() == ["mine"]
    assert backend(None, base_url=f"http://127.0.0.1:{port}/v2", model="").list_models() == []


# -- requests -------------------------------------------------------------------------


def test_personality_and_reasoning_effort_reach_the_request(fake: FakeOpenAI, emitted: list[Any]) -> None:
    b = backend(fake, system_prompt="Be brief.")
    t = turn(b, "say: styled answer", personality="pirate", reasoning_effort="high")
    t.run()
    (body,) = fake.bodies_for("say: styled answer")
    assert body["messages"][0] == {"role": "system", "content": "Be brief.\n\nAnswer in this style: pirate"}
    assert body["reasoning_effort"] == "high"
    assert "temperature" not in body
    assert "".join(p["text"] for p in of_type(emitted, "message.delta")) == "styled answer"


def test_no_tools_are_offered_when_all_are_disabled(fake: FakeOpenAI, emitted: list[Any]) -> None:
    from ws_gateway.agent import tools

    b = backend(fake)
    t = turn(b, "say: no tools here", disabled_tools=sorted(tools.TOOLS))
    t.run()
    (body,) = fake.bodies_for("say: no tools here")
    assert "tools" not in body and "reasoning_effort" not in body


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ("error: 401", "HTTP 401: Incorrect API key provided: *** (check OPENAI_API_KEY)"),
        ("error: 404", "HTTP 404: fake failure 404 (check OPENAI_BASE_URL - usually ending in /v1"),
        ("error: 400", "HTTP 400: fake failure 400"),
        ("truncate", "stream ended after 3 chunks before the answer was finished (no finish_reason)"),
        ("drop", "the model server's stream broke off after 4 chunks"),
    ],
)
def test_a_failed_request_ends_the_turn_with_a_readable_reason(
    fake: FakeOpenAI, emitted: list[Any], script: str, reason: str
) -> None:
    with pytest.raises(TurnFailed) as failed:
        turn(backend(fake), script).run()
    assert reason in str(failed.value)
    assert API_KEY not in str(failed.value)


def test_a_stalled_stream_times_out_with_the_servers_address(fake: FakeOpenAI, emitted: list[Any]) -> None:
    with pytest.raises(TurnFailed) as failed:
        turn(backend(fake, timeout_s=1.0), "stall").run()
    assert str(failed.value) == (
        f"the model server stopped sending for 1 s in the middle of its answer ({fake.url}/v1)"
    )


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as listener:  # accepts connections (the backlog), never reads nor answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        with pytest.raises(TurnFailed) as failed:
            turn(backend(None, base_url=url, timeout_s=0.3), "hi").run()
    assert str(failed.value) == f"the model server at {url} did not answer within 0.3 s"


def test_an_unreachable_server_names_the_cause() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(TurnFailed) as failed:
        turn(backend(None, base_url=url), "hi").run()
    assert str(failed.value).startswith(f"could not reach the model server at {url}: ")
    assert str(failed.value) != f"could not reach the model server at {url}: "


def test_any_other_client_error_fails_the_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    b = OpenAIBackend(model="m", api_key=API_KEY)

    class Refusing:
        class chat:  # the openai client's attribute names
            class completions:
                @staticmethod
                def create(**kwargs: Any) -> Any:
                    raise openai.OpenAIError(f"no route for {API_KEY}")

    monkeypatch.setattr(b, "client", lambda: Refusing)
    with pytest.raises(TurnFailed, match=r"^the model request failed: no route for \*\*\*$"):
        turn(b, "hi").run()


def test_an_interrupt_between_rounds_stops_before_the_tools_run(fake: FakeOpenAI, emitted: list[Any]) -> None:
    b = backend(fake)
    t = turn(b, 'tool: todo {"todos": []}')
    real_stream = t.stream

    def stream_then_interrupt(round_no: int) -> Round:
        rnd = real_stream(round_no)
        t.ctx.interrupt_event.set()
        return rnd

    t.stream = stream_then_interrupt  # type: ignore[method-assign]
    t.run()
    assert of_type(emitted, "tool.generating") == [{"name": "todo"}]
    assert not of_type(emitted, "tool.start")  # the call never ran
    assert len(fake.bodies_for('tool: todo {"todos": []}')) == 1


@pytest.mark.django_db
def test_an_interrupt_during_a_tool_round_skips_the_remaining_calls(
    fake: FakeOpenAI, emitted: list[Any]
) -> None:
    b = backend(fake)
    t = turn(b, "two calls")
    calls = [ToolCall(0, "c1", "nosuchtool", "{}"), ToolCall(1, "c2", "nosuchtool", "{}")]
    real_start = t.ctx.tool_start

    def start_then_interrupt(*args: Any, **kwargs: Any) -> str:
        t.ctx.interrupt_event.set()
        return real_start(*args, **kwargs)

    t.ctx.tool_start = start_then_interrupt  # type: ignore[method-assign]
    t.run_calls("", calls)
    assert [p["name"] for p in of_type(emitted, "tool.start")] == ["nosuchtool"]  # the second never ran
    assert [m["role"] for m in t.messages[-2:]] == ["assistant", "tool"]
    assert t.messages[-1]["content"] == "error: unknown tool nosuchtool"


# -- the chunks of a stream --------------------------------------------------------------


def chunk(*choices: Any, usage: Any = None) -> Any:
    return SimpleNamespace(choices=list(choices), usage=usage)


def choice(index: int = 0, finish: str | None = None, **delta: Any) -> Any:
    fields = {"content": None, "tool_calls": None, "refusal": None, **delta}
    extra = fields.pop("extra", {})
    return SimpleNamespace(
        index=index,
        finish_reason=finish,
        delta=SimpleNamespace(model_extra=extra, **fields),
    )


def fragment(index: Any, id: str = "", name: str | None = None, arguments: Any = None) -> Any:
    function = None if name is None and arguments is None else SimpleNamespace(name=name, arguments=arguments)
    return SimpleNamespace(index=index, id=id, function=function)


def test_only_the_first_choice_counts(emitted: list[Any]) -> None:
    t, rnd = turn(OpenAIBackend(model="m")), Round()
    t.apply(rnd, chunk(choice(1, content="other"), choice(0, content="mine")))
    t.apply(rnd, chunk(SimpleNamespace(index=0, finish_reason="stop", delta=None)))
    assert rnd.text == ["mine"] and rnd.finish_reason == "stop"
    assert of_type(emitted, "message.delta") == [{"text": "mine"}]


def test_a_refusal_is_shown_as_text_and_reasoning_as_reasoning(emitted: list[Any]) -> None:
    t, rnd = turn(OpenAIBackend(model="m")), Round()
    t.apply(rnd, chunk(choice(refusal="I cannot do that", extra={"reasoning": "policy"})))
    t.apply(rnd, chunk(choice(extra={"reasoning_content": {"not": "text"}})))  # not a string: ignored
    assert of_type(emitted, "reasoning.delta") == [{"text": "policy"}]
    assert of_type(emitted, "message.delta") == [{"text": "I cannot do that"}]


def test_a_second_rounds_text_starts_a_new_paragraph(emitted: list[Any]) -> None:
    t = turn(OpenAIBackend(model="m"))
    t.apply(Round(), chunk(choice(content="first round")))
    t.apply(Round(), chunk(choice(content="second")))
    assert [p["text"] for p in of_type(emitted, "message.delta")] == ["first round", "\n\n", "second"]


def test_tool_call_fragments_are_put_together(emitted: list[Any]) -> None:
    t, rnd = turn(OpenAIBackend(model="m")), Round()
    for frag in (
        fragment(0, "call_a", "ter"),
        fragment(0, "", "minal", '{"command"'),
        fragment(0, "call_other", "terminal", None),  # a repeated full name and a late id: ignored
        fragment(0, "", None, ': "ls"}'),
        fragment(None, "call_b", "todo", {"todos": []}),  # no index: the next one; object arguments
        fragment(1, ""),  # a fragment without a function changes nothing
    ):
        t.add_fragment(rnd, frag)
    assert rnd.calls == {
        0: ToolCall(0, "call_a", "terminal", '{"command": "ls"}'),
        1: ToolCall(1, "call_b", "todo", '{"todos": []}'),
    }
    assert of_type(emitted, "tool.generating") == [{"name": "ter"}, {"name": "todo"}]


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        (SimpleNamespace(reasoning_tokens=7), (3, 5, 7)),
        (None, (3, 5, 0)),
    ],
)
def test_usage_adds_to_the_sessions_totals(
    emitted: list[Any], details: Any, expected: tuple[int, ...]
) -> None:
    t = turn(OpenAIBackend(model="m"))
    usage = SimpleNamespace(prompt_tokens=3, completion_tokens=5, completion_tokens_details=details)
    t.report_usage(usage)
    t.report_usage(SimpleNamespace(prompt_tokens=None, completion_tokens=None))
    live = t.ctx.session
    assert (live.usage["input"], live.usage["output"], live.usage["reasoning"]) == expected
    assert len(of_type(emitted, "session.usage")) == 2


def status_error(status: int, body: Any) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://model/v1/chat/completions")
    response = httpx.Response(status, request=request)
    return openai.APIStatusError(f"Error code: {status}", response=response, body=body)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"message": "model   overloaded\n now"}, "model overloaded now"),
        ({"error": "plain error field"}, "plain error field"),
        ({"code": 7}, '{"code": 7}'),
        ("<html>Bad gateway</html>", "<html>Bad gateway</html>"),
        ("   ", "Error code: 502"),
        (None, "Error code: 502"),
        ("x" * 2000, "x" * openai_backend.DETAIL_CHARS),
    ],
)
def test_an_http_error_is_reported_with_the_servers_words(body: Any, detail: str) -> None:
    t = turn(OpenAIBackend(model="m"))
    assert t.status_message(status_error(502, body)) == f"the model server answered HTTP 502: {detail}"


def test_an_error_event_in_the_middle_of_a_stream_is_reported() -> None:
    t = turn(OpenAIBackend(model="m"))
    exc = openai.APIError("overloaded", httpx.Request("POST", "http://model/"), body=None)
    assert t.stream_error(exc, Round()) == "the model server reported an error mid-stream: overloaded"


class BrokenStream:
    """A stream whose transport fails after one chunk, as httpx errors escape older openai releases."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.response = SimpleNamespace(request=httpx.Request("POST", "http://model/"))

    def __iter__(self) -> Any:
        yield "first"
        raise self.error


@pytest.mark.parametrize(
    ("error", "wrapped"),
    [
        (httpx.ReadTimeout("slow"), openai.APITimeoutError),
        (httpx.RemoteProtocolError("peer closed"), openai.APIConnectionError),
        (openai.APIError("as is", httpx.Request("GET", "http://m/"), body=None), openai.APIError),
    ],
)
def test_transport_errors_inside_a_stream_become_api_errors(error: Exception, wrapped: type) -> None:
    chunks = openai_backend._chunks(BrokenStream(error))
    assert next(chunks) == "first"
    with pytest.raises(wrapped) as raised:
        next(chunks)
    assert type(raised.value) is wrapped
    assert raised.value is error or raised.value.__cause__ is error


def test_a_stream_without_a_socket_is_not_watched() -> None:
    ctx = TurnContext(LiveSession("rt", "k", owner_id=None), "hi", [])
    assert openai_backend.watchdog.watch(ctx, SimpleNamespace(extensions={})) is None
    assert openai_backend.watchdog.watch(ctx, SimpleNamespace()) is None
    openai_backend.watchdog.unwatch(None)  # nothing to forget: no error


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("", ({}, "")),
        ("  ", ({}, "")),
        ('{"a": 1}', ({"a": 1}, "")),
        ("[1]", (None, "expected an object, got list")),
        ('"s"', (None, "expected an object, got str")),
    ],
)
def test_tool_arguments_must_be_an_object(raw: str, parsed: tuple[Any, str]) -> None:
    assert parse_arguments(raw) == parsed


def test_summary_failures_do_not_show_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    b = OpenAIBackend(model="m", api_key=API_KEY, base_url=url, max_retries=0)
    agent = b.build(LiveSession("rt", "k", owner_id=None))
    with pytest.raises(RuntimeError) as failed:
        agent.summarize([{"role": "user", "text": "hello"}], focus="x")
    assert API_KEY not in str(failed.value)
