"""A fake OpenAI-compatible chat-completions server on loopback, speaking real HTTP/1.1 + SSE.

Only the standard library. ``POST /v1/chat/completions`` with ``stream: true``
answers ``text/event-stream`` (chunked transfer encoding, as vLLM, llama.cpp
and Ollama do): ``data: {chat.completion.chunk}`` events, then ``data: [DONE]``.
With ``stream_options.include_usage`` a last chunk carries ``usage`` and no
choices.

The reply is scripted by the last user message (the "script"):

- ``say: hello world``: streams ``hello``, `` world``.
- ``think: X``: ``reasoning_content`` deltas (X word by word), then ``done``.
- ``reason: X``: the same with the ``reasoning`` field (Ollama / OpenRouter style).
- ``tool: NAME ARGS``: a tool call (ARGS: a JSON object, or for terminal the
  command), id and name first, the arguments split over several chunks. Once a
  ``role: tool`` result follows the user message: ``Tool NAME returned: RESULT``.
- ``tools: CMD1 ;; CMD2``: two terminal calls in one response (interleaved
  fragments), then ``Tool results: R1 | R2``.
- ``badjson``: a terminal call whose arguments are not valid JSON, then the results.
- ``loop``: a terminal call (``echo loop``) every time, whatever came back.
- ``error: CODE``: HTTP CODE with a JSON error body (401 echoes the presented key).
- ``drop``: a few chunks, then the connection closes mid-body (no last chunk, no [DONE]).
- ``truncate``: a few chunks, then the body ends cleanly without finish_reason or [DONE].
- ``slow: N``: N tokens ``t1 `` ... ``tN``, 20 ms apart; stops when the client goes away.
- ``gate: NAME``: ``before``, then waits for :meth:`FakeOpenAI.release` (NAME), then `` after``.
- ``stall``: one token, then nothing until the server stops (read timeouts).
- anything else: ``You said: TEXT`` word by word.

Every request (GET too) is recorded (:attr:`FakeOpenAI.requests`), and so is every
stream whose client went away before it ended (:attr:`FakeOpenAI.disconnects`).
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN_DELAY_S = 0.02


class ClientGone(Exception):
    """The client closed the connection while we were streaming."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients drop connections (a closed stream, an interrupt): not worth a traceback.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class FakeOpenAI:
    """Start with :meth:`start` (or as a context manager); ``url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.disconnects: list[str] = []
        self.stopping = threading.Event()
        self._gates: dict[str, threading.Event] = {}
        self._changed = threading.Condition()
        self._ids = itertools.count(1)
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        with self._changed:
            for gate in self._gates.values():
                gate.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- for tests -----------------------------------------------------

    def chat_bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of every chat-completions request, in arrival order."""
        with self._changed:
            return [r["body"] for r in self.requests if r["path"].endswith("/chat/completions")]

    def bodies_for(self, script: str) -> list[dict[str, Any]]:
        """Requests whose script (first user message of the turn's exchange) is ``script``."""
        return [b for b in self.chat_bodies() if last_user_text(b.get("messages", [])) == script]

    def release(self, name: str) -> None:
        self.gate(name).set()

    def gate(self, name: str) -> threading.Event:
        with self._changed:
            return self._gates.setdefault(name, threading.Event())

    def wait_until(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Block until ``predicate()`` is truthy (re-checked on every request / disconnect)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"fake OpenAI server: condition not met within {timeout}s")
                self._changed.wait(left)

    # -- for the handler -----------------------------------------------

    def record(self, path: str, headers: dict[str, str], body: Any) -> None:
        with self._changed:
            self.requests.append({"path": path, "headers": headers, "body": body})
            self._changed.notify_all()

    def record_disconnect(self, script: str) -> None:
        with self._changed:
            self.disconnects.append(script)
            self._changed.notify_all()

    def next_id(self) -> str:
        return f"chatcmpl-fake{next(self._ids)}"


