"""Slash commands and the deployment-level methods, in-process: their handlers called with a
real Call and a live session that is not registered anywhere, so a bug in a branch shows in
milliseconds. The same commands over a real socket are in tests/test_commands_config.py."""

from __future__ import annotations

from typing import Any

import pytest

import ws_gateway.builtin_commands
import ws_gateway.methods  # noqa: F401 - registers the methods
from tests.fake_openai import FakeOpenAI
from ws_gateway.caller import RemoteCaller
from ws_gateway.commands import CommandContext, commands
from ws_gateway.errors import RpcError
from ws_gateway.rpc.call import Call, Params
from ws_gateway.rpc.registry import registry
from ws_gateway.sessions.live import LiveSession


def live_session(**fields: Any) -> LiveSession:
    return LiveSession("rt-cmd", "20260101_000000_aaaaaa", owner_id=None, model="demo", cwd="/tmp", **fields)


def run(line: str, live: LiveSession | None) -> dict[str, Any]:
    name, _, arg = line.partition(" ")
    cmd, _ = commands.resolve(name)
    assert cmd is not None, name
    ctx = CommandContext(call=None, name=cmd.name, arg=arg.strip(), session=live)  # type: ignore[arg-type]
    return cmd.handler(ctx).to_wire()


def test_status_names_the_title_and_the_queue() -> None:
    live = live_session(title="My work")
    live.queue.extend(["a", "b"])
    out = run("/status", live)["output"]
    assert "Title: My work" in out and "Queued: 2" in out and "Agent Running: No" in out
    assert "Title:" not in run("/status", live_session())["output"]


@pytest.mark.parametrize(
    ("line", "result"),
    [
        ("/history", {"type": "exec", "output": "(no messages)"}),
        ("/title", {"type": "exec", "output": "title: (none)"}),
        ("/model", {"type": "exec", "output": "model: demo"}),
        ("/queue", {"type": "prefill", "message": "/queue ", "notice": "usage: /queue TEXT"}),
        ("/q   later please", {"type": "send", "message": "later please"}),
        ("/steer", {"type": "exec", "output": "usage: /steer TEXT"}),
        ("/stop", {"type": "exec", "output": "nothing running"}),
        ("/undo", {"type": "exec", "output": "removed 0 message(s)"}),
        ("/retry", {"type": "exec", "output": "nothing to retry"}),
        ("/skills", {"type": "exec", "output": "Skills are not available on this gateway."}),
        ("/pet", {"type": "exec", "output": "Pets are not available on this gateway."}),
    ],
)
def test_commands_on_an_empty_session(line: str, result: dict[str, Any]) -> None:
    assert run(line, live_session()) == result


def test_clear_refuses_while_a_turn_runs_and_keeps_the_transcript() -> None:
    live = live_session(messages=[{"role": "user", "text": "hi"}])
    live.running = True
    assert run("/clear", live) == {"type": "exec", "output": "busy: /stop the running turn first"}
    assert len(live.messages) == 1


def test_the_tools_list_marks_disabled_tools() -> None:
    out = run("/tools", live_session(config={"disabled_tools": ["todo"]}))["output"]
    (todo_line,) = [line for line in out.splitlines() if " todo " in line]
    assert todo_line.strip().startswith("off")
    assert all(line.strip().startswith("on") for line in out.splitlines()[1:] if " todo " not in line)


@pytest.mark.parametrize("line", ["/status", "/usage", "/history", "/title x", "/stop", "/clear", "/tools"])
def test_session_commands_without_a_session_say_so(line: str) -> None:
    with pytest.raises(RpcError) as failed:
        run(line, None)
    assert failed.value.message.endswith("needs session_id")


# -- setup.status, model.options, reload.* ------------------------------------------------


def call(method: str, **params: Any) -> Any:
    spec = registry.get(method)
    assert spec is not None
    return spec.handler(Call(RemoteCaller("c-test", None), method, Params(params)))


def with_agent(settings: Any, agent: str, options: dict[str, Any] | None = None) -> None:
    settings.WS_GATEWAY = {
        **getattr(settings, "WS_GATEWAY", {}),
        "AGENT": agent,
        "AGENT_OPTIONS": options or {},
    }


@pytest.mark.parametrize(
    ("agent", "options", "configured"),
    [
        ("demo", {}, True),
        ("openai", {}, False),  # no model named
        ("openai", {"model": "m"}, True),
        ("no.such.Backend", {}, False),  # cannot be imported
        ("tests.testapp.backends.Broken", {}, True),  # no configured(): taken as ready
    ],
)
def test_setup_status_says_whether_a_turn_can_run(
    settings: Any, agent: str, options: dict[str, Any], configured: bool
) -> None:
    with_agent(settings, agent, options)
    assert call("setup.status") == {"provider_configured": configured}


def test_model_options_list_the_model_servers_models(settings: Any) -> None:
    with FakeOpenAI() as fake:
        with_agent(settings, "demo", {"base_url": fake.url + "/v1", "model": "fake-model", "max_retries": 0})
        out = call("model.options")
    assert out["provider"] == "demo" and out["model"] == "fake-model"
    demo, openai = out["providers"]
    assert demo["slug"] == "demo" and demo["models"] == ["demo"] and demo["is_current"]
    assert openai["slug"] == "openai" and openai["models"] == ["fake-model"] and openai["total_models"] == 1
    assert not openai["is_current"] and openai["authenticated"]


@pytest.mark.parametrize(
    ("agent", "models"),
    [
        ("no.such.Backend", []),  # cannot be loaded: listed without models, not authenticated
        ("tests.testapp.backends.Broken", []),  # cannot list models
    ],
)
def test_model_options_list_a_custom_backend(settings: Any, agent: str, models: list[str]) -> None:
    with_agent(settings, agent)
    out = call("model.options")
    assert [p["slug"] for p in out["providers"]] == ["demo", agent]
    custom = out["providers"][1]
    assert custom["models"] == models and custom["is_current"]
    assert custom["authenticated"] is (agent != "no.such.Backend")


def test_reloads_change_nothing() -> None:
    assert call("reload.env") == {"updated": 0}
    assert call("reload.mcp") == {
        "status": "unchanged",
        "message": "this gateway has no MCP servers",
        "servers": 0,
    }
