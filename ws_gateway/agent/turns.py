"""The turn lifecycle: submit, run on the turn's own thread, interrupt, queue, steer, rewind, undo.

A turn emits ``message.start``, whatever the backend streams, exactly one
``message.complete`` (complete, error or interrupted), then ``session.info``.
The user row is stored when the turn starts; tool rows as tools complete; the
assistant row (what was said, also when interrupted) when the turn ends.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

from django import db

from .. import framing, logs, metrics, workers
from ..conf import gateway_settings
from ..errors import (
    AGENT_BUILD_FAILED,
    BAD_VALUE,
    BUSY,
    EMPTY_COMMAND,
    REWIND_EMPTIES,
    REWIND_NEEDS_CONFIRM,
    REWIND_ORDINAL_MISMATCH,
    RpcError,
)
from ..events.outbox import emit
from ..sessions import shapes, transcript
from ..sessions.live import LiveSession
from .base import Agent
from .context import TurnContext, TurnFailed
from .pending import pending

log = logging.getLogger(__name__)

BUSY_MODES = ("interrupt", "queue", "steer")
MAX_SUBMISSION_REFS = 256
AUTO_TITLE_CHARS = 60


def busy_mode(live: LiveSession) -> str:
    return str(live.config.get("busy_input_mode", "interrupt"))


def submit(
    live: LiveSession,
    text: str,
    *,
    submission_ref: str | None = None,
    queued: bool = False,
    truncate_before: int | None = None,
    confirm_truncate: bool = False,
    confirm_empty: bool = False,
) -> dict[str, Any]:
    """``prompt.submit``: start a turn, or queue / steer / redirect when one runs."""
    check_prompt(text)
    with live.lock:
        if submission_ref is not None and submission_ref in live.submissions:
            return live.submissions[submission_ref]
        if live.watch_locked:
            raise RpcError(BUSY, "session busy: its subagent turn is running")
        if live.build_error is not None:
            raise RpcError(AGENT_BUILD_FAILED, live.build_error)
        if truncate_before is not None:
            rewind(live, truncate_before, confirm_truncate, confirm_empty)
        if not live.running:
            result = {"status": "streaming"}
            start(live, text)
        else:
            mode = "queue" if queued or live.turn is None else busy_mode(live)
            if mode == "steer" and live.turn is not None:  # "queue" when no turn context
                live.turn.steer(text)
                result = {"status": "steered"}
            elif mode == "queue":
                live.queue.append(text)
                result = {"status": "queued"}
            else:
                _interrupt_locked(live)
                live.queue.append(text)
                result = {"status": "redirected"}
        if submission_ref is not None:
            live.submissions[submission_ref] = result
            while len(live.submissions) > MAX_SUBMISSION_REFS:
                live.submissions.popitem(last=False)
    return result


def rewind(live: LiveSession, ordinal: int, confirm: bool, confirm_empty: bool) -> None:
    """Drop user row ``ordinal`` (0-based among user rows) and everything after it."""
    if isinstance(ordinal, bool) or not isinstance(ordinal, int) or ordinal < 0:
        raise RpcError(EMPTY_COMMAND, "truncate_before_user_ordinal must be a non-negative integer")
    if live.running:
        raise RpcError(BUSY, "session busy")
    if not confirm:
        raise RpcError(REWIND_NEEDS_CONFIRM, "rewind needs confirm_truncate")
    user_rows = [i for i, m in enumerate(live.messages) if m["role"] == "user"]
    if ordinal >= len(user_rows):
        raise RpcError(REWIND_ORDINAL_MISMATCH, f"no user message at ordinal {ordinal}")
    keep = user_rows[ordinal]
    if keep == 0 and not confirm_empty:
        raise RpcError(REWIND_EMPTIES, "rewind would empty the transcript (confirm_empty_truncate)")
    transcript.truncate(live, keep)


def undo(live: LiveSession) -> int:
    """Drop the last exchange (the last user row and what followed it)."""
    with live.lock:
        if live.running:
            raise RpcError(BUSY, "session busy")
        user_rows = [i for i, m in enumerate(live.messages) if m["role"] == "user"]
        if not user_rows:
            return 0
        return transcript.truncate(live, user_rows[-1])


def interrupt(live: LiveSession) -> bool:
    """Stop the running turn cooperatively and clear queued prompts."""
    with live.lock:
        live.queue.clear()
        return _interrupt_locked(live)


def stop_session_work(sender: Any, live: LiveSession, **kwargs: Any) -> None:
    """``session_stopping``: release its requests, interrupt its turn (a moment to store what it said)."""
    pending.release(live, "session_closed")
    if interrupt(live):
        live.idle.wait(gateway_settings.CLOSE_WAIT_S)


def _interrupt_locked(live: LiveSession) -> bool:
    if not live.running or live.turn is None:
        return False
    live.turn.interrupt_event.set()
    pending.release(live, "interrupted")
    return True


def check_prompt(text: str) -> None:
    """4002 for a blank prompt or one over MAX_PROMPT_BYTES, before anything is stored."""
    if not text.strip():
        raise RpcError(BAD_VALUE, "text required")
    limit = gateway_settings.MAX_PROMPT_BYTES
    if not framing.fits(text, limit):
        size = framing.utf8_len(text)
        raise RpcError(
            BAD_VALUE, f"prompt too large: {size} bytes (limit {limit})", {"bytes": size, "limit": limit}
        )


def steer(live: LiveSession, text: str) -> str:
    """``session.steer``: guidance into the running turn, else a queued prompt."""
    check_prompt(text)
    with live.lock:
        if live.running and live.turn is not None:
            live.turn.steer(text)
            return "steered"
        start(live, text)
        return "queued"


def start(live: LiveSession, text: str, observer: Any = None) -> None:
    """Store the prompt, then start its turn thread (caller holds ``live.lock``; no turn runs)."""
    history = list(live.messages)
    title = "" if live.title else auto_title(text)
    if title and not live.stored:
        live.title = title  # stored with the session's first row, in the same write as the prompt
    try:
        transcript.record(live, [{"role": "user", "text": text, "timestamp": time.time()}])
    except BaseException:
        if title and live.title == title and not live.stored:
            live.title = ""
        raise
    if title:
        transcript.set_title(live, title, stored=live.title == title)
    ctx = TurnContext(live, text, history, observer)
    ctx.attachments, live.attachments = live.attachments, []
    live.turn = ctx
    live.running = True
    live.idle.clear()
    live.touch()
    workers.spawn(_run, live, ctx, name=f"gw-turn-{live.id}")


def _run(live: LiveSession, ctx: TurnContext) -> None:
    try:
        with logs.bound(session=live.id):
            _run_turn(live, ctx)
    finally:
        db.connections.close_all()  # this thread's own connections


def _run_turn(live: LiveSession, ctx: TurnContext) -> None:
    status, error = "complete", None
    emit(live.id, "message.start")
    try:
        agent = _agent(live)
        agent.run_turn(ctx)
        if ctx.interrupted:
            status = "interrupted"
    except TurnFailed as exc:
        status, error = "error", str(exc)
    except Exception as exc:
        log.exception("turn crashed session=%s", live.id)
        status, error = "error", f"{exc.__class__.__name__}: {exc}"
    finally:
        if error is not None:
            _say_error(ctx, error)
        _finish(live, ctx, status, error)


def _say_error(ctx: TurnContext, error: str) -> None:
    """A failed turn's reason as the last visible part: hermes clients render only ``text``."""
    text = ctx.text
    ctx.delta(("\n" if text and not text.endswith("\n") else "") + f"Error: {error}")


