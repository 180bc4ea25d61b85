"""What the hermes 0.19.0 client reads and calls, over real daphne (PROTOCOL.md sections 5, 7-9, 13).

Each test checks the effect a client would see (a status word, a file on disk, a
transcript, a reply text), not only that the call answered.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Session, stored_rows
from tests.test_auth import issue_token
from ws_gateway.testing import GatewayClient, RpcFailure

pytestmark = pytest.mark.db

# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
SHORT_TIMEOUTS = {"clarify": 0.5, "approval": 0.5, "sudo": 0.5, "secret": 0.5}


@pytest.fixture
def gw(gateways):
    """The default memory-layer gateway (wire shapes that do not depend on the channel layer)."""
    return gateways.shared("memory")


async def rpc_error(coro: Any) -> RpcFailure:
    with pytest.raises(RpcFailure) as err:
        await coro
    return err.value


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["text"] for m in messages]


async def submit(s: Session, text: str) -> int:
    mark = len(s.client.events)
    await s.call("prompt.submit", {"text": text})
    return mark


async def reply(s: Session, mark: int) -> dict[str, Any]:
    return (await s.completes(1, after=mark))[0]["payload"]


async def active_status(client: GatewayClient, sid: str) -> str:
    listed = (await client.call("session.active_list"))["sessions"]
    return next(entry["status"] for entry in listed if entry["id"] == sid)


# -- live status words, failure text, todos (PROTOCOL.md sections 5, 7, 9) -------


async def test_status_words_idle_working_waiting(gateway):
    async with Session.open(gateway) as s:
        assert await active_status(s.client, s.sid) == "idle"
        assert "Status: idle" in (await s.call("session.status"))["output"]

        mark = await submit(s, "!sleep 60000")
        await s.client.event("message.start", s.sid, after=mark)
        assert await active_status(s.client, s.sid) == "working"
        await s.call("session.interrupt")
        assert (await reply(s, mark))["status"] == "interrupted"
        assert await active_status(s.client, s.sid) == "idle"

        mark = await submit(s, "!clarify Which one? | a | b")
        request = await s.client.event("clarify.request", s.sid, after=mark)
        assert await active_status(s.client, s.sid) == "waiting"
        assert "Status: waiting" in (await s.call("session.status"))["output"]
        async with GatewayClient.connect(gateway.url) as other:
            resumed = await other.call("session.resume", {"session_id": s.key})
            assert resumed["status"] == "waiting" and resumed["running"] is True
            await other.call(
                "clarify.respond", {"request_id": request["payload"]["request_id"], "answer": "b"}
            )
        assert (await reply(s, mark))["text"] == "Answer: b"
        assert await active_status(s.client, s.sid) == "idle"
        resumed = await s.client.call("session.resume", {"session_id": s.key})
        assert resumed["status"] == "idle"


async def test_todo_tool_events_carry_the_list_and_an_object_result(gateway):
    expected = [
        {"id": "1", "content": "A", "status": "in_progress"},
        {"id": "2", "content": "B", "status": "pending"},
    ]
    async with Session.open(gateway) as s:
        events = await s.turn("!todo A; B")
        start = next(e["payload"] for e in events if e["type"] == "tool.start")
        complete = next(e["payload"] for e in events if e["type"] == "tool.complete")
        assert start["name"] == "todo" and start["todos"] == expected
        assert complete["name"] == "todo" and complete["todos"] == expected
        assert complete["result"] == {
            "todos": expected,
            "summary": {"total": 2, "pending": 1, "in_progress": 1, "completed": 0, "cancelled": 0},
        }
        updated = next(e["payload"] for e in events if e["type"] == "todo.updated")
        assert updated["todos"] == expected

        events = await s.turn("!todo-done 1")
        complete = next(e["payload"] for e in events if e["type"] == "tool.complete")
        assert [t["status"] for t in complete["todos"]] == ["completed", "in_progress"]
        assert complete["result"]["summary"]["completed"] == 1


async def test_failed_turn_puts_the_error_into_the_reply_text(gateway):
    async with Session.open(gateway) as s:
        events = await s.turn("hello\n!fail boom")
        complete = next(e["payload"] for e in events if e["type"] == "message.complete")
        assert complete["text"] == "You said: hello\nError: boom"
        assert complete["status"] == "error" and complete["error"] == "boom"
        deltas = "".join(e["payload"]["text"] for e in events if e["type"] == "message.delta")
        assert deltas == complete["text"]

        events = await s.turn("!fail boom")
        complete = next(e["payload"] for e in events if e["type"] == "message.complete")
        assert complete["text"] == "Error: boom"
        assert "".join(e["payload"]["text"] for e in events if e["type"] == "message.delta") == "Error: boom"


@pytest.mark.parametrize(
    "prompt, kind, reply_text",
    [
        ("!sudo", "sudo", "sudo: declined"),
        ("!secret API_KEY Paste it", "secret", "secret: skipped"),
        ("!clarify Anyone?", "clarify", "Answer: (none)"),
    ],
)
async def test_prompt_timeout_sends_expire(gateways, prompt, kind, reply_text):
    gateway = gateways.shared("memory", REQUEST_TIMEOUTS_S=SHORT_TIMEOUTS)
    async with Session.open(gateway) as s:
        mark = await submit(s, prompt)
        request = await s.client.event(f"{kind}.request", s.sid, after=mark)
        request_id = request["payload"]["request_id"]
        expire = await s.client.event(f"{kind}.expire", s.sid, after=mark)
        assert expire["payload"] == {"request_id": request_id}
        assert (await reply(s, mark))["text"] == reply_text
        cancel = s.events("request.cancel", after=mark)
        assert [c["payload"]["reason"] for c in cancel] == ["timeout"]
        answer_key = {"sudo": "password", "secret": "value", "clarify": "answer"}[kind]
        late = await s.client.call(f"{kind}.respond", {"request_id": request_id, answer_key: "late"})
        assert late == {"status": "expired"}
        assert await active_status(s.client, s.sid) == "idle"


async def test_session_source_defaults_to_tui(gw):
    async with Session.open(gw) as plain, Session.open(gw, source="desktop") as named:
        await plain.turn("from the tui")
        await named.turn("from elsewhere")
        listed = {e["id"]: e for e in (await plain.client.call("session.list"))["sessions"]}
        assert listed[plain.key]["source"] == "tui"
        assert listed[named.key]["source"] == "desktop"


# -- config keys the client reads and sets -----------------------------------------


async def test_setup_status_and_full_config(gw):
    async with GatewayClient.connect(gw.url) as client:
        assert await client.call("setup.status") == {"provider_configured": True}
        full = await client.call("config.get", {"key": "full"})
        assert full["config"]["display"]["busy_input_mode"] in ("interrupt", "queue", "steer")
        assert isinstance((await client.call("config.get", {"key": "mtime"}))["mtime"], float)


async def test_display_settings_are_stored_and_bump_mtime(gw):
    async with GatewayClient.connect(gw.url) as client:

        async def mtime() -> float:
            return (await client.call("config.get", {"key": "mtime"}))["mtime"]

        async def display() -> dict[str, Any]:
            return (await client.call("config.get", {"key": "full"}))["config"]["display"]

        before = await mtime()
        for key, value in (("compact", "on"), ("indicator", "emoji"), ("details_mode.thinking", "expanded")):
            assert await client.call("config.set", {"key": key, "value": value}) == {
                "key": key,
                "value": value,
            }
            after = await mtime()
            assert after > before
            before = after
        shown = await display()
        assert shown["tui_compact"] is True
        assert shown["tui_status_indicator"] == "emoji"
        assert shown["sections"]["thinking"] == "expanded"
        assert (await client.call("config.get", {"key": "indicator"}))["value"] == "emoji"
        assert (await client.call("config.get", {"key": "compact"}))["value"] is True

        await client.call("config.set", {"key": "compact", "value": "off"})
        assert (await display())["tui_compact"] is False

        stamp, snapshot = await mtime(), await display()
        for key, value in (
            ("compact", "maybe"),
            ("indicator", "sparkles"),
            ("statusbar", "left"),
            ("busy", "sometimes"),
            ("reasoning", "max"),
            ("compact", 1),
            ("details_mode.thinking", 5),
            ("colour", "red"),
        ):
            err = await rpc_error(client.call("config.set", {"key": key, "value": value}))
            assert err.code == 4002, (key, value)
        assert (await rpc_error(client.call("config.get", {"key": "colour"}))).code == 4002
        assert await mtime() == stamp and await display() == snapshot


async def test_busy_applies_to_the_callers_session(gw):
    async with Session.open(gw) as s:
        assert await s.client.call("config.set", {"key": "busy", "value": "queue"}) == {
            "key": "busy",
            "value": "queue",
        }
        assert (await s.call("config.get", {"key": "busy_input_mode"}))["value"] == "queue"
        mark = await submit(s, "!sleep 60000")
        await s.client.event("message.start", s.sid, after=mark)
        assert (await s.call("prompt.submit", {"text": "next"}))["status"] == "queued"
        await s.call("session.interrupt")
        await reply(s, mark)
        await s.client.call("config.set", {"key": "busy", "value": "interrupt"})
        assert (await s.call("config.get", {"key": "busy_input_mode"}))["value"] == "interrupt"


async def test_session_config_keys(gw):
    async with Session.open(gw) as s:

        async def get(key: str) -> dict[str, Any]:
            return await s.call("config.get", {"key": key})

        async def set_(key: str, value: Any) -> dict[str, Any]:
            return await s.call("config.set", {"key": key, "value": value})

        assert (await get("fast"))["value"] == "normal"
        assert (await set_("fast", "toggle"))["value"] == "fast"
        assert (await get("fast"))["value"] == "fast"
        assert (await set_("fast", "toggle"))["value"] == "normal"

        await set_("reasoning", "high")
        await set_("reasoning", "show")
        assert await get("reasoning") == {"value": "high", "display": "show"}
        await set_("reasoning", "hide")
        assert (await get("reasoning"))["display"] == "hide"

        cycle = [(await set_("verbose", "cycle"))["value"] for _ in range(4)]
        assert cycle == ["new", "all", "verbose", "off"]
        await set_("verbose", "all")
        assert (await get("verbose"))["value"] == "all"

        await set_("personality", "pirate")
        assert (await get("personality"))["value"] == "pirate"
        await set_("personality", "none")
        assert (await get("personality"))["value"] == ""

        # Approvals stay on unless the deployment lets clients turn them off.
        assert (await get("yolo"))["value"] == "0"
        refused = await rpc_error(set_("yolo", "toggle"))
        assert refused.code == 4002 and "ALLOW_APPROVAL_OFF" in refused.message
        assert (await get("approval_mode"))["value"] == "manual"

        for key, value in (("fast", "turbo"), ("reasoning", "max"), ("verbose", "loud"), ("fast", "")):
            assert (await rpc_error(set_(key, value))).code == 4002
        assert (await get("fast"))["value"] == "normal"
        assert (await get("reasoning"))["value"] == "high"
        assert (await get("verbose"))["value"] == "all"
        missing = await rpc_error(s.client.call("config.set", {"key": "fast", "value": "toggle"}))
        assert missing.code == 4006


async def test_model_options_and_the_pickers_model_form(gw):
    async with Session.open(gw) as s:
        options = await s.call("model.options")
        demo = next(p for p in options["providers"] if p["slug"] == "demo")
        assert demo["models"] == ["demo"] and demo["is_current"] is True
        assert options["model"] == "demo" and options["provider"] == "demo"

        mark = len(s.client.events)
        await s.call("config.set", {"key": "model", "value": "demo:tiny"})
        info = await s.client.event("session.info", s.sid, after=mark)
        assert info["payload"]["model"] == "tiny"
        mark = len(s.client.events)
        result = await s.call("config.set", {"key": "model", "value": "demo --provider demo --tui-session"})
        assert result == {"key": "model", "value": "demo"}
        info = await s.client.event("session.info", s.sid, after=mark)
        assert info["payload"]["model"] == "demo"
        assert (await s.turn("still here"))[-2]["payload"]["text"] == "You said: still here"


# -- terminal and workspace methods (paths stay under the session's cwd) ----------


async def test_terminal_resize(gw):
    async with Session.open(gw) as s:
        assert await s.client.call("terminal.resize", {"cols": 120}) == {"cols": 120}
        assert await s.call("terminal.resize", {"cols": 90}) == {"cols": 90}
        for bad in (0, -3, "wide", [], True):
            assert (await rpc_error(s.call("terminal.resize", {"cols": bad}))).code == -32602, bad


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A session cwd with a file outside it (one level up) to try to escape to."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    (tmp_path / "outside.txt").write_text("not yours")
    (tmp_path / "outside.png").write_bytes(PNG)
    return cwd


async def test_detect_drop(gw, work):
    notes = work / "notes.txt"
    notes.write_text("some notes")
    (work / "pic.png").write_bytes(PNG)
    (work / "link.txt").symlink_to(work.parent / "outside.txt")
    async with Session.open(gw, cwd=str(work)) as s:
        dropped = await s.call("input.detect_drop", {"text": str(notes)})
        assert dropped["matched"] is True and dropped["is_image"] is False
        assert dropped["path"] == str(notes.resolve())
        assert dropped["text"] == f"[User attached file: {notes.resolve()}]"
        with_words = await s.call("input.detect_drop", {"text": "notes.txt summarise this"})
        assert with_words["matched"] is True and with_words["text"].endswith("\nsummarise this")

        image = await s.call("input.detect_drop", {"text": str(work / "pic.png")})
        assert image["matched"] is True and image["is_image"] is True and image["count"] == 1
        assert image["name"] == "pic.png"
        assert (await s.turn("look"))[-2]["payload"]["text"] == "Attached: pic.png\nYou said: look"
        assert (await s.turn("again"))[-2]["payload"]["text"] == "You said: again"

        for text in (
            "/etc/passwd",
            "../outside.txt",
            str(work.parent / "outside.txt"),
            "link.txt",
            "missing.txt",
        ):
            assert await s.call("input.detect_drop", {"text": text}) == {"matched": False}, text
        assert await s.call("input.detect_drop", {"text": "just words"}) == {"matched": False}


async def test_complete_path_uses_the_connections_session(gw, work):
    (work / "alpha.txt").write_text("a")
    (work / "alps").mkdir()
    (work / "alps" / "inner.md").write_text("i")
    (work / ".hidden").write_text("h")
    async with Session.open(gw, cwd=str(work)) as s:
        items = (await s.client.call("complete.path", {"word": "al"}))["items"]
        assert [i["text"] for i in items] == ["alpha.txt", "alps/"]
        inner = (await s.client.call("complete.path", {"word": "alps/"}))["items"]
        assert [i["text"] for i in inner] == ["alps/inner.md"]
        assert [i["text"] for i in (await s.client.call("complete.path", {"word": ".h"}))["items"]] == [
            ".hidden"
        ]
        for word in ("../", "../out", "/etc/", "/", "~/", ""):
            assert (await s.client.call("complete.path", {"word": word}))["items"] == [], word


async def test_image_attach(gw, work):
    (work / "pic.png").write_bytes(PNG)
    (work / "notes.txt").write_text("text")
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    async with Session.open(gw, cwd=str(work)) as s:
        attached = await s.call("image.attach", {"path": "pic.png"})
        assert attached["attached"] is True and attached["count"] == 1
        assert attached["path"] == str((work / "pic.png").resolve())
        for params in (
            {"path": "../outside.png"},
            {"path": str(work.parent / "outside.png")},
            {"path": "nope.png"},
            {"path": "notes.txt"},
            {"data": "data:text/plain;base64,aGk="},
            {},
        ):
            assert (await rpc_error(s.call("image.attach", params))).code == 4002, params
        from_data = await s.call("image.attach", {"data": data_url, "name": "shot.png"})
        assert from_data["attached"] is True and from_data["count"] == 2
        assert (await s.turn("see"))[-2]["payload"]["text"] == "Attached: pic.png, shot.png\nYou said: see"
        assert (await rpc_error(s.client.call("image.attach", {"path": "pic.png"}))).code == 4006


async def test_paste_collapse_writes_under_the_cwd(gw, work):
    async with Session.open(gw, cwd=str(work)) as s:
        text = "line one\nline two\nline three"
        result = await s.call("paste.collapse", {"text": text})
        path = Path(result["path"])
        assert path.parent == (work / ".gateway-pastes").resolve()
        assert path.read_text() == text
        assert result["lines"] == 3 and str(path) in result["placeholder"]
        assert (await rpc_error(s.call("paste.collapse", {"text": ""}))).code == 4004
        assert len(list(path.parent.iterdir())) == 1


# -- session.save / compress / branch / most_recent / status ----------------------


async def test_session_save(gw, work):
    async with Session.open(gw, cwd=str(work)) as s:
        await s.turn("keep this")
        saved = Path((await s.call("session.save"))["file"])
        assert saved.parent == work.resolve() and saved.suffix == ".json"
        document = json.loads(saved.read_text())
        history = (await s.call("session.history"))["messages"]
        assert document["session_id"] == s.key and document["model"] == "demo"
        assert document["messages"] == history
        assert texts(document["messages"]) == ["keep this", "You said: keep this"]

        named = Path((await s.call("session.save", {"path": "exports/../named.json"}))["file"])
        assert named == (work / "named.json").resolve() and named.is_file()
        for path in ("../escape.json", str(work.parent / "escape.json"), "/tmp/escape-compat.json"):
            assert (await rpc_error(s.call("session.save", {"path": path}))).code == 4002
            assert not Path(path if path.startswith("/") else work / path).exists()
        assert sorted(p.name for p in work.iterdir()) == sorted([saved.name, "named.json"])


async def test_session_compress(gw):
    async with Session.open(gw) as s:
        for i in range(1, 6):
            await s.turn(f"m{i}")
        before = (await s.call("session.history"))["messages"]
        mark = len(s.client.events)
        result = await s.call("session.compress")
        assert result["removed"] == 6
        assert result["before_messages"] == 10 and result["after_messages"] == 5
        assert result["summary"]["headline"] == "compressed 6 messages into a summary"
        assert result["summary"]["noop"] is False
        assert result["info"]["stored_session_id"] == s.key and result["info"]["running"] is False
        summary = result["messages"][0]
        assert summary["role"] == "assistant"
        assert summary["text"] == "\n".join(
            ["[Summary of the earlier conversation]"]
            + [
                f"- {role}: {text}"
                for i in (1, 2, 3)
                for role, text in (("user", f"m{i}"), ("assistant", f"You said: m{i}"))
            ]
        )
        assert result["messages"][1:] == before[-4:]
        history = (await s.call("session.history"))["messages"]
        assert history == result["messages"]
        assert [text for _, text in stored_rows(gw.env["DATABASE_URL"], s.key)] == texts(history)
        info = await s.client.event("session.info", s.sid, after=mark)
        assert info["payload"]["stored_session_id"] == s.key

        await s.turn("m6")
        assert texts((await s.call("session.history"))["messages"])[-2:] == ["m6", "You said: m6"]

        mark = await submit(s, "!clarify hold on")
        request = await s.client.event("clarify.request", s.sid, after=mark)
        assert (await rpc_error(s.call("session.compress"))).code == 4009
        await s.client.call(
            "clarify.respond", {"request_id": request["payload"]["request_id"], "answer": "ok"}
        )
        await reply(s, mark)
        after_busy = (await s.call("session.history"))["messages"]
        assert after_busy[:5] == result["messages"] and after_busy[-1]["text"] == "Answer: ok"

    async with Session.open(gw) as few:
        await few.turn("only one")
        noop = await few.call("session.compress")
        assert noop["removed"] == 0 and noop["summary"]["noop"] is True
        assert texts((await few.call("session.history"))["messages"]) == ["only one", "You said: only one"]


async def test_session_branch(gw):
    base = f"T-{uuid.uuid4().hex[:6]}"
    async with Session.open(gw, title=base) as s:
        assert (await rpc_error(s.call("session.branch"))).code == 4008
        await s.turn("a")
        await s.turn("b")
        first = await s.call("session.branch")
        assert first["title"] == f"{base} #2" and first["message_count"] == 4 and first["parent"] == s.key
        second = await s.call("session.branch")
        assert second["title"] == f"{base} #3"
        upto = await s.call("session.branch", {"upto": 2, "name": "Side"})
        assert upto["title"] == "Side" and upto["message_count"] == 2
        assert (await rpc_error(s.call("session.branch", {"upto": 0}))).code == 4008

        branch = first["session_id"]
        history = await s.client.call("session.history", {"session_id": branch})
        assert texts(history["messages"]) == ["a", "You said: a", "b", "You said: b"]
        side = await s.client.call("session.history", {"session_id": upto["session_id"]})
        assert texts(side["messages"]) == ["a", "You said: a"]
        # Live and attached: a prompt into the branch streams to this client, the parent is untouched.
        mark = len(s.client.events)
        await s.client.call("prompt.submit", {"session_id": branch, "text": "c"})
        done = await s.client.event("message.complete", branch, after=mark)
        assert done["payload"]["text"] == "You said: c"
        assert len((await s.call("session.history"))["messages"]) == 4

        listed = {e["id"]: e for e in (await s.client.call("session.list"))["sessions"]}
        assert listed[first["stored_session_id"]]["title"] == f"{base} #2"
        assert listed[upto["stored_session_id"]]["message_count"] == 2
        rows = stored_rows(gw.env["DATABASE_URL"], upto["stored_session_id"])
        assert [text for _, text in rows] == ["a", "You said: a"]

    async with GatewayClient.connect(gw.url) as other:
        resumed = await other.call("session.resume", {"session_id": second["stored_session_id"]})
        assert texts(resumed["messages"]) == ["a", "You said: a", "b", "You said: b"]
        again = await other.call("session.branch", {"session_id": resumed["session_id"]})
        assert again["title"] == f"{base} #4"


async def test_session_status_text(gw):
    async with Session.open(gw, title="Status check") as s:
        await s.turn("hi")
        output = (await s.call("session.status"))["output"]
        assert f"Session ID: {s.key}" in output
        assert "Title: Status check" in output and "Model: demo" in output
        assert "Messages: 2" in output
        assert output == (await s.call("slash.exec", {"command": "/status"}))["output"]
        assert (await rpc_error(s.client.call("session.status", {"session_id": "00000000"}))).code == 4001


@pytest.fixture
def private_gateway(gateways):
    # The settings of tests/test_auth.py's private gateway, so one process serves both.
    return gateways.shared("memory", ALLOW_ANONYMOUS=False, ALLOWED_ORIGINS=["https://app.example"])


def bearer(token: str) -> dict[str, Any]:
    return {"additional_headers": {"Authorization": f"Bearer {token}"}}


async def test_most_recent_and_spawn_trees_are_per_user(private_gateway):
    alice = issue_token(private_gateway, f"alice-{uuid.uuid4().hex[:8]}")
    bob = issue_token(private_gateway, f"bob-{uuid.uuid4().hex[:8]}")
    async with (
        GatewayClient.connect(private_gateway.url, **bearer(alice)) as a,
        GatewayClient.connect(private_gateway.url, **bearer(bob)) as b,
    ):
        assert await a.call("session.most_recent") == {"session_id": None}
        created = await a.call("session.create")
        sid, key = created["session_id"], created["stored_session_id"]
        await a.event("session.info", sid)
        assert await a.call("session.most_recent") == {"session_id": None}  # nothing stored yet
        await a.call("prompt.submit", {"session_id": sid, "text": "first"})
        await a.event("message.complete", sid)
        recent = await a.call("session.most_recent")
        assert recent["session_id"] == key and recent["source"] == "tui"
        assert await b.call("session.most_recent") == {"session_id": None}

        saved = await a.call(
            "spawn_tree.save",
            {"session_id": sid, "subagents": [{"id": "sa_1", "goal": "g"}], "label": "one"},
        )
        assert (await rpc_error(b.call("spawn_tree.load", {"path": saved["path"]}))).code == 4002
        assert (await b.call("spawn_tree.list", {"cross_session": True}))["entries"] == []


# -- background prompts, delegation, spawn trees, tools ----------------------------


async def test_prompt_background(gw):
    async with Session.open(gw) as s:
        mark = len(s.client.events)
        task = await s.call("prompt.background", {"text": "hello"})
        assert task["task_id"].startswith("bg_")
        done = await s.client.event("background.complete", s.sid, after=mark, timeout=30)
        assert done["payload"]["task_id"] == task["task_id"]
        assert done["payload"]["text"] == "You said: hello"
        rows = stored_rows(gw.env["DATABASE_URL"], done["payload"]["session_id"])
        assert [text for _, text in rows] == ["hello", "You said: hello"]
        assert await s.stored_texts() == []  # the caller's own transcript is untouched
        for text in ("", "   "):
            assert (await rpc_error(s.call("prompt.background", {"text": text}))).code == 4012
        assert (await rpc_error(s.client.call("prompt.background", {"text": "x"}))).code == 4006


async def test_delegation_status_and_pause(gw):
    async with Session.open(gw) as s:
        status = await s.client.call("delegation.status", {})
        assert status["active"] == [] and status["paused"] is False and isinstance(status["total"], int)
        try:
            assert await s.client.call("delegation.pause", {"paused": True}) == {"paused": True}
            assert (await s.client.call("delegation.status", {}))["paused"] is True
            events = await s.turn("!delegate g :: hi")
            text = events[-2]["payload"]["text"]
            assert text == "Delegated: g -> error: delegation is paused (delegation.pause)"
            assert not [e for e in events if e["type"] == "subagent.start"]
        finally:
            assert await s.client.call("delegation.pause", {"paused": False}) == {"paused": False}
        events = await s.turn("!delegate g :: hi")
        assert events[-2]["payload"]["text"] == "Delegated: g -> You said: hi"
        assert (await s.call("delegation.status"))["total"] == 1


async def test_spawn_tree_round_trip(gw):
    async with Session.open(gw) as s:
        assert (await rpc_error(s.call("spawn_tree.save", {"subagents": []}))).code == 4002
        assert (await rpc_error(s.call("spawn_tree.save"))).code == 4002
        await s.turn("!delegate g :: hi")
        subagents = (await s.call("subagent.list"))["subagents"]
        assert len(subagents) == 1
        saved = await s.call(
            "spawn_tree.save", {"subagents": subagents, "label": "g", "started_at": 1.5, "finished_at": 2.5}
        )
        assert saved["path"].startswith("spawn_tree:") and saved["session_id"] == s.key
        entries = (await s.call("spawn_tree.list"))["entries"]
        assert [(e["path"], e["label"], e["count"]) for e in entries] == [(saved["path"], "g", 1)]
        loaded = await s.call("spawn_tree.load", {"path": saved["path"]})
        assert loaded["subagents"] == subagents
        assert (loaded["started_at"], loaded["finished_at"], loaded["session_id"]) == (1.5, 2.5, s.key)
        for path in (
            "/etc/passwd",
            "spawn_tree:999999999",
            "spawn_tree:" + "9" * 30,
            "spawn_tree:x",
            "spawn_tree:-1",
            "",
        ):
            assert (await rpc_error(s.call("spawn_tree.load", {"path": path}))).code == 4002, path
        assert (
            await rpc_error(s.call("spawn_tree.save", {"subagents": subagents, "started_at": "x"}))
        ).code == (-32602)
        assert len((await s.call("spawn_tree.list"))["entries"]) == 1


async def test_tools_configure_and_slash_commands(gw):
    async with Session.open(gw) as s:
        off = await s.call("tools.configure", {"action": "disable", "names": ["terminal", "nope"]})
        assert off["changed"] == ["terminal"] and off["unknown"] == ["nope"]
        assert "terminal" not in off["enabled_toolsets"] and "todo" in off["enabled_toolsets"]
        listing = (await s.call("slash.exec", {"command": "/tools"}))["output"]
        assert any(line.split()[:2] == ["off", "terminal"] for line in listing.splitlines())
        assert any(line.split()[:2] == ["on", "todo"] for line in listing.splitlines())
        text = (await s.turn("!run echo hi"))[-2]["payload"]["text"]
        assert "terminal tool is disabled" in text and "\nhi" not in text

        for params in (
            {"action": "toggle", "names": ["terminal"]},
            {"action": "enable", "names": []},
            {"action": "enable"},
        ):
            assert (await rpc_error(s.call("tools.configure", params))).code == 4002
        assert "terminal tool is disabled" in (await s.turn("!run echo hi"))[-2]["payload"]["text"]

        on = await s.call("tools.configure", {"action": "enable", "names": ["terminal"]})
        assert "terminal" in on["enabled_toolsets"]
        assert (await s.turn("!run echo hi"))[-2]["payload"]["text"] == "Ran: echo hi (exit 0)\nhi"

        for command in ("/skills", "/plugins", "/pet"):
            output = (await s.call("slash.exec", {"command": command}))["output"]
            assert "not available" in output and "\n" not in output
            assert "Unknown command" not in output


async def test_branch_and_background_of_a_session_not_stored_yet(gw):
    seeded = [{"role": "user", "text": "seed"}, {"role": "assistant", "text": "grown"}]
    async with Session.open(gw, messages=seeded) as s:
        branch = await s.call("session.branch")
        assert branch["message_count"] == 2
        rows = stored_rows(gw.env["DATABASE_URL"], branch["stored_session_id"])
        assert [text for _, text in rows] == ["seed", "grown"]
        mark = len(s.client.events)
        task = await s.call("prompt.background", {"text": "later"})
        done = await s.client.event("background.complete", s.sid, after=mark, timeout=30)
        assert done["payload"]["task_id"] == task["task_id"] and done["payload"]["text"] == "You said: later"


async def test_workspace_methods_without_a_session(gw):
    async with GatewayClient.connect(gw.url) as client:
        assert await client.call("input.detect_drop", {"text": "/etc/passwd"}) == {"matched": False}
        assert await client.call("complete.path", {"word": "e"}) == {"items": []}
        assert await client.call("terminal.resize", {"cols": 80, "session_id": "00000000"}) == {"cols": 80}
        err = await rpc_error(client.call("tools.configure", {"action": "disable", "names": ["terminal"]}))
        assert err.code == 4002


@pytest.mark.parametrize("offered", [["once", "session", "always", "deny"], ["once", "session", "deny"]])
async def test_approval_request_says_whether_always_is_offered(gateways, offered):
    # The hermes client draws its buttons from allow_permanent: "Always" must not be shown when refused.
    gateway = (
        gateways.shared("memory")
        if "always" in offered
        else gateways.shared("memory", APPROVAL_CHOICES=offered)
    )
    async with Session.open(gateway) as s:
        mark = await submit(s, "!approve echo ok")
        request = (await s.client.event("approval.request", s.sid, after=mark))["payload"]
        assert request["choices"] == offered
        assert request["allow_permanent"] is ("always" in offered)
        await s.call("approval.respond", {"choice": "once"})
        assert (await reply(s, mark))["text"] == "Ran: echo ok (exit 0)\nok"


async def test_shell_exec_runs_what_the_policy_allows_and_refuses_the_rest(gw, work):
    (work / "keep.txt").write_text("kept\n")
    async with GatewayClient.connect(gw.url) as client:
        # The client sends no session_id: without a session there is no cwd to run in.
        assert (await rpc_error(client.call("shell.exec", {"command": "ls"}))).code == 4006
        await client.call("session.create", {"cwd": str(work)})
        listed = await client.call("shell.exec", {"command": "ls"})
        assert listed == {"stdout": "keep.txt\n", "stderr": "", "code": 0}
        assert (await client.call("shell.exec", {"command": "cat keep.txt"}))["stdout"] == "kept\n"
        failed = await client.call("shell.exec", {"command": "cat missing.txt"})
        assert failed["code"] != 0 and "missing.txt" in failed["stdout"]
        for command in ("rm -rf keep.txt", "env", "cat ../outside.txt", "python3 -c 'print(1)'"):
            err = await rpc_error(client.call("shell.exec", {"command": command}))
            assert err.code == 4002 and "needs an approval" in err.message, command
        assert (work / "keep.txt").read_text() == "kept\n"
        assert (await rpc_error(client.call("shell.exec", {"command": "  "}))).code == 4004


async def test_shell_exec_can_be_turned_off(gateways, work):
    gateway = gateways.shared("memory", SHELL_EXEC=False)
    async with GatewayClient.connect(gateway.url) as client:
        await client.call("session.create", {"cwd": str(work)})
        err = await rpc_error(client.call("shell.exec", {"command": "ls"}))
        assert err.code == 4002 and "turned off" in err.message


async def test_yolo_toggles_approvals_where_the_deployment_allows_it(gateways):
    gateway = gateways.shared("memory", ALLOW_APPROVAL_OFF=True)
    async with Session.open(gateway) as s:
        mark = len(s.client.events)
        assert (await s.call("config.set", {"key": "yolo"}))["value"] == "1"
        assert (await s.call("config.get", {"key": "approval_mode"}))["value"] == "off"
        info = await s.client.event("session.info", s.sid, after=mark)
        assert info["payload"]["approval_mode"] == "off"
        assert (await s.call("config.set", {"key": "yolo"}))["value"] == "0"
        assert (await s.call("config.get", {"key": "approval_mode"}))["value"] == "manual"


async def test_agent_sessions_are_not_listed_as_live_or_stored(gateways):
    """Subagent and background sessions run for the agent: neither list offers them to switch to."""
    gateway = gateways.new("memory")  # its own: these sessions are reaped later, telling everyone
    try:
        async with Session.open(gateway) as s:
            task = (await s.call("prompt.background", {"text": "hello"}))["task_id"]
            done = await s.client.wait_for(
                lambda: [
                    e
                    for e in s.client.find_events("background.complete", s.sid)
                    if e["payload"]["task_id"] == task
                ]
            )
            events = await s.turn("!delegate g :: hi")
            children = [done[0]["payload"]["session_id"]] + [
                e["payload"]["child_session_id"] for e in events if e["type"] == "subagent.start"
            ]
            assert len(children) == 2
            live = [e["session_key"] for e in (await s.client.call("session.active_list"))["sessions"]]
            stored = [e["id"] for e in (await s.client.call("session.list"))["sessions"]]
            assert live == [s.key] and s.key in stored
            assert not set(children) & set(stored)
    finally:
        gateway.stop()
