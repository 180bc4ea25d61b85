"""hermes-agent 0.19.0's terminal UI, unmodified, driven like a person against a real daphne.

A prompt line starting with ``!`` is the client's shell escape (``shell.exec``), so demo
directives are typed with a leading space (`` !stream 50``): the client only tests
``startswith("!")``, the demo agent strips each line. Every test ends with ``assert_clean``: no
``error:`` line on the client's screen and a non-error response to every request it sent.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.realclient.checks import assert_clean, error_summary, problems, settled
from tests.realclient.proxy import RecordingProxy
from tests.realclient.tui import Tui

pytestmark = pytest.mark.realclient

READY = re.compile(r"^ ─ ready", re.M)


def reply(tui: Tui, proxy: RecordingProxy, text: str, expect: str) -> dict[str, Any]:
    """Submit a prompt, wait for ``expect`` on screen and the turn's end; the message.complete."""
    before = len(proxy.events("message.complete"))
    tui.submit(text)
    tui.wait_screen(expect, 30)
    done = proxy.wait(lambda p: p.events("message.complete")[before:], 30, "message.complete")
    tui.wait_screen(READY, 15)
    return done[0]


def test_startup_and_idle_polling(tui: Tui, proxy: RecordingProxy) -> None:
    """Start-up loads config and setup state; idle polls (pet every 2.5 s, config mtime every 5 s)."""
    proxy.wait(lambda p: len(p.calls("pet.cells")) >= 4, 30, "4 pet.cells polls")
    proxy.wait(lambda p: len(p.calls("session.active_list")) >= 3, 30, "session.active_list polls")
    proxy.wait(
        lambda p: [x for x in p.calls("config.get") if x.params == {"key": "mtime"}][1:], 30, "2 mtime polls"
    )
    started = {x.method for x in proxy.exchanges()}
    assert {"setup.status", "commands.catalog", "session.create"} <= started
    assert any(x.params == {"key": "full"} for x in proxy.calls("config.get"))
    assert_clean(proxy, tui)


def test_dashboard_token_url(open_tui: Callable[..., Tui], proxy: RecordingProxy) -> None:
    """The web dashboard starts the client with ``?token=...`` of its own; with anonymous access
    allowed, a token this gateway did not issue connects anonymously."""
    tui = open_tui(query="?token=dashboard-session-token")
    assert "token=dashboard-session-token" in proxy.paths[0]
    reply(tui, proxy, "via the dashboard", r"You said: via the dashboard")
    assert_clean(proxy, tui)


def test_prompt_and_stream(tui: Tui, proxy: RecordingProxy) -> None:
    done = reply(tui, proxy, "hello there", r"You said: hello there")
    assert done["payload"]["text"] == "You said: hello there"
    done = reply(tui, proxy, " !stream 50", r"\bt50\b")
    tokens = " ".join(f"t{i}" for i in range(1, 51))
    assert done["payload"]["text"] == tokens
    assert tokens.replace(" ", "") in re.sub(r"[\s│┃║|]", "", tui.screen())
    assert_clean(proxy, tui)


def test_todo_panel(tui: Tui, proxy: RecordingProxy) -> None:
    """The client reads the list from the todo tool's tool.start / tool.complete."""
    tui.submit(" !todo Alpha; Beta; Gamma")
    tui.wait_screen(r"Todo \(0/3\)", 20)
    tui.wait_screen(r"\[>\] Alpha")
    tui.wait_screen(r"\[ \] Beta")
    tui.wait_screen(r"\[ \] Gamma")
    tui.wait_screen(READY)
    tui.submit(" !todo-done 1")
    tui.wait_screen(r"Todo \(1/3\)", 20)
    tui.wait_screen(r"\[x\] Alpha")
    tui.wait_screen(r"\[>\] Beta")
    assert_clean(proxy, tui)


def test_approval_overlay(tui: Tui, proxy: RecordingProxy, client_cwd: Path) -> None:
    build = client_cwd / "build"
    build.mkdir(exist_ok=True)
    tui.submit(" !approve rm -rf build")
    tui.wait_screen(r"approval required", 20)
    tui.wait_screen(r"Allow once")
    tui.keys("1")
    tui.wait_screen(r"Ran: rm -rf build \(exit 0\)", 20)
    assert not build.exists()
    assert proxy.wait_answer("approval.respond").params.get("choice") == "once"
    tui.wait_screen(READY)
    tui.submit(" !approve rm -rf nothing-here")
    tui.wait_screen(r"approval required", 20)
    tui.keys("4")
    tui.wait_screen(r"Denied: rm -rf nothing-here", 20)
    assert_clean(proxy, tui)