def _agent(live: LiveSession) -> Agent:
    if not live.built.wait(gateway_settings.AGENT_BUILD_TIMEOUT_S):
        raise TurnFailed("agent initialization timed out")
    if live.agent is None:
        raise TurnFailed(live.build_error or "agent unavailable")
    return cast(Agent, live.agent)  # built by agent.base.build: an Agent


def _finish(live: LiveSession, ctx: TurnContext, status: str, error: str | None) -> None:
    if status == "complete" and ctx.interrupted:
        status = "interrupted"
    reply = ctx.text
    row: dict[str, Any] = {"role": "assistant", "text": reply, "timestamp": time.time()}
    if ctx.reasoning_parts:
        row["reasoning"] = "".join(ctx.reasoning_parts)
    try:
        transcript.record(live, [row])
    except Exception:
        log.exception("could not store the reply session=%s", live.id)
    with live.lock:
        live.usage["calls"] = live.usage.get("calls", 0) + 1
    payload: dict[str, Any] = {"text": reply, "usage": shapes.usage(live), "status": status}
    if error is not None:
        payload["error"] = error
    if ctx.reasoning_parts:
        payload["reasoning"] = row["reasoning"]
    emit(live.id, "message.complete", payload)
    metrics.turn_duration.labels(status).observe(time.monotonic() - ctx.started)
    with live.lock:
        live.config["last_status"] = status
        live.turn = None
        live.touch()
        next_text = live.queue.popleft() if live.queue and not live.ended else None
        if next_text is None:
            live.running = False
            live.idle.set()
    emit(live.id, "session.info", shapes.info(live))
    if next_text is not None:
        with live.lock:
            live.running = False
            try:
                start(live, next_text)
            except Exception:
                log.exception("could not start the queued prompt session=%s", live.id)
                live.idle.set()


def auto_title(prompt: str) -> str:
    """A title from the first prompt: its text lines (directives when there is no text), shortened."""
    lines = [line.strip() for line in prompt.splitlines() if line.strip()]
    text_lines = [line for line in lines if not line.startswith("!")] or lines
    return " ".join(" ".join(text_lines).split())[:AUTO_TITLE_CHARS]
