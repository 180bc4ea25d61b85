"""The OpenAI-compatible backend, end to end: a real daphne gateway talking HTTP + SSE to a fake server.

Every test drives the gateway over its WebSocket and the gateway drives the
fake chat-completions server (tests/fake_openai.py) through the ``openai``
package, so both sides of the backend go through real sockets.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.fake_openai import FakeOpenAI
from tests.services import free_port
from ws_gateway.testing import GatewayClient

pytestmark = pytest.mark.db

API_KEY = "test-key-5e1f0c9a"
MODEL = "fake-model"
TURN_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def fake() -> Any:
    with FakeOpenAI() as server:
        yield server


def options(fake: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return {"base_url": fake.url + "/v1", "api_key": API_KEY, "model": MODEL, "max_retries": 0, **extra}


@pytest.fixture(scope="module")
def gw(gateways: Any, fake: FakeOpenAI) -> Any:
    """A gateway whose agent backend is the fake server."""
    return gateways.new("memory", AGENT="openai", AGENT_OPTIONS=options(fake))


@pytest.fixture(scope="module")
def strict_gw(gateways: Any, fake: FakeOpenAI) -> Any:
    """The same with a short read timeout, two tool rounds, a system prompt and a temperature."""
    return gateways.new(
        "memory",
        AGENT="openai",
        AGENT_OPTIONS=options(
            fake, timeout_s=0.5, max_tool_rounds=2, system_prompt="You are a test.", temperature=0.25
        ),
    )


async def open_session(client: GatewayClient) -> str:
    created = await client.call("session.create")
    sid = created["session_id"]
    info = await client.event("session.info", sid)
    assert info["payload"]["model"] == MODEL
    assert "terminal" in info["payload"]["tools"]["openai"]
    return sid


async def run_turn(client: GatewayClient, sid: str, text: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Submit ``text``; return the session's events of that turn (up to message.complete) and its payload."""
    after = len(client.events)
    assert await client.call("prompt.submit", {"session_id": sid, "text": text}) == {"status": "streaming"}
    complete = await client.event("message.complete", sid, after=after, timeout=TURN_TIMEOUT)
    end = client.events.index(complete) + 1
    await client.event("session.info", sid, after=end)  # the turn is over: the next prompt starts one
    return [e for e in client.events[after:end] if e.get("session_id") == sid], complete["payload"]


