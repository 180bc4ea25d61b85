"""The terminal client (python -m ws_gateway.client) in-process: what it prints for each event,
how it answers prompts from typed lines, and how it ends. The socket is a scripted stand-in that
answers each request from a table; the end-to-end runs against a real daphne are in
tests/test_client.py."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
import websockets

from tests.services import free_port
from ws_gateway import client as client_module
from ws_gateway.client import Client

SID = "rt-1"


class ScriptedSocket:
    """Frames in from a queue, frames out recorded; ``answers[method]`` makes each request's reply."""

    def __init__(self, answers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] | None = None) -> None:
        self.answers = answers or {}
        self.sent: list[dict[str, Any]] = []
        self.inbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.close_code: int | None = 1000
        self.close_reason = "bye"

    async def send(self, text: str) -> None:
        frame = json.loads(text)
        self.sent.append(frame)
        answer = self.answers.get(frame["method"])
        if answer is not None:
            self.inbox.put_nowait(
                json.dumps({"jsonrpc": "2.0", "id": frame["id"], **answer(frame["params"])})
            )

    def push(self, *frames: Any) -> None:
        for frame in frames:
            self.inbox.put_nowait(json.dumps(frame))

    def event(self, type_: str, payload: dict[str, Any] | None = None, session_id: str = SID) -> None:
        self.push(
            {
                "jsonrpc": "2.0",
                "method": "event",
                "params": {"type": type_, "session_id": session_id, "payload": payload or {}},
            }
        )

    def close(self) -> None:
        self.inbox.put_nowait(None)

    def __aiter__(self) -> ScriptedSocket:
        return self

    async def __anext__(self) -> str:
        item = await self.inbox.get()
        if item is None:
            raise StopAsyncIteration
        return item

    def methods(self) -> list[str]:
        return [f["method"] for f in self.sent]


