"""A small terminal client for the gateway, shipped with the app:

    python -m ws_gateway.client ws://127.0.0.1:8000/api/ws [--token gwt_...] [--resume STORED_ID]

Connects, creates a session (or resumes a stored one), then reads prompts from
stdin line by line and prints the streamed reply. Approval, clarify, sudo and
secret prompts are shown as they come and answered from stdin (passwords and
secrets with ``getpass``, never echoed). Ctrl-C stops a running turn
(``session.interrupt``); at the prompt, Ctrl-C or end of input leaves.

It needs only the ``websockets`` package (a dependency of the app), not Django.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import itertools
import json
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import websockets

APPROVAL_KEYS = {"o": "once", "s": "session", "a": "always", "d": "deny"}


def _in_thread(fn: Callable[[], str]) -> asyncio.Future[Any]:
    """Run a blocking read on a daemon thread (one that never keeps the process alive at exit)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def run() -> None:
        try:
            result: Any = fn()
        except BaseException as exc:  # EOF, a closed terminal: handed to the awaiting side
            loop.call_soon_threadsafe(_settle, future, None, exc)
            return
        loop.call_soon_threadsafe(_settle, future, result, None)

    threading.Thread(target=run, daemon=True).start()
    return future


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


class Client:
    """One socket, one session: JSON-RPC calls matched by id, events printed as they arrive."""

    def __init__(self, ws: Any, out: Any = sys.stdout) -> None:
        self.ws = ws
        self.out = out
        self.session_id = ""
        self.ids = itertools.count(1)
        self.calls: dict[int, asyncio.Future[Any]] = {}
        self.requests: dict[str, dict[str, Any]] = {}  # open prompts by request_id, oldest first
        self.running = False
        self.changed = asyncio.Event()  # a turn ended or a prompt arrived
        self.closed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    # -- the wire ---------------------------------------------------------

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a request and wait for its result (an error answer raises RuntimeError)."""
        call_id = next(self.ids)
        future = self.calls[call_id] = asyncio.get_running_loop().create_future()
        await self.ws.send(json.dumps({"jsonrpc": "2.0", "id": call_id, "method": method, "params": params}))
        done, _ = await asyncio.wait([future, self.closed], return_when=asyncio.FIRST_COMPLETED)
        if future not in done:
            raise ConnectionError(f"the connection closed: {self.closed.result()}")
        result: dict[str, Any] = future.result()
        return result

    async def read(self) -> None:
        """Route every frame: responses to their calls, events to :meth:`on_event`."""
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                for item in frame if isinstance(frame, list) else [frame]:
                    self.route(item)
            reason = f"closed ({self.ws.close_code} {self.ws.close_reason or ''})".strip()
        except websockets.ConnectionClosed as exc:
            reason = f"closed ({exc})"
        if not self.closed.done():
            self.closed.set_result(reason)
        self.changed.set()

    def route(self, item: dict[str, Any]) -> None:
        if item.get("method") == "event":
            self.on_event(item.get("params") or {})
            return
        future = self.calls.pop(item.get("id"), None)  # type: ignore[arg-type]
        if future is None or future.done():
            return
        if "error" in item:
            error = item["error"]
            future.set_exception(RuntimeError(f"{error.get('code')}: {error.get('message')}"))
        else:
            future.set_result(item.get("result") or {})

    # -- what arrives -----------------------------------------------------

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def on_event(self, event: dict[str, Any]) -> None:
        kind, payload = event.get("type", ""), event.get("payload") or {}
        if event.get("session_id") not in ("", self.session_id):
            return  # another session of this socket (a subagent child)
        if kind in ("message.delta", "reasoning.delta", "thinking.delta"):
            self.write(payload.get("text", ""))
        elif kind == "message.start":
            self.running = True
        elif kind == "message.complete":
            status = payload.get("status")
            self.write(
                "\n"
                if status == "complete"
                else f"\n[{status}{': ' + payload['error'] if payload.get('error') else ''}]\n"
            )
            self.running = False
            self.changed.set()
        elif kind == "tool.start":
            self.write(f"\n[{payload.get('name')}: {payload.get('context') or payload.get('args') or ''}]\n")
        elif kind == "status.update" and payload.get("text"):
            self.write(f"\n[{payload.get('kind')}: {payload['text']}]\n")
        elif kind in ("approval.request", "clarify.request", "sudo.request", "secret.request"):
            self.add_request(kind.split(".")[0], payload)
        elif kind in ("clarify.expire", "sudo.expire", "secret.expire"):
            if self.requests.pop(payload.get("request_id", ""), None) is not None:
                self.write("\n[the prompt expired]\n")
        elif kind == "error":
            self.write(f"\n[error: {payload.get('message')}]\n")
        elif kind == "gateway.draining":
            self.write("\n[the server is restarting: reconnect with --resume]\n")

    def add_request(self, kind: str, payload: dict[str, Any]) -> None:
        request_id = payload.get("request_id")
        if not request_id or request_id in self.requests:
            return
        self.requests[request_id] = {"kind": kind, **payload}
        if kind == "approval":
            text = f"\napprove `{payload.get('command')}` ({payload.get('description')})?"
            keys = [c for c in payload.get("choices") or APPROVAL_KEYS.values()]
            self.write(f"{text} [{' / '.join(f'{c[0]}={c}' for c in keys)}]\n")
        elif kind == "clarify":
            choices = payload.get("choices") or []
            listed = "".join(f"\n  {n}. {c}" for n, c in enumerate(choices, 1))
            how = "a number or text" if choices else "text"
            self.write(f"\n{payload.get('question')}{listed}\n(answer with {how})\n")
        else:
            what = payload.get("prompt") or "sudo password"
            self.write(f"\n{what} requested: press Enter, then type it (hidden; empty declines)\n")
        self.changed.set()

    # -- what is typed ------------------------------------------------------

    async def answer(self, line: str) -> None:
        """Answer the oldest open prompt with ``line`` (a getpass for sudo and secret)."""
        request_id, request = next(iter(self.requests.items()))
        kind = request["kind"]
        if kind == "approval":
            choice = APPROVAL_KEYS.get(line.strip().lower()[:1], "deny") if line.strip() else "deny"
            await self.call(
                "approval.respond", session_id=self.session_id, request_id=request_id, choice=choice
            )
            self.write(f"[{choice}]\n")
        elif kind == "clarify":
            choices = request.get("choices") or []
            text = line.strip()
            if text.isdigit() and 1 <= int(text) <= len(choices):
                text = choices[int(text) - 1]
            await self.call("clarify.respond", request_id=request_id, answer=text)
        else:
            label = f"{request.get('prompt') or 'sudo password'}: "
            value = await _in_thread(lambda: getpass.getpass(label))
            params = {"password": value} if kind == "sudo" else {"value": value}
            await self.call(f"{kind}.respond", request_id=request_id, **params)
        self.requests.pop(request_id, None)

    async def open(self, resume: str | None) -> None:
        if resume:
            snapshot = await self.call("session.resume", session_id=resume)
            self.session_id = snapshot["session_id"]
            self.running = bool(snapshot.get("running"))
            self.write(f"resumed {snapshot.get('session_key')} ({snapshot.get('message_count')} messages)\n")
            for request in snapshot.get("open_requests") or []:
                self.add_request(request.get("kind", ""), request)
        else:
            created = await self.call("session.create")
            self.session_id = created["session_id"]
            key = created.get("stored_session_id")
            self.write(f"session {key} (later: --resume {key}; /help lists the commands)\n")

    async def interact(self, read_line: Callable[[], str]) -> None:
        """Prompts and answers from ``read_line`` until end of input or a closed connection.

        A line is read only when the session is idle or a prompt waits for an answer, so typed
        (or piped) prompts run one after the other."""
        while not self.closed.done():
            if self.running and not self.requests:
                self.changed.clear()
                await self.changed.wait()
                continue
            if not self.requests:
                self.write("> ")
            try:
                line = await _in_thread(read_line)
            except EOFError:
                return
            if not line:  # end of input
                return
            line = line.rstrip("\n")
            if self.requests:
                await self.answer(line)
            elif line.strip():
                self.running = True
                await self.call("prompt.submit", session_id=self.session_id, text=line)

    async def interrupt(self) -> None:
        if self.running:
            self.write("\n[interrupting]\n")
            await self.call("session.interrupt", session_id=self.session_id)


async def run(url: str, token: str | None, resume: str | None, read_line: Callable[[], str]) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
        ready = json.loads(await ws.recv())
        server = (ready.get("params", {}).get("payload") or {}).get("server") or {}
        client = Client(ws)
        client.write(f"connected to {server.get('name', 'gateway')} {server.get('version', '')} at {url}\n")
        reader = asyncio.create_task(client.read())
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        interrupts: set[asyncio.Task[Any]] = set()

        def on_sigint() -> None:
            if client.running:
                task = loop.create_task(client.interrupt())
                interrupts.add(task)
                task.add_done_callback(interrupts.discard)
            elif main is not None:
                main.cancel()

        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        try:
            await client.open(resume)
            await client.interact(read_line)
        except asyncio.CancelledError:
            client.write("\n")
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            reader.cancel()
        if client.closed.done():
            client.write(f"[{client.closed.result()}]\n")
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ws_gateway.client", description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the gateway's socket, e.g. ws://127.0.0.1:8000/api/ws")
    parser.add_argument("--token", help="a bearer token (manage.py gateway_token USER)")
    parser.add_argument("--resume", metavar="ID", help="a stored session id (or exact title) to resume")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run(args.url, args.token, args.resume, sys.stdin.readline))
    except (OSError, websockets.InvalidHandshake, websockets.ConnectionClosed, RuntimeError) as exc:
        print(f"ws_gateway.client: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