def of_type(events: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [e["payload"] for e in events if e["type"] == type_]


def streamed(events: list[dict[str, Any]], type_: str = "message.delta") -> str:
    return "".join(p["text"] for p in of_type(events, type_))


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


async def test_streamed_text_arrives_as_deltas(gw: Any, fake: FakeOpenAI) -> None:
    async with GatewayClient.connect(gw.url) as client:
        sid = await open_session(client)
        events, complete = await run_turn(client, sid, "say: hello world")
        assert types(events).index("message.start") < types(events).index("message.delta")
        assert of_type(events, "message.delta")
        assert streamed(events) == "hello world"
        assert complete["status"] == "complete"
        assert complete["text"] == "hello world"
        assert "error" not in complete

    (request,) = fake.bodies_for("say: hello world")
    assert request["model"] == MODEL
    assert request["stream"] is True
    assert request["stream_options"] == {"include_usage": True}
    assert "terminal" in [t["function"]["name"] for t in request["tools"]]
    assert request["messages"] == [{"role": "user", "content": "say: hello world"}]
    (headers,) = [r["headers"] for r in fake.requests if r["body"] is request]
    assert headers["authorization"] == f"Bearer {API_KEY}"


async def test_usage_is_reported(gw: Any) -> None:
    async with GatewayClient.connect(gw.url) as client:
        sid = await open_session(client)
        events, complete = await run_turn(client, sid, "say: hello world")
        (usage_event,) = of_type(events, "session.usage")
        # The fake counts prompt words (3) and content chunks (2).
        assert usage_event["usage"]["input"] == 3
        assert usage_event["usage"]["output"] == 2
        assert complete["usage"]["input"] == 3
        assert complete["usage"]["output"] == 2
        assert complete["usage"]["total"] == 5
        assert types(events).index("session.usage") < types(events).index("message.complete")


@pytest.mark.parametrize("script", ["think: deep thought", "reason: deep thought"])
async def test_reasoning_arrives_as_reasoning_deltas(gw: Any, script: str) -> None:
    async with GatewayClient.connect(gw.url) as client:
        sid = await open_session(client)
        events, complete = await run_turn(client, sid, script)
        assert streamed(events, "reasoning.delta") == "deep thought"
        assert types(events).index("reasoning.delta") < types(events).index("message.delta")
        assert complete["status"] == "complete"
        assert complete["text"] == "done"
        assert complete["reasoning"] == "deep thought"


async def test_tool_call_round(gw: Any, fake: FakeOpenAI) -> None:
    script = "tool: terminal echo hi"
    async with GatewayClient.connect(gw.url) as client:
        sid = await open_session(client)
        events, complete = await run_turn(client, sid, script)
        order = types(events)
        assert order.index("tool.generating") < order.index("tool.start") < order.index("tool.complete")
        assert order.index("tool.complete") < order.index("message.delta")
        (generating,) = of_type(events, "tool.generating")
        assert generating == {"name": "terminal"}
        (start,) = of_type(events, "tool.start")
        assert start["name"] == "terminal"
        assert start["args"] == {"command": "echo hi"}
        (done,) = of_type(events, "tool.complete")
        assert done["tool_id"] == start["tool_id"]
        assert done["result"] == "exit 0\nhi\n"
        assert complete["status"] == "complete"
        assert complete["text"] == "Tool terminal returned: exit 0\nhi"
        assert streamed(events) == complete["text"]

        first, second = fake.bodies_for(script)
        assert first["messages"] == [{"role": "user", "content": script}]
        assistant, tool = second["messages"][1:]
        (call,) = assistant["tool_calls"]
        assert assistant["role"] == "assistant"
        assert call["function"] == {"name": "terminal", "arguments": '{"command": "echo hi"}'}
        assert tool == {"role": "tool", "tool_call_id": call["id"], "content": "exit 0\nhi\n"}

        # The next turn sends the history, the tool exchange included.
        history = await client.call("session.history", {"session_id": sid})
        assert [m["role"] for m in history["messages"]] == ["user", "tool", "assistant"]
        _, complete = await run_turn(client, sid, "say: next")
        assert complete["text"] == "next"
        (request,) = fake.bodies_for("say: next")
        messages = request["messages"]
        assert messages[0] == {"role": "user", "content": script}
        assert messages[1]["role"] == "assistant"
        assert messages[1]["tool_calls"][0]["function"]["name"] == "terminal"
        assert messages[2]["role"] == "tool"
        assert messages[2]["tool_call_id"] == messages[1]["tool_calls"][0]["id"]
        assert messages[2]["content"] == "exit 0\nhi\n"
        assert messages[3:] == [
            {"role": "assistant", "content": "Tool terminal returned: exit 0\nhi"},
            {"role": "user", "content": "say: next"},
        ]


async def test_history_is_sent(gw: Any, fake: FakeOpenAI) -> None:
    async with GatewayClient.connect(gw.url) as client:
        sid = await open_session(client)
        await run_turn(client, sid, "say: first answer")
        _, complete = await run_turn(client, sid, "say: second answer")
        assert complete["text"] == "second answer"
    (request,) = fake.bodies_for("say: second answer")
    assert request["messages"] == [
        {"role": "user", "content": "say: first answer"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "say: second answer"},
    ]


async def test_parallel_tool_calls(gw: Any, fake: FakeOpenAI) -> None:
    script = "tools: echo alpha ;; echo beta"
    async with GatewayClient.connect(gw.url) as client:
        sid = await open_session(client)
        events, complete = await run_turn(client, sid, script)
        assert [p["args"] for p in of_type(events, "tool.start")] == [
            {"command": "echo alpha"},
            {"command": "echo beta"},
        ]
        assert [p["result"] for p in of_type(events, "tool.complete")] == [
            "exit 0\nalpha\n",
            "exit 0\nbeta\n",
        ]
        assert complete["status"] == "complete"
        assert complete["text"] == "Tool results: exit 0\nalpha | exit 0\nbeta"
    _, second = fake.bodies_for(script)
    ids = [c["id"] for c in second["messages"][1]["tool_calls"]]
    assert len(set(ids)) == 2
    assert [m["tool_call_id"] for m in second["messages"][2:]] == ids


async def test_bad_tool_arguments_become_a_tool_error(gw: Any, fake: FakeOpenAI) -> None:
    async with GatewayClient.connect(gw.url) as client:
        sid = await open_session(client)
        events, complete = await run_turn(client, sid, "badjson")
        (done,) = of_type(events, "tool.complete")
        assert done["name"] == "terminal"
        assert done["result"].startswith("error: the arguments of terminal are not a valid JSON object")
        assert complete["status"] == "complete"
        assert complete["text"].startswith("Tool results: error: the arguments")
    _, second = fake.bodies_for("badjson")
    assert second["messages"][-1]["content"] == done["result"]


async def test_http_500_ends_the_turn_with_an_error(gw: Any, fake: FakeOpenAI) -> None:
    async with GatewayClient.connect(gw.url) as client:
        sid = await open_session(client)
        events, complete = await run_turn(client, sid, "error: 500")
        assert complete["status"] == "error"
        assert "HTTP 500" in complete["error"]
        assert "fake failure 500" in complete["error"]
        # The reason is the whole visible reply (hermes clients render only the text).
        assert complete["text"] == f"Error: {complete['error']}"
        assert streamed(events) == complete["text"]
        # The session stays usable.
        _, complete = await run_turn(client, sid, "say: still here")
        assert complete["status"] == "complete"
        assert complete["text"] == "still here"
    assert len(fake.bodies_for("error: 500")) == 1  # max_retries 0


async def test_auth_error_does_not_leak_the_key(gw: Any) -> None:
    async with GatewayClient.connect(gw.url) as client:
        sid = await open_session(client)
        _, complete = await run_turn(client, sid, "error: 401")  # the fake echoes the key
        assert complete["status"] == "error"
        assert "HTTP 401" in complete["error"]
        assert API_KEY not in complete["error"]
    assert "HTTP 401" in gw.log_text()
    assert API_KEY not in gw.log_text()


async def test_dropped_stream_ends_with_an_error(gw: Any) -> None:
    async with GatewayClient.connect(gw.url) as client:
        sid = await open_session(client)
        events, complete = await run_turn(client, sid, "drop")
        assert complete["status"] == "error"
        assert "broke off" in complete["error"]
        # What was said is kept, then the reason.
        assert complete["text"] == f"partial answer then\nError: {complete['error']}"
        assert streamed(events) == complete["text"]

        _, complete = await run_turn(client, sid, "truncate")
        assert complete["status"] == "error"
        assert "no finish_reason" in complete["error"]


async def test_interrupt_closes_the_stream(gw: Any, fake: FakeOpenAI) -> None:
    script = "slow: 500"
    async with GatewayClient.connect(gw.url) as client:
        sid = await open_session(client)
        after = len(client.events)
        await client.call("prompt.submit", {"session_id": sid, "text": script})
        await client.event("message.delta", sid, after=after, timeout=TURN_TIMEOUT)
        assert await client.call("session.interrupt", {"session_id": sid}) == {"status": "interrupted"}
        complete = await client.event("message.complete", sid, after=after, timeout=TURN_TIMEOUT)
        assert complete["payload"]["status"] == "interrupted"
        full = " ".join(f"t{i}" for i in range(1, 501))
        text = complete["payload"]["text"]
        assert text and full.startswith(text) and text != full
    # The backend closed the HTTP stream: the fake saw its client go away mid-answer.
    await asyncio.to_thread(fake.wait_until, lambda: script in fake.disconnects, TURN_TIMEOUT)


async def test_interrupt_while_the_server_is_silent(gw: Any) -> None:
    """No chunk arrives after ``waiting`` (read timeout 60 s): the interrupt still ends the turn."""
    async with GatewayClient.connect(gw.url) as client:
        sid = await open_session(client)
        after = len(client.events)
        await client.call("prompt.submit", {"session_id": sid, "text": "stall"})
        await client.event("message.delta", sid, after=after, timeout=TURN_TIMEOUT)
        assert await client.call("session.interrupt", {"session_id": sid}) == {"status": "interrupted"}
        complete = await client.event("message.complete", sid, after=after, timeout=TURN_TIMEOUT)
        assert complete["payload"]["status"] == "interrupted"
        assert complete["payload"]["text"] == "waiting"


async def test_steer_joins_the_conversation(gw: Any, fake: FakeOpenAI) -> None:
    try:
        async with GatewayClient.connect(gw.url) as client:
            sid = await open_session(client)
            after = len(client.events)
            await client.call("prompt.submit", {"session_id": sid, "text": "gate: steer-1"})
            await client.event("message.delta", sid, after=after, timeout=TURN_TIMEOUT)
            steered = await client.call("session.steer", {"session_id": sid, "text": "say: steered"})
            assert steered == {"status": "steered"}
            fake.release("steer-1")
            complete = await client.event("message.complete", sid, after=after, timeout=TURN_TIMEOUT)
            assert complete["payload"]["status"] == "complete"
            assert complete["payload"]["text"] == "before after\n\nsteered"
    finally:
        fake.release("steer-1")
    (request,) = fake.bodies_for("say: steered")
    assert request["messages"] == [
        {"role": "user", "content": "gate: steer-1"},
        {"role": "assistant", "content": "before after"},
        {"role": "user", "content": "say: steered"},
    ]


async def test_options_reach_the_server(strict_gw: Any, fake: FakeOpenAI) -> None:
    async with GatewayClient.connect(strict_gw.url) as client:
        sid = await open_session(client)
        _, complete = await run_turn(client, sid, "say: with options")
        assert complete["text"] == "with options"
    (request,) = fake.bodies_for("say: with options")
    assert request["temperature"] == 0.25
    assert request["messages"] == [
        {"role": "system", "content": "You are a test."},
        {"role": "user", "content": "say: with options"},
    ]


async def test_too_many_tool_rounds_fail_the_turn(strict_gw: Any, fake: FakeOpenAI) -> None:
    async with GatewayClient.connect(strict_gw.url) as client:
        sid = await open_session(client)
        events, complete = await run_turn(client, sid, "loop")
        assert len(of_type(events, "tool.complete")) == 2
        assert complete["status"] == "error"
        assert "max_tool_rounds=2" in complete["error"]
    assert len(fake.bodies_for("loop")) == 3


async def test_stalled_stream_times_out(strict_gw: Any) -> None:
    async with GatewayClient.connect(strict_gw.url) as client:
        sid = await open_session(client)
        _, complete = await run_turn(client, sid, "stall")
        assert complete["status"] == "error"
        assert "stopped sending for 0.5 s" in complete["error"]
        assert complete["text"] == f"waiting\nError: {complete['error']}"


async def test_unreachable_server_ends_the_turn_with_an_error(gateways: Any) -> None:
    base_url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    gw = gateways.new(
        "memory",
        AGENT="openai",
        AGENT_OPTIONS={"base_url": base_url, "api_key": API_KEY, "model": MODEL, "max_retries": 0},
    )
    async with GatewayClient.connect(gw.url) as client:
        sid = await open_session(client)
        _, complete = await run_turn(client, sid, "say: anyone?")
        assert complete["status"] == "error"
        assert f"could not reach the model server at {base_url}" in complete["error"]
        assert "refused" in complete["error"].lower()
    assert API_KEY not in gw.log_text()


async def test_api_key_never_logged(gw: Any, strict_gw: Any) -> None:
    async with GatewayClient.connect(gw.url) as client:
        sid = await open_session(client)
        await run_turn(client, sid, "say: log check")
        await run_turn(client, sid, "error: 401")
    assert "openai turn failed" in gw.log_text()
    for gateway in (gw, strict_gw):
        assert API_KEY not in gateway.log_text()


async def submit_and_wait(
    client: GatewayClient, sid: str, text: str, event: str
) -> tuple[int, dict[str, Any]]:
    """Submit ``text`` and wait for the first ``event`` of the turn (a person is asked something)."""
    after = len(client.events)
    assert await client.call("prompt.submit", {"session_id": sid, "text": text}) == {"status": "streaming"}
    return after, (await client.event(event, sid, after=after, timeout=TURN_TIMEOUT))["payload"]


async def finish(client: GatewayClient, sid: str, after: int) -> dict[str, Any]:
    complete = await client.event("message.complete", sid, after=after, timeout=TURN_TIMEOUT)
    return complete["payload"]


async def test_todo_tool_updates_the_list(gw: Any) -> None:
    todos = [{"content": "plan", "status": "in_progress"}, {"content": "ship", "status": "pending"}]
    script = "tool: todo " + json.dumps({"todos": todos})
    async with GatewayClient.connect(gw.url) as client:
        sid = await open_session(client)
        events, complete = await run_turn(client, sid, script)
        (update,) = of_type(events, "todo.updated")
        assert [(t["content"], t["status"]) for t in update["todos"]] == [
            ("plan", "in_progress"),
            ("ship", "pending"),
        ]
        assert complete["status"] == "complete"
        snapshot = await client.call("session.activate", {"session_id": sid})
        assert snapshot["todo_state"]["revision"] == update["revision"]


async def test_clarify_tool_asks_the_user(gw: Any, fake: FakeOpenAI) -> None:
    script = 'tool: clarify {"question": "Which branch?", "choices": ["main", "dev"]}'
    async with GatewayClient.connect(gw.url) as client:
        sid = await open_session(client)
        after, request = await submit_and_wait(client, sid, script, "clarify.request")
        assert request["question"] == "Which branch?" and request["choices"] == ["main", "dev"]
        await client.call("clarify.respond", {"request_id": request["request_id"], "answer": "dev"})
        complete = await finish(client, sid, after)
        assert complete["text"] == "Tool clarify returned: dev"
    _, second = fake.bodies_for(script)
    assert second["messages"][-1]["content"] == "dev"


async def test_dangerous_terminal_call_needs_approval(gw: Any, tmp_path: Any) -> None:
    target = tmp_path / "precious"
    target.mkdir()
    script = f"tool: terminal rm -rf {target}"
    async with GatewayClient.connect(gw.url) as client:
        sid = await open_session(client)
        after, request = await submit_and_wait(client, sid, script, "approval.request")
        assert request["description"] == "recursive delete"
        await client.call("approval.respond", {"session_id": sid, "choice": "deny"})
        complete = await finish(client, sid, after)
        assert complete["text"] == f"Tool terminal returned: denied: rm -rf {target}"
        assert target.exists()


async def test_delegate_tool_runs_a_subagent_on_the_same_backend(gw: Any) -> None:
    script = 'tool: delegate {"goal": "summarise", "prompt": "say: child words here"}'
    async with GatewayClient.connect(gw.url) as client:
        sid = await open_session(client)
        events, complete = await run_turn(client, sid, script)
        (done,) = of_type(events, "subagent.complete")
        assert done["status"] == "complete" and done["summary"] == "child words here"
        assert of_type(events, "subagent.start")[0]["goal"] == "summarise"
        assert complete["text"] == "Tool delegate returned: child words here"


@pytest.mark.parametrize(
    ("script", "name", "result"),
    [
        ("tool: nosuch {}", "nosuch", "error: unknown tool nosuch"),
        (
            'tool: terminal {"command": "  "}',
            "terminal",
            "error: bad arguments for terminal: command must be",
        ),
        (
            'tool: terminal {"command": "echo x", "timeout": 0}',
            "terminal",
            "error: bad arguments for terminal: timeout",
        ),
        (
            'tool: terminal {"command": "echo x", "timeout": "soon"}',
            "terminal",
            "error: bad arguments for terminal:",
        ),
        ("tool: terminal {}", "terminal", "error: bad arguments for terminal: 'command'"),
        ('tool: todo {"todos": "buy milk"}', "todo", "error: bad arguments for todo: todos must be a list"),
        (
            'tool: todo {"todos": [{"content": "x", "status": "someday"}]}',
            "todo",
            "error: bad arguments for todo: status must be one of",
        ),
        ('tool: clarify {"question": ""}', "clarify", "error: bad arguments for clarify: question must be"),
        (
            'tool: clarify {"question": "Which?", "choices": [1, 2]}',
            "clarify",
            "error: bad arguments for clarify: choices must be a list of strings",
        ),
        ('tool: delegate {"goal": " "}', "delegate", "error: bad arguments for delegate: goal must be"),
    ],
)
async def test_a_tool_call_with_bad_arguments_is_a_tool_error_and_the_turn_goes_on(
    gw: Any, script: str, name: str, result: str
) -> None:
    async with GatewayClient.connect(gw.url) as client:
        sid = await open_session(client)
        events, complete = await run_turn(client, sid, script)
        (done,) = of_type(events, "tool.complete")
        assert done["name"] == name and done["result"].startswith(result), done["result"]
        assert complete["status"] == "complete"
        assert complete["text"] == f"Tool {name} returned: {done['result']}"