def ok(result: dict[str, Any] | None = None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda params: {"result": result if result is not None else {}}


async def new_client(ws: ScriptedSocket) -> tuple[Client, io.StringIO, asyncio.Task]:
    out = io.StringIO()
    client = Client(ws, out)
    client.session_id = SID
    return client, out, asyncio.create_task(client.read())


async def settle(client: Client, ws: ScriptedSocket) -> None:
    """Everything pushed so far has been routed (the reader drains the queue in order)."""
    for _ in range(10_000):  # bounded: the reader takes every queued frame in one loop turn
        if ws.inbox.empty():
            break
        await asyncio.sleep(0)  # polling interval: one loop turn
    assert ws.inbox.empty(), "the reader stopped taking frames"
    await asyncio.sleep(0)  # one more loop turn (a yield): the last frame is routed


@pytest.mark.parametrize(
    ("type_", "payload", "printed"),
    [
        ("message.delta", {"text": "hi"}, "hi"),
        ("reasoning.delta", {"text": "hmm"}, "hmm"),
        ("message.complete", {"status": "complete"}, "\n"),
        ("message.complete", {"status": "error", "error": "boom"}, "\n[error: boom]\n"),
        ("message.complete", {"status": "interrupted"}, "\n[interrupted]\n"),
        ("tool.start", {"name": "terminal", "context": "ls -l"}, "\n[terminal: ls -l]\n"),
        ("tool.start", {"name": "todo", "args": {"a": 1}}, "\n[todo: {'a': 1}]\n"),
        ("tool.start", {"name": "x"}, "\n[x: ]\n"),
        ("status.update", {"kind": "compress", "text": "done"}, "\n[compress: done]\n"),
        ("status.update", {"kind": "quiet"}, ""),
        ("error", {"message": "bad"}, "\n[error: bad]\n"),
        ("gateway.draining", {}, "\n[the server is restarting: reconnect with --resume]\n"),
        ("session.info", {"model": "m"}, ""),
    ],
)
async def test_what_each_event_prints(type_: str, payload: dict[str, Any], printed: str) -> None:
    ws = ScriptedSocket()
    client, out, reader = await new_client(ws)
    ws.event(type_, payload)
    ws.event("message.delta", {"text": "child"}, session_id="rt-child")  # another session: not shown
    await settle(client, ws)
    assert out.getvalue() == printed
    reader.cancel()


async def test_a_turn_start_and_end_flip_running() -> None:
    ws = ScriptedSocket()
    client, _, reader = await new_client(ws)
    ws.event("message.start")
    await settle(client, ws)
    assert client.running
    ws.event("message.complete", {"status": "complete"})
    await settle(client, ws)
    assert not client.running and client.changed.is_set()
    reader.cancel()


@pytest.mark.parametrize(
    ("kind", "payload", "shown"),
    [
        (
            "approval",
            {"command": "rm -rf x", "description": "recursive delete", "choices": ["once", "deny"]},
            "\napprove `rm -rf x` (recursive delete)? [o=once / d=deny]\n",
        ),
        (
            "approval",
            {"command": "c", "description": "d"},
            "\napprove `c` (d)? [o=once / s=session / a=always / d=deny]\n",
        ),
        (
            "clarify",
            {"question": "Which?", "choices": ["red", "blue"]},
            "\nWhich?\n  1. red\n  2. blue\n(answer with a number or text)\n",
        ),
        ("clarify", {"question": "Name?"}, "\nName?\n(answer with text)\n"),
        ("sudo", {}, "\nsudo password requested: press Enter, then type it (hidden; empty declines)\n"),
        (
            "secret",
            {"prompt": "API key"},
            "\nAPI key requested: press Enter, then type it (hidden; empty declines)\n",
        ),
    ],
)
async def test_prompts_are_shown_once(kind: str, payload: dict[str, Any], shown: str) -> None:
    ws = ScriptedSocket()
    client, out, reader = await new_client(ws)
    ws.event(f"{kind}.request", {"request_id": "r1", **payload})
    ws.event(f"{kind}.request", {"request_id": "r1", **payload})  # a replay: not shown twice
    ws.event(f"{kind}.request", payload)  # no request id: ignored
    await settle(client, ws)
    assert out.getvalue() == shown
    assert list(client.requests) == ["r1"]
    reader.cancel()


async def test_an_expired_prompt_is_forgotten_and_said_once() -> None:
    ws = ScriptedSocket()
    client, out, reader = await new_client(ws)
    ws.event("clarify.request", {"request_id": "r1", "question": "Q?"})
    ws.event("clarify.expire", {"request_id": "r1"})
    ws.event("sudo.expire", {"request_id": "unknown"})
    await settle(client, ws)
    assert out.getvalue().endswith("\n[the prompt expired]\n")
    assert out.getvalue().count("expired") == 1 and not client.requests
    reader.cancel()


@pytest.mark.parametrize(
    ("line", "choice"), [("s", "session"), ("Always", "always"), ("o", "once"), ("", "deny"), ("x", "deny")]
)
async def test_an_approval_is_answered_by_its_first_letter(line: str, choice: str) -> None:
    ws = ScriptedSocket({"approval.respond": ok()})
    client, out, reader = await new_client(ws)
    client.add_request("approval", {"request_id": "r1", "command": "c"})
    await client.answer(line)
    assert ws.sent[-1]["params"] == {"session_id": SID, "request_id": "r1", "choice": choice}
    assert out.getvalue().endswith(f"[{choice}]\n") and not client.requests
    reader.cancel()


@pytest.mark.parametrize(("line", "answer"), [("2", "blue"), ("3", "3"), ("0", "0"), (" green ", "green")])
async def test_a_clarify_is_answered_by_number_or_text(line: str, answer: str) -> None:
    ws = ScriptedSocket({"clarify.respond": ok()})
    client, _, reader = await new_client(ws)
    client.add_request("clarify", {"request_id": "r1", "question": "Q?", "choices": ["red", "blue"]})
    await client.answer(line)
    assert ws.sent[-1]["params"] == {"request_id": "r1", "answer": answer}
    reader.cancel()


@pytest.mark.parametrize(("kind", "field"), [("sudo", "password"), ("secret", "value")])
async def test_passwords_and_secrets_are_read_hidden(
    monkeypatch: pytest.MonkeyPatch, kind: str, field: str
) -> None:
    asked: list[str] = []
    monkeypatch.setattr(client_module.getpass, "getpass", lambda label: asked.append(label) or "s3cret")
    ws = ScriptedSocket({f"{kind}.respond": ok()})
    client, out, reader = await new_client(ws)
    client.add_request(kind, {"request_id": "r1", "prompt": "Token" if kind == "secret" else ""})
    await client.answer("")
    assert ws.sent[-1] == {
        "jsonrpc": "2.0",
        "id": 1,
        "method": f"{kind}.respond",
        "params": {"request_id": "r1", field: "s3cret"},
    }
    assert asked == ["Token: " if kind == "secret" else "sudo password: "]
    assert "s3cret" not in out.getvalue()
    reader.cancel()


async def test_an_error_answer_raises_with_code_and_message() -> None:
    ws = ScriptedSocket({"session.create": lambda p: {"error": {"code": 4090, "message": "limit"}}})
    client, _, reader = await new_client(ws)
    with pytest.raises(RuntimeError, match=r"^4090: limit$"):
        await client.open(None)
    reader.cancel()


async def test_a_call_on_a_closed_connection_fails_with_the_reason() -> None:
    ws = ScriptedSocket()
    client, _, reader = await new_client(ws)
    ws.close()
    await reader
    assert client.closed.result() == "closed (1000 bye)"
    with pytest.raises(ConnectionError, match=r"the connection closed: closed \(1000 bye\)"):
        await client.call("gateway.ping")


async def test_a_dropped_connection_ends_the_reader_with_the_reason() -> None:
    class Dropping(ScriptedSocket):
        async def __anext__(self) -> str:
            raise websockets.ConnectionClosed(None, None)

    client, _, reader = await new_client(Dropping())
    await reader
    assert client.closed.result().startswith("closed (")
    assert client.changed.is_set()


async def test_replies_in_a_batch_and_stray_replies_are_routed() -> None:
    ws = ScriptedSocket()
    client, _, reader = await new_client(ws)
    call = asyncio.create_task(client.call("gateway.ping"))
    await settle(client, ws)
    ws.push(
        [
            {"jsonrpc": "2.0", "id": 99, "result": {"stray": True}},  # nobody waits for it
            {"jsonrpc": "2.0", "id": 1, "result": None},
        ]
    )
    assert await asyncio.wait_for(call, 5) == {}
    reader.cancel()


async def test_resuming_shows_the_session_and_its_open_prompts() -> None:
    snapshot = {
        "session_id": "rt-9",
        "session_key": "20260101_000000_abcdef",
        "message_count": 4,
        "running": True,
        "open_requests": [{"kind": "clarify", "request_id": "r7", "question": "Still there?"}],
    }
    ws = ScriptedSocket({"session.resume": ok(snapshot)})
    client, out, reader = await new_client(ws)
    await client.open("20260101_000000_abcdef")
    assert client.session_id == "rt-9" and client.running
    assert (
        out.getvalue() == "resumed 20260101_000000_abcdef (4 messages)\n\nStill there?\n(answer with text)\n"
    )
    assert list(client.requests) == ["r7"]
    reader.cancel()


async def test_typed_lines_become_prompts_one_turn_at_a_time() -> None:
    ws = ScriptedSocket({"session.create": ok({"session_id": SID, "stored_session_id": "k1"})})

    def submit(params: dict[str, Any]) -> dict[str, Any]:
        # The turn streams and ends right after the prompt is accepted.
        ws.event("message.start")
        ws.event("message.delta", {"text": f"re: {params['text']}"})
        ws.event("message.complete", {"status": "complete"})
        return {"result": {"status": "streaming"}}

    ws.answers["prompt.submit"] = submit
    client, out, reader = await new_client(ws)
    await client.open(None)
    lines = iter(["first\n", "   \n", "second\n", ""])  # a blank line sends nothing; "" is the end
    await asyncio.wait_for(client.interact(lambda: next(lines)), 10)
    assert [f["params"].get("text") for f in ws.sent if f["method"] == "prompt.submit"] == ["first", "second"]
    assert "re: first\n" in out.getvalue() and "re: second\n" in out.getvalue()
    assert out.getvalue().startswith("session k1 (later: --resume k1; /help lists the commands)\n> ")
    reader.cancel()


async def test_end_of_input_leaves_and_an_interrupt_is_sent_only_while_running() -> None:
    ws = ScriptedSocket({"session.interrupt": ok()})
    client, out, reader = await new_client(ws)

    def eof() -> str:
        raise EOFError

    await asyncio.wait_for(client.interact(eof), 10)
    await client.interrupt()
    assert ws.methods() == []
    client.running = True
    await client.interrupt()
    assert ws.methods() == ["session.interrupt"] and "[interrupting]" in out.getvalue()
    reader.cancel()


def test_the_command_line_client_reports_an_unreachable_gateway(capsys: pytest.CaptureFixture[str]) -> None:
    assert client_module.main([f"ws://127.0.0.1:{free_port()}/api/ws"]) == 1
    assert capsys.readouterr().err.startswith("ws_gateway.client: ")