def test_clarify_overlay(tui: Tui, proxy: RecordingProxy) -> None:
    tui.submit(" !clarify Which colour? | red | blue")
    tui.wait_screen(r"Which colour\?", 20)
    tui.wait_screen(r"2\. blue")
    tui.keys("2")
    tui.wait_screen(r"Answer: blue", 20)
    tui.wait_screen(READY)
    tui.submit(" !clarify Your name?")
    tui.wait_screen(r"Your name\?", 20)
    tui.wait(lambda: not tui.idle_prompt(), 10, "the free-text clarify prompt")
    tui.keys("-l", "Ada")
    tui.wait_screen(r"Ada")
    tui.keys("Enter")
    tui.wait_screen(r"Answer: Ada", 20)
    assert_clean(proxy, tui)


def test_failure_reason_shows(tui: Tui, proxy: RecordingProxy) -> None:
    """A failed turn shows why: the reason is in the reply, not only in the frames."""
    before = len(proxy.events("message.complete"))
    tui.submit(" !fail kaboom-reason")
    done = proxy.wait(lambda p: p.events("message.complete")[before:], 30, "message.complete")[0]
    assert done["payload"].get("status") == "error"
    tui.wait_screen(READY, 15)
    shown = [line for line in tui.screen().splitlines() if "kaboom-reason" in line and "!fail" not in line]
    assert shown, f"the failure reason is not on screen:\n{tui.screen()}"
    assert_clean(proxy, tui)


def test_delegation(tui: Tui, proxy: RecordingProxy) -> None:
    """A delegation shows its child; the client then archives the spawn tree (spawn_tree.save)."""
    since = len(proxy.exchanges())
    reply(tui, proxy, " !delegate g :: hi", r"Delegated: g -> You said: hi")
    saved = proxy.wait_answer("spawn_tree.save", since, 15)
    assert saved.params.get("subagents"), saved
    since = len(proxy.exchanges())
    tui.submit("/agents")
    proxy.wait_answer("delegation.status", since)
    tui.wait(lambda: not tui.idle_prompt(), 10, "the agents overlay")
    tui.close_overlays()
    since = len(proxy.exchanges())
    tui.submit("/replay list")
    proxy.wait_answer("spawn_tree.list", since)
    tui.wait_screen(r"Archived spawn trees|no archived spawn trees")
    assert_clean(proxy, tui)


def test_shell_escape(tui: Tui, proxy: RecordingProxy) -> None:
    """``!cmd`` is the client's shell escape: ``shell.exec`` in the session's cwd."""
    tui.submit("!echo realclient-shell-out")
    done = proxy.wait_answer("shell.exec")
    assert done.params == {"command": "echo realclient-shell-out"}
    tui.wait_screen(r"·\s+realclient-shell-out")
    assert_clean(proxy, tui)


def test_resize(tui: Tui, proxy: RecordingProxy) -> None:
    since = len(proxy.exchanges())
    tui.resize(100, 30)
    resized = proxy.wait_answer("terminal.resize", since, where=lambda x: x.params.get("cols") == 100)
    assert resized.params.get("session_id")
    tui.wait_screen(READY)
    assert max(len(line) for line in tui.screen().splitlines()) <= 100
    since = len(proxy.exchanges())
    tui.resize(120, 40)
    proxy.wait_answer("terminal.resize", since, where=lambda x: x.params.get("cols") == 120)
    reply(tui, proxy, "after resize", r"You said: after resize")
    assert_clean(proxy, tui)


@dataclass
class Slash:
    """A slash command as typed, the requests it must send, and what the screen then shows."""

    text: str
    methods: tuple[str, ...] = ()  # "config.get:busy": that method with params.key "busy"
    expect: str | Callable[[Any], str] | None = None  # a regex, or one made from the last result
    overlay: bool = False  # opens an overlay (picker, pager, panel) to close with Escape
    where: dict[str, Callable[[Any], bool]] = field(default_factory=dict)


def first_line(key: str) -> Callable[[Any], str]:
    """A regex for the first line of ``result[key]`` (what the client pages or prints)."""

    def regex(result: Any) -> str:
        text = str((result or {}).get(key) or "")
        line = next((line.strip() for line in text.splitlines() if line.strip()), "")
        assert line, f"empty {key!r} in {result!r}"
        return re.escape(line[:40])

    return regex


def compress_text(result: Any) -> str:
    summary = (result or {}).get("summary") or {}
    if summary.get("headline"):
        return re.escape(summary["headline"][:40])
    return r"compressed \d+ messages|nothing to compress"


def not_unknown(result: Any) -> bool:
    return "Unknown command" not in json.dumps(result)


def _has_key(params: Any, key: str) -> bool:
    return not key or (isinstance(params, dict) and params.get("key") == key)