def content_text(content: Any) -> str:
    """A message's text, whether ``content`` is a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content")).strip()
    return ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOpenAI/1.0"

    @property
    def fake(self) -> FakeOpenAI:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.fake.record(self.path, {k.lower(): v for k, v in self.headers.items()}, None)
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
        else:
            self._error(404, f"no route for GET {self.path}")

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        self.fake.record(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            return self._error(404, f"no route for POST {self.path}")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return self._error(400, "body must be a JSON object with messages")
        if not body.get("stream"):
            return self._error(400, "the fake server only streams (stream: true)")
        _Turn(self, body).run()

    # -- plain responses -----------------------------------------------

    def _json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": {"message": message, "type": "fake_error", "code": status}})


class _Turn:
    """One streamed answer."""

    def __init__(self, handler: _Handler, body: dict[str, Any]) -> None:
        self.h = handler
        self.body = body
        self.messages: list[dict[str, Any]] = body["messages"]
        self.script = last_user_text(self.messages)
        users = [i for i, m in enumerate(self.messages) if m.get("role") == "user"]
        last_user = users[-1] if users else -1
        self.tool_results = [m for m in self.messages[last_user + 1 :] if m.get("role") == "tool"]
        self.id = handler.fake.next_id()
        self.model = body.get("model", "fake-model")
        self.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self.completion_tokens = 0
        self.reasoning_tokens = 0
        self.started = False

    # -- wire ------------------------------------------------------------

    def start(self) -> None:
        h = self.h
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        self.started = True
        self.chunk({"role": "assistant", "content": ""}, count=False)

    def write(self, data: bytes) -> None:
        try:
            self.h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ClientGone from exc

    def event(self, obj: Any) -> None:
        payload = obj if isinstance(obj, str) else json.dumps(obj)
        self.write(f"data: {payload}\n\n".encode())

    def chunk(self, delta: dict[str, Any], finish: str | None = None, count: bool = True) -> None:
        if count:
            self.completion_tokens += 1
        self.event(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": self.model,
                "system_fingerprint": "fake",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
        )

    def finish(self, reason: str = "stop") -> None:
        self.chunk({}, reason, count=False)
        if self.include_usage:
            prompt_tokens = sum(len(content_text(m.get("content")).split()) for m in self.messages)
            self.event(
                {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": self.model,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": self.completion_tokens,
                        "total_tokens": prompt_tokens + self.completion_tokens,
                        "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
                    },
                }
            )
        self.event("[DONE]")
        self.end_body()

    def end_body(self) -> None:
        """The zero-length chunk that ends a chunked body."""
        try:
            self.h.wfile.write(b"0\r\n\r\n")
            self.h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ClientGone from exc

    def words(self, text: str, field: str = "content", delay_s: float = 0.0) -> None:
        for i, word in enumerate(text.split()):
            if i and delay_s:
                time.sleep(delay_s)
            if field != "content":
                self.reasoning_tokens += 1
            self.chunk({field: word if i == 0 else " " + word})

    def tool_calls(self, calls: list[tuple[str, str]]) -> None:
        """Stream tool calls as OpenAI does: id + name first, then the arguments in pieces."""
        for index, (name, _) in enumerate(calls):
            self.chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": f"call_{self.id}_{index}",
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    ]
                }
            )
        pieces = [[args[i : i + 7] for i in range(0, len(args), 7)] for _, args in calls]
        for step in range(max(len(p) for p in pieces)):
            for index, parts in enumerate(pieces):  # interleaved when there are several calls
                if step < len(parts):
                    self.chunk({"tool_calls": [{"index": index, "function": {"arguments": parts[step]}}]})
        self.finish("tool_calls")

    # -- scripts -----------------------------------------------------------

    def run(self) -> None:
        verb, _, arg = self.script.partition(":")
        verb, arg = verb.strip().lower(), arg.strip()
        try:
            if verb == "error":
                return self.error(int(arg or 500))
            self.start()
            handler = getattr(self, f"s_{verb}", None)
            if handler is None or (":" not in self.script and verb not in NO_ARG_SCRIPTS):
                self.words(f"You said: {self.script}")
                self.finish()
            else:
                handler(arg)
        except ClientGone:
            self.h.fake.record_disconnect(self.script)
            self.h.close_connection = True

    def error(self, status: int) -> None:
        message = f"fake failure {status}"
        if status == 401:
            auth = self.h.headers.get("Authorization", "")
            message = f"Incorrect API key provided: {auth.removeprefix('Bearer ')}"
        self.h._error(status, message)

    def s_say(self, arg: str) -> None:
        self.words(arg)
        self.finish()

    def s_think(self, arg: str, field: str = "reasoning_content") -> None:
        self.words(arg, field)
        self.words("done")
        self.finish()

    def s_reason(self, arg: str) -> None:
        self.s_think(arg, "reasoning")

    def answer_results(self) -> None:
        results = [content_text(m.get("content")).strip() for m in self.tool_results]
        self.words("Tool results:")
        self.chunk({"content": " " + " | ".join(results)})
        self.finish()

    def s_tool(self, arg: str) -> None:
        if self.tool_results:
            name = arg.split()[0] if arg else ""
            results = " | ".join(content_text(m.get("content")).strip() for m in self.tool_results)
            self.words(f"Tool {name} returned:")
            self.chunk({"content": " " + results})
            return self.finish()
        name, _, rest = arg.partition(" ")
        rest = rest.strip()
        args = rest if rest.startswith("{") else json.dumps({"command": rest})
        self.tool_calls([(name, args)])

    def s_tools(self, arg: str) -> None:
        if self.tool_results:
            return self.answer_results()
        commands = [c.strip() for c in arg.split(";;") if c.strip()]
        self.tool_calls([("terminal", json.dumps({"command": c})) for c in commands])

    def s_badjson(self, arg: str) -> None:
        if self.tool_results:
            return self.answer_results()
        self.tool_calls([("terminal", '{"command": "echo hi"')])

    def s_loop(self, arg: str) -> None:
        self.tool_calls([("terminal", json.dumps({"command": "echo loop"}))])

    def s_drop(self, arg: str) -> None:
        self.words("partial answer then")
        self.h.wfile.flush()
        self.h.close_connection = True  # the socket closes mid-body: no last chunk, no [DONE]

    def s_truncate(self, arg: str) -> None:
        self.words("partial answer")
        self.end_body()  # a clean end of the body, but no finish_reason and no [DONE]

    def s_slow(self, arg: str) -> None:
        n = int(arg or 10)
        for i in range(1, n + 1):
            if i > 1:
                time.sleep(TOKEN_DELAY_S)
            if self.h.fake.stopping.is_set():
                return
            self.chunk({"content": f"t{i}" if i == n else f"t{i} "})
        self.finish()

    def s_gate(self, arg: str) -> None:
        self.words("before")
        self.h.fake.gate(arg).wait(30)
        self.chunk({"content": " after"})
        self.finish()

    def s_stall(self, arg: str) -> None:
        self.words("waiting")
        self.h.fake.stopping.wait(60)
        self.h.close_connection = True


NO_ARG_SCRIPTS = ("badjson", "loop", "drop", "truncate", "stall")
