"""What a backend sees during one turn: emit, read the transcript, check for interrupts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .. import ids, metrics
from ..errors import RpcError
from ..events.outbox import emit
from ..pacing import StreamPacer
from ..sessions import shapes, transcript
from ..sessions.live import LiveSession


class TurnFailed(Exception):
    """Raised by a backend to end the turn with ``message.complete {status: "error"}``."""


class TurnContext:
    """One turn of one session, driven from the turn's own thread."""

    def __init__(
        self,
        session: LiveSession,
        prompt: str,
        history: list[dict[str, Any]],
        observer: Callable[[str, dict[str, Any] | None], None] | None = None,
    ) -> None:
        self.session = session
        self.observer = observer  # sees every event of the turn (subagent reporting)
        self.prompt = prompt
        self.history = history  # transcript rows before this prompt's user row
        self.interrupt_event = threading.Event()
        self.reply_parts: list[str] = []
        self.reasoning_parts: list[str] = []
        self.usage_delta = {"input": 0, "output": 0, "reasoning": 0}
        self.tool_rows: list[dict[str, Any]] = []
        self._steers: list[str] = []
        # Images attached to this prompt ({name, mime, data, path}; image.attach).
        self.attachments: list[dict[str, Any]] = []
        # Commands a person approved during this turn (not asked twice).
        self.approved_commands: set[str] = set()
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self._first_token = True
        self._pacer = StreamPacer()

    # -- state -----------------------------------------------------------

    @property
    def interrupted(self) -> bool:
        return self.interrupt_event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when interrupted meanwhile."""
        return self.interrupt_event.wait(max(0.0, seconds))

    def touch(self) -> None:
        self.session.last_activity = time.monotonic()

    @property
    def text(self) -> str:
        return "".join(self.reply_parts)

    def inflight(self) -> dict[str, Any]:
        return {"user": self.prompt, "assistant": self.text, "streaming": True}

    # -- output ----------------------------------------------------------

    def emit(self, type_: str, payload: dict[str, Any] | None = None) -> None:
        self.touch()
        emit(self.session.id, type_, payload)
        if self.observer is not None:
            self.observer(type_, payload)

    def delta(self, text: str) -> None:
        if text:
            if self._first_token:
                self._first_token = False
                metrics.first_token.observe(time.monotonic() - self.started)
            else:
                self._pacer.pace()  # the first token never waits
            self.reply_parts.append(text)
            self.emit("message.delta", {"text": text})

    def reasoning(self, text: str) -> None:
        if text:
            self.reasoning_parts.append(text)
            self.emit("reasoning.delta", {"text": text})

    def status(self, kind: str, text: str) -> None:
        self.emit("status.update", {"kind": kind, "text": text})

    def usage(self, input_tokens: int = 0, output_tokens: int = 0, reasoning_tokens: int = 0) -> None:
        """Report token usage; adds to the session's totals and emits ``session.usage``."""
        live = self.session
        with live.lock:
            for name, value in (
                ("input", input_tokens),
                ("output", output_tokens),
                ("reasoning", reasoning_tokens),
            ):
                self.usage_delta[name] += value
                live.usage[name] = live.usage.get(name, 0) + value
        self.emit("session.usage", {"usage": shapes.usage(live)})

    def tool_generating(self, name: str) -> None:
        self.emit("tool.generating", {"name": name})

    def tool_start(
        self, name: str, args: dict[str, Any], context: str = "", fields: dict[str, Any] | None = None
    ) -> str:
        tool_id = f"tool_{ids.request_id()}"
        payload = {"tool_id": tool_id, "name": name, "args": args, "context": context, **(fields or {})}
        self.emit("tool.start", payload)
        return tool_id

    def tool_complete(
        self,
        tool_id: str,
        name: str,
        args: dict[str, Any],
        result: str,
        duration_s: float,
        summary: str | None = None,
        context: str = "",
        *,
        data: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
    ) -> None:
        payload: dict[str, Any] = {
            "tool_id": tool_id,
            "name": name,
            "args": args,
            "result": result if data is None else data,
            "duration_s": round(duration_s, 3),
            **(fields or {}),
        }
        if summary:
            payload["summary"] = summary
        self.emit("tool.complete", payload)
        row = {"role": "tool", "name": name, "args": args, "text": result, "timestamp": time.time()}
        if context:
            row["context"] = context
        transcript.record(self.session, [row])

    def set_title(self, title: str) -> None:
        try:
            transcript.set_title(self.session, title)
        except RpcError as exc:  # a title that cannot be stored: the turn says why
            raise TurnFailed(exc.message) from None

    # -- steering --------------------------------------------------------

    def steer(self, text: str) -> None:
        with self._lock:
            self._steers.append(text)

    def take_steers(self) -> list[str]:
        """Guidance sent with ``session.steer`` since the last call."""
        with self._lock:
            out, self._steers = self._steers, []
        return out