def run_slash(tui: Tui, proxy: RecordingProxy, step: Slash) -> str | None:
    """Run one command; a description of what went wrong, or None."""
    since = len(proxy.exchanges())
    try:
        tui.submit(step.text)
        result: Any = None
        for wanted in step.methods:
            method, _, key = wanted.partition(":")
            exchange = proxy.wait_answer(method, since, 20, where=lambda x, key=key: _has_key(x.params, key))
            if exchange.error is not None:
                return f"{step.text}: {exchange}"
            result = exchange.response.get("result")
            if method == "slash.exec" and not not_unknown(result):
                return f"{step.text}: {exchange} but says {result}"
        if step.overlay:
            tui.wait(lambda: not tui.idle_prompt(), 10, f"{step.text} overlay")
        if step.expect is not None:
            tui.wait_screen(step.expect(result) if callable(step.expect) else step.expect, 15)
        tui.close_overlays()
        return None
    except AssertionError as exc:
        return f"{step.text}: {str(exc).splitlines()[0]}"
    finally:
        with contextlib.suppress(AssertionError):
            tui.close_overlays()


# Every command of the client's own catalog that goes to the gateway, in an order that leaves
# something to act on (two exchanges for /undo and /retry, a transcript for /save and /compress).
SLASH = [
    Slash("/help", (), r"Hotkeys"),
    Slash("/title realclient-slash", ("session.title",), r"session title set: realclient-slash"),
    Slash("/title", ("session.title",), r"title: realclient-slash"),
    Slash("/usage", ("session.usage",), r"Total tokens"),
    Slash("/status", ("session.status",), first_line("output"), overlay=True),
    Slash("/history", (), r"\[You #1\]", overlay=True),
    Slash("/tools", ("slash.exec",), first_line("output")),
    Slash("/model", ("model.options",), None, overlay=True),
    Slash("/model demo", ("config.set:model",), r"model → demo"),
    Slash("/skin", ("config.get:skin",), r"skin: \w+"),
    Slash("/busy", ("config.get:busy",), r"busy input mode: \w+"),
    Slash("/fast", ("config.get:fast",), r"fast mode: \w+"),
    Slash("/reasoning", ("config.get:reasoning",), None),
    Slash("/verbose", ("config.set:verbose",), None),
    Slash("/indicator", ("config.get:indicator",), r"indicator: \S+"),
    Slash("/details", ("config.get:details_mode",), r"details: \w+"),
    Slash("/compact", ("config.set:compact",), r"compact on"),
    Slash("/compact", ("config.set:compact",), r"compact off"),
    Slash("/statusbar top", ("config.set:statusbar",), r"status bar top"),
    Slash("/mouse on", ("config.set:mouse",), r"mouse tracking \w+"),
    Slash("/reload", ("reload.env",), r"reloaded \.env"),
    Slash("/reload-mcp", ("reload.mcp",), r"MCP servers reloaded|reload complete|reload-mcp"),
    Slash("/rollback", ("rollback.list",), r"checkpoints are not enabled|no checkpoints found|Rollback"),
    Slash("/stop", ("process.stop",), r"stopped \d+ background process"),
    Slash("/background bg-said-this", ("prompt.background",), r"\[bg \S+\] You said: bg-said-this"),
    Slash("/save", ("session.save",), r"conversation saved to: \S+"),
    Slash("/undo", ("session.undo",), r"undid \d+ messages"),
    Slash("/retry", ("session.undo", "prompt.submit"), r"You said: second prompt"),
    Slash("/compress", ("session.compress",), compress_text),
    Slash("/branch", ("session.branch",), r"branched →"),
]


@pytest.mark.timeout(300)
def test_slash_commands(tui: Tui, proxy: RecordingProxy, client_cwd: Path) -> None:
    """Every gateway-backed slash command answers without an error and shows its result."""
    reply(tui, proxy, "first prompt", r"You said: first prompt")
    reply(tui, proxy, "second prompt", r"You said: second prompt")
    failures = []
    for step in SLASH:
        failure = run_slash(tui, proxy, step)
        if failure:
            failures.append(failure)
        if not tui.idle_prompt():
            failures.append(f"stopped after {step.text}: no composer to type into:\n{tui.screen()}")
            break
    saved = proxy.calls("session.save")
    if saved and saved[-1].response and "result" in saved[-1].response:
        path = Path(saved[-1].response["result"]["file"])
        assert path.resolve().is_relative_to(client_cwd.resolve()), path
        assert json.loads(path.read_text())
    found = problems(proxy, tui)
    assert not failures and not found, "\n".join(["commands that failed:", *failures, *found])


def picker_rows(screen: str) -> list[str]:
    return [line for line in screen.splitlines() if "║" in line]


def picker_row(screen: str, text: str) -> str | None:
    """The first picker row holding ``text`` (live rows come before resumable ones)."""
    return next((line for line in picker_rows(screen) if text in line), None)


def selected_row(screen: str) -> str | None:
    return next((row for row in picker_rows(screen) if "▸" in row), None)


def select_row(tui: Tui, text: str, limit: int = 20) -> None:
    """Move the picker's selection (``▸``) to the first row holding ``text``, as a person would."""
    for _ in range(limit):
        rows = picker_rows(tui.screen())
        target = next((i for i, row in enumerate(rows) if text in row), None)
        selected = next((i for i, row in enumerate(rows) if "▸" in row), None)
        if target is None or selected is None:
            break
        if target == selected:
            return
        tui.keys("Down" if target > selected else "Up")
        # The selected row's text changes (a long list scrolls under a selection that stays put).
        moved = lambda before=rows[selected]: selected_row(tui.screen()) != before  # noqa: E731
        tui.wait(moved, 5, "the selection to move")
    raise AssertionError(f"no picker row with {text!r} to select:\n{tui.screen()}")


def test_sessions_picker_resume_and_new(tui: Tui, proxy: RecordingProxy) -> None:
    title = f"rc-{uuid.uuid4().hex[:6]}"
    reply(tui, proxy, "first session marker", r"You said: first session marker")
    tui.submit(f"/title {title}")
    tui.wait_screen(f"session title set: {title}")
    since = len(proxy.exchanges())
    tui.submit("/new")
    tui.wait_screen(r"Start a new session\?")
    tui.keys("y")
    tui.wait_screen(r"new session started", 20)
    proxy.wait_answer("session.create", since)
    reply(tui, proxy, "second session", r"You said: second session")
    assert "first session marker" not in tui.screen()
    tui.submit("/sessions")
    tui.wait_screen(r"Sessions", 15)
    tui.wait_screen(re.escape(title), 15)
    select_row(tui, title)
    since = len(proxy.exchanges())
    tui.keys("Enter")
    resumed = proxy.wait_answer("session.resume", since, 20)
    assert resumed.error is None, resumed
    tui.wait_screen(r"You said: first session marker", 20)
    reply(tui, proxy, "back again", r"You said: back again")
    assert_clean(proxy, tui)


def row_says(tui: Tui, title: str, word: str) -> bool:
    return word in (picker_row(tui.screen(), title) or "")


def test_picker_status_words(open_tui: Callable[..., Tui], proxy: RecordingProxy) -> None:
    """A second client's picker shows the first one's session `working`, then `waiting` while a
    person is asked, then `idle`."""
    worker = open_tui("worker")
    watcher = open_tui("watcher")
    title = f"busy-{uuid.uuid4().hex[:6]}"
    worker.submit(f"/title {title}")
    worker.wait_screen(f"session title set: {title}")
    worker.submit(" !sleep 30000")
    proxy.wait(lambda p: p.calls("prompt.submit"), 10, "prompt.submit")
    watcher.submit("/sessions")
    watcher.wait_screen(r"Sessions", 15)
    watcher.wait(lambda: row_says(watcher, title, "▶ working"), 15, "row `working`")
    watcher.close_overlays()
    since = len(proxy.exchanges())
    worker.keys("C-c")
    proxy.wait_answer("session.interrupt", since, 10)
    worker.wait_screen(READY, 15)
    worker.submit(" !clarify Still there? | yes | no")
    worker.wait_screen(r"Still there\?", 20)
    watcher.submit("/sessions")
    watcher.wait_screen(r"Sessions", 15)
    watcher.wait(lambda: row_says(watcher, title, "? waiting"), 15, "row `waiting`")
    worker.keys("1")
    worker.wait_screen(r"Answer: yes", 20)
    worker.wait_screen(READY, 15)
    watcher.keys("C-r")
    watcher.wait(lambda: row_says(watcher, title, "✓ idle"), 15, "row `idle`")
    watcher.close_overlays()
    assert_clean(proxy, worker, watcher)


def test_yolo_is_refused_with_a_clear_line_by_default(tui: Tui, proxy: RecordingProxy) -> None:
    """Approvals stay on unless the deployment allows turning them off: /yolo is an explicit user
    action, answered with one clear error (docs/compatibility.md lists it)."""
    reply(tui, proxy, "hello", r"You said: hello")
    since = len(proxy.exchanges())
    tui.submit("/yolo")
    exchange = proxy.wait_answer("config.set", since, 20, where=lambda x: x.params.get("key") == "yolo")
    assert exchange.error is not None and exchange.error["code"] == 4002
    assert "ALLOW_APPROVAL_OFF" in exchange.error["message"]
    tui.wait_screen(r"not allowed by this deployment", 15)
    refused = (exchange.conn, exchange.id)
    others = [x for x in settled(proxy) if x.error is not None and (x.conn, x.id) != refused]
    assert not others, error_summary(others)
    assert [line for line in tui.error_lines() if "deployment" not in line] == []
