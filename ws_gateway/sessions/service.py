"""Live-session lifecycle: create, attach, resume, close, teardown, disconnect.

Called from worker threads (RPC handlers, timers). Events go out through the
outbox; the database is touched through :mod:`.store`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

from .. import framing, ids, workers
from ..agent.base import load_backend
from ..conf import gateway_settings
from ..models import StoredSession
from ..outbox import outbox
from ..rpc.call import Call
from ..rpc.errors import (
    AGENT_BUILD_FAILED,
    AGENT_FAILURE,
    BAD_VALUE,
    LIVE_LIMIT,
    SESSION_NOT_FOUND,
    SESSION_NOT_LIVE,
    TRANSCRIPT_TOO_LARGE,
    RpcError,
)
from . import paging, store
from .live import BUILDING, RUNNING, LiveSession
from .registry import registry

log = logging.getLogger(__name__)

ROLES = ("user", "assistant", "tool")
MAX_TITLE_CHARS = StoredSession._meta.get_field("title").max_length
# The live status words the hermes clients render (PROTOCOL.md section 5).
WIRE_STATUS = {BUILDING: "starting", RUNNING: "working"}


# -- lookups ----------------------------------------------------------------


def find_live(session_id: str, user_id: int | None) -> LiveSession | None:
    """The live session the caller may use, else None."""
    live = registry.get(session_id)
    if live is None or live.ended or live.owner_id != user_id:
        return None
    return live


def get_live(session_id: str, user_id: int | None) -> LiveSession:
    """The live session the caller may use, else 4001 (another user's looks missing)."""
    live = registry.get(session_id)
    if live is None or live.ended or live.owner_id != user_id:
        raise RpcError(SESSION_NOT_LIVE, "session not found")
    return live


# -- shapes -----------------------------------------------------------------


def usage(live: LiveSession) -> dict[str, Any]:
    counts = live.usage
    return {
        "model": live.model,
        "input": counts.get("input", 0),
        "output": counts.get("output", 0),
        "reasoning": counts.get("reasoning", 0),
        "prompt": counts.get("input", 0),
        "completion": counts.get("output", 0),
        "total": counts.get("input", 0) + counts.get("output", 0),
        "calls": counts.get("calls", 0),
    }


def info(live: LiveSession) -> dict[str, Any]:
    """The ``info`` object of replies and ``session.info`` events."""
    from .. import __version__

    agent = live.agent
    out: dict[str, Any] = {
        "model": live.model,
        "provider": live.config.get("backend", gateway_settings.AGENT),
        "tools": agent.tools() if agent is not None else {},
        "skills": {},
        "cwd": live.cwd,
        "title": live.title,
        "stored_session_id": live.key,
        "running": live.running,
        "approval_mode": live.config.get("approval_mode", "manual"),
        "busy_input_mode": live.config.get("busy_input_mode", "interrupt"),
        "usage": usage(live),
        "version": __version__,
    }
    if agent is None:
        out["lazy"] = True
    return out


def wire_status(live: LiveSession) -> str:
    if live.running and live.open_requests > 0:
        return "waiting"
    return WIRE_STATUS.get(live.status, "idle")


def snapshot(
    live: LiveSession, *, omit_messages: bool = False, before: int | None = None, limit: int | None = None
) -> dict[str, Any]:
    """The live snapshot returned by resume and activate.

    ``messages`` is the newest page of the transcript that fits one message with the rest of
    the snapshot (``start``: index of its first row; ``more``: earlier rows exist)."""
    with live.lock:
        messages = list(live.messages)
        out: dict[str, Any] = {
            "session_id": live.id,
            "session_key": live.key,
            "message_count": len(messages),
            "messages": [],
            "info": info(live),
            "running": live.running,
            "status": wire_status(live),
            "started_at": live.started_at,
        }
        if live.todos:
            out["todo_state"] = {"todos": list(live.todos), "revision": live.todo_revision}
        if live.queue:
            out["queued"] = [{"user": _capped(text)} for text in live.queue]
        if live.turn is not None:
            out["inflight"] = {
                k: _capped(v) if isinstance(v, str) else v for k, v in live.turn.inflight().items()
            }
    out.update(open_requests(live))
    if omit_messages:
        out.update(start=len(messages), more=bool(messages))
        return out
    budget = framing.max_message_bytes() - framing.json_len(out) - framing.RESPONSE_SLACK
    page = paging.message_page(messages, max(budget, 1024), before, limit)
    out.update(messages=page.rows, start=page.start, more=page.more)
    return out


def _capped(text: str) -> str:
    """In-flight and queued prompts share the snapshot's frame with the transcript page:
    each keeps at most an eighth of it (the whole text is in the transcript once recorded)."""
    cap = framing.max_message_bytes() // 8
    if framing.fits(text, cap):
        return text
    kept = framing.head(text, cap)
    return kept + f"\n[... {len(text) - len(kept)} more characters]"


def open_requests(live: LiveSession) -> dict[str, Any]:
    """``pending_approval`` / ``open_requests`` for a reconnecting client (empty when none)."""
    from ..agent.pending import pending

    requests = pending.for_session(live)
    if not requests:
        return {}
    out: dict[str, Any] = {"open_requests": [r.public() for r in requests]}
    approvals = [r for r in requests if r.kind == "approval"]
    if approvals:
        out["pending_approval"] = approvals[0].public()
    return out


# -- creation and attachment -------------------------------------------------


def validate_messages(raw: list[Any] | None) -> list[dict[str, Any]]:
    from ..rpc.errors import invalid_params

    out: list[dict[str, Any]] = []
    for item in raw or []:
        if not isinstance(item, dict) or item.get("role") not in ROLES:
            raise invalid_params("messages must be objects with role user|assistant|tool")
        text = item.get("text", item.get("content", ""))
        if not isinstance(text, str):
            raise invalid_params("message text must be a string")
        row = {k: item[k] for k in ("reasoning", "name", "args", "context") if item.get(k)}
        out.append({"role": item["role"], "text": text, **row, "timestamp": time.time()})
    return out


# Admissions one at a time: a count and the add that follows it cannot interleave with another's.
_admission = threading.Lock()


def _evict(candidates: list[LiveSession], excess: int) -> None:
    """Reclaim up to ``excess`` of the least recently active clientless idle ``candidates``."""
    idle = sorted(
        (s for s in candidates if not s.clients and not s.has_pending_work()), key=lambda s: s.last_active
    )
    for victim in idle[:excess]:
        teardown(victim, "lru_evict")


def _limit(reason: str, cap: int) -> RpcError:
    return RpcError(LIVE_LIMIT, f"live session limit reached ({cap} per {reason})", {"reason": reason})


def _admit(live: LiveSession, conn_id: str | None) -> None:
    """Add a new live session under the caps (conf: MAX_SESSIONS_PER_CONNECTION, _PER_USER,
    MAX_LIVE_SESSIONS), reclaiming clientless idle sessions first where that makes room."""
    with _admission:
        per_conn = gateway_settings.MAX_SESSIONS_PER_CONNECTION
        if conn_id is not None and per_conn and registry.count_linked(conn_id) >= per_conn:
            raise _limit("connection", per_conn)
        per_user = gateway_settings.MAX_SESSIONS_PER_USER
        if per_user:
            owned = registry.owned_by(live.owner_id)
            if len(owned) >= per_user:
                _evict(owned, len(owned) - per_user + 1)
                if len(registry.owned_by(live.owner_id)) >= per_user:
                    raise _limit("user", per_user)
        cap = gateway_settings.MAX_LIVE_SESSIONS
        if cap and len(registry) >= cap:
            _evict(registry.all(), len(registry) - cap + 1)
            if len(registry) >= cap:
                raise _limit("process", cap)
        registry.add(live)
        if conn_id is not None:
            registry.link(conn_id, live)


def spawn(
    *,
    owner_id: int | None,
    cwd: str | None = None,
    title: str = "",
    model: str | None = None,
    close_on_disconnect: bool = False,
    source: str = "",
    messages: list[dict[str, Any]] | None = None,
    key: str | None = None,
    parent_key: str | None = None,
    stored: bool = False,
    config: dict[str, Any] | None = None,
    conn_id: str | None = None,
) -> LiveSession:
    """A new live session (for connection ``conn_id``, attached by the caller); its agent builds
    in the background. Over a live-session cap: 4090."""
    live = LiveSession(
        id=ids.runtime_id(),
        key=key or ids.stored_id(),
        owner_id=owner_id,
        cwd=cwd or os.getcwd(),
        model=model or default_model(),
        title=title,
        source=source,
        close_on_disconnect=close_on_disconnect,
        parent_key=parent_key,
        messages=messages or [],
        stored=stored,
        config=dict(config or {}),
    )
    _admit(live, conn_id)
    _cluster_call("claim", live.id, live.key, live.owner_id)
    workers.submit(build_agent, live)
    return live


# Per-session settings that follow a session to the process that adopts it.
PORTABLE_CONFIG = (
    "busy_input_mode",
    "approval_mode",
    "backend",
    "approved_patterns",
    "disabled_tools",
    "fast",
    "reasoning_effort",
    "verbose",
    "personality",
)


def remember_config(live: LiveSession) -> None:
    """Store what a session was set to: cwd/model on its row, the rest for a later adopter."""
    with live.lock:
        portable = {k: v for k, v in live.config.items() if k in PORTABLE_CONFIG}
    portable["approved_patterns"] = sorted(portable.get("approved_patterns", ()))
    if live.stored:
        store.update_settings(live)
    _cluster_call("remember", live.id, json.dumps(portable))


def _cluster_call(name: str, *args: Any, **kwargs: Any) -> Any:
    """Run a cluster operation from this worker thread; a Redis fault is logged, not raised."""
    from ..cluster import cluster

    if not cluster.active:
        return None
    try:
        return cluster.run(getattr(cluster, name)(*args, **kwargs))
    except Exception:
        log.warning("cluster %s failed", name, exc_info=True)
        return None


def _live_elsewhere(call: Call, key: str) -> dict[str, Any] | None:
    """Resume through the owner when the stored session is live in another process."""
    from ..cluster import cluster
    from ..forwarding import OwnerSilent, remote_blocking

    if not cluster.active or call.forwarded:
        return None
    session_id = _cluster_call("session_for_key", key)
    owner = _cluster_call("locate", session_id) if session_id else None
    if owner is None:
        return None
    if owner.channel and owner.channel != cluster.channel:
        try:
            return remote_blocking(call, owner, session_id)
        except OwnerSilent:
            raise RpcError(AGENT_FAILURE, "the session's worker is not answering; retry shortly") from None
    if not owner.channel and adopt(session_id, owner.meta) is not None:
        live = registry.get(session_id)
        attach(call, live)
        out = snapshot(live, **paging.page_params(call.params))
        out["resumed"] = live.key
        return out
    return None


def adopt(session_id: str, meta: dict[str, str]) -> LiveSession | None:
    """Take over a session whose owner died (or drained): transcript from the database,
    numbering and the end of a lost turn from the durable log. None if it cannot be adopted."""
    from ..cluster import cluster

    key = meta.get("key", "")
    owner_id = int(meta["owner_id"]) if meta.get("owner_id") else None
    stored = StoredSession.objects.filter(id=key).first()
    if stored is None or not cluster.run(cluster.claim(session_id, key, owner_id, take=True)):
        return None
    events = cluster.run(cluster.read_log(session_id, 0))
    last_seq = events[-1].seq if events else 0
    outbox.continue_from(session_id, last_seq)
    live = LiveSession(
        id=session_id,
        key=key,
        owner_id=owner_id,
        cwd=stored.cwd or os.getcwd(),
        model=stored.model or default_model(),
        title=stored.title,
        source=stored.source,
        parent_key=stored.parent_id,
        messages=store.load_messages(stored),
        stored=True,
        config=_portable(meta.get("config")),
    )
    registry.add(live)
    store.reopen(stored)
    workers.submit(build_agent, live)
    log.info("adopted session=%s key=%s at seq=%d", session_id, key, last_seq)
    _close_lost_turn(live, [e.params for e in events])
    park(live)
    return live


def _portable(raw: str | None) -> dict[str, Any]:
    config = json.loads(raw) if raw else {}
    if "approved_patterns" in config:
        config["approved_patterns"] = set(config["approved_patterns"])
    return config


def _close_lost_turn(live: LiveSession, events: list[dict[str, Any]]) -> None:
    """If the log shows a turn that never completed, end it as interrupted, keeping what was said."""
    starts = [i for i, e in enumerate(events) if e["type"] == "message.start"]
    if not starts or any(e["type"] == "message.complete" for e in events[starts[-1] :]):
        return
    turn = events[starts[-1] :]
    text = "".join(e["payload"]["text"] for e in turn if e["type"] == "message.delta")
    cancelled = {e["payload"].get("request_id") for e in turn if e["type"] == "request.cancel"}
    for e in turn:
        kind = e["type"].removesuffix(".request")
        if e["type"].endswith(".request") and e["payload"]["request_id"] not in cancelled:
            outbox.emit(
                live.id,
                "request.cancel",
                {
                    "id": "",
                    "method": kind,
                    "reason": "session_closed",
                    "request_id": e["payload"]["request_id"],
                },
            )
    outbox.emit(
        live.id,
        "status.update",
        {"kind": "failover", "text": "the worker running this turn stopped; the turn was interrupted"},
    )
    record(live, [{"role": "assistant", "text": text, "timestamp": time.time()}])
    outbox.emit(
        live.id,
        "message.complete",
        {"text": text, "usage": usage(live), "status": "interrupted", "error": "worker lost"},
    )


def create(call: Call, *, server_requests: bool | None = None, **options: Any) -> LiveSession:
    """A new live session attached to the caller (options as :func:`spawn`)."""
    live = spawn(owner_id=call.conn.user_id, conn_id=call.conn.id, **options)
    # Baseline 0: its build may already have emitted, and the caller must get all of it.
    attach(call, live, server_requests, baseline=0)
    return live


def default_model() -> str:
    return gateway_settings.AGENT_OPTIONS.get("model") or gateway_settings.AGENT


def build_agent(live: LiveSession) -> None:
    """Background step: build the agent, then ``session.info`` (or an ``error`` event)."""
    try:
        backend = load_backend(
            live.config.get("backend", gateway_settings.AGENT), gateway_settings.AGENT_OPTIONS
        )
        agent = backend.build(live)
    except Exception as exc:
        log.warning("agent build failed session=%s: %s", live.id, exc)
        with live.lock:
            live.build_error = f"agent init failed: {exc}"
        live.built.set()
        outbox.emit(live.id, "error", {"message": live.build_error, "code": AGENT_BUILD_FAILED})
        return
    with live.lock:
        if live.ended:
            return
        live.agent = agent
        live.build_error = None
    live.built.set()
    outbox.emit(live.id, "session.info", info(live))


def attach(
    call: Call, live: LiveSession, server_requests: bool | None = None, baseline: int | None = None
) -> None:
    """Add the caller to the session's clients and subscribe it to the session's events.

    ``server_requests`` opts the caller into interactive requests as JSON-RPC requests (8.2).
    """
    if baseline is None:
        baseline = outbox.latest_seq(live.id)
    with live.lock:
        live.clients.add(call.conn.id)
        if live.orphan_timer is not None:
            live.orphan_timer.cancel()
            live.orphan_timer = None
        live.touch()
    registry.link(call.conn.id, live)
    call.subscribe(live.id, baseline, server_requests)


def resume(
    call: Call,
    target: str,
    *,
    omit_messages: bool = False,
    close_on_disconnect: bool | None = None,
    server_requests: bool | None = None,
    before: int | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    user_id = call.conn.user_id
    live = registry.by_key(target)
    if live is None:
        live = next((s for s in registry.all() if s.title == target and s.owner_id == user_id), None)
    if live is not None and live.owner_id == user_id and not live.ended:
        if close_on_disconnect is not None:
            live.close_on_disconnect = close_on_disconnect
        attach(call, live, server_requests)
        out = snapshot(live, omit_messages=omit_messages, before=before, limit=limit)
        out["resumed"] = live.key
        return out
    stored = store.find(target, user_id)
    if stored is None:
        raise RpcError(SESSION_NOT_FOUND, "session not found")
    elsewhere = _live_elsewhere(call, stored.id)
    if elsewhere is not None:
        return elsewhere
    if stored.message_count > gateway_settings.MAX_RESUME_MESSAGES:
        raise RpcError(TRANSCRIPT_TOO_LARGE, "transcript too large to resume")
    messages = store.load_messages(stored)
    live = create(  # before reopen: a resume refused by a cap (4090) leaves the row as it was
        call,
        cwd=stored.cwd,
        title=stored.title,
        model=stored.model or None,
        close_on_disconnect=bool(close_on_disconnect),
        source=stored.source,
        messages=messages,
        key=stored.id,
        parent_key=stored.parent_id,
        stored=True,
        server_requests=server_requests,
    )
    store.reopen(stored)
    out = snapshot(live, omit_messages=omit_messages, before=before, limit=limit)
    out["resumed"] = live.key
    return out


def record(live: LiveSession, rows: list[dict[str, Any]]) -> None:
    """Append transcript rows in memory and in the database (writes the stored row first time)."""
    rows = [r for r in rows if r["role"] != "assistant" or r.get("text", "").strip() or r.get("reasoning")]
    if not rows:
        return
    with live.lock:
        start = len(live.messages)
        live.messages.extend(rows)
        try:
            store.append(live, rows, start)
        except BaseException:
            del live.messages[start:]  # memory and database stay the same transcript
            raise


def replace_messages(live: LiveSession, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace the whole transcript (compression), in memory and in one database transaction."""
    with live.lock:
        store.ensure_row(live)
        live.messages[:] = rows
        store.replace(live, rows)
        return list(live.messages)


def truncate(live: LiveSession, keep: int) -> int:
    """Drop transcript rows from index ``keep`` on; returns how many went."""
    with live.lock:
        removed = len(live.messages) - keep
        del live.messages[keep:]
        store.truncate(live, keep)
    return max(0, removed)


def check_title(title: str) -> str:
    """``title`` if it fits its column, else 4002 (before anything is stored)."""
    if len(title) > MAX_TITLE_CHARS:
        raise RpcError(BAD_VALUE, f"title too long: {len(title)} characters (limit {MAX_TITLE_CHARS})")
    return title


def check_cwd(cwd: str | None) -> str | None:
    """An existing directory as an absolute path (None: the default), else 4002."""
    if not cwd:
        return None
    path = os.path.abspath(os.path.expanduser(cwd))
    if not os.path.isdir(path):
        raise RpcError(BAD_VALUE, f"cwd is not an existing directory: {cwd}")
    return path


def set_title(live: LiveSession, title: str, *, stored: bool = False) -> None:
    """Set and store the title (the first title writes the stored row), then tell the clients.

    ``stored``: the title is already in the database (written with the session's row)."""
    check_title(title)
    if not stored:
        with live.lock:
            live.title = title
        store.set_title(live, title)
    outbox.emit(live.id, "session.title", {"session_id": live.key, "title": title})
    outbox.broadcast("sessions.changed", {"reason": "title", "session_id": live.key}, owner=live.owner_id)


# -- ending -----------------------------------------------------------------


def teardown(live: LiveSession, reason: str, *, reclaimed: bool = True) -> bool:
    """End a live session: stop its work, persist, forget it, tell everyone. Idempotent."""
    with live.lock:
        if live.ended:
            return False
        live.ended = True
        if live.orphan_timer is not None:
            live.orphan_timer.cancel()
            live.orphan_timer = None
    registry.remove(live)
    _stop_work(live)
    try:
        store.end(live, reason)
    except Exception:
        log.exception("could not store the end of session=%s", live.id)
    outbox.close(live.id)
    _cluster_call("release", live.id, live.key, ended=True)
    log.info("session ended session=%s key=%s reason=%s", live.id, live.key, reason)
    if reclaimed:
        outbox.broadcast(
            "session.reclaimed",
            {"session_id": live.id, "stored_session_id": live.key, "reason": reason},
            owner=live.owner_id,
        )
    if live.stored:
        outbox.broadcast("sessions.changed", {"reason": reason, "session_id": live.key}, owner=live.owner_id)
    return True


def _stop_work(live: LiveSession) -> None:
    """Release requests, interrupt a running turn (a moment to store what it said), kill processes."""
    from ..agent import turns
    from ..agent.pending import pending
    from ..processes import processes

    pending.release(live, "session_closed")
    if turns.interrupt(live):
        live.idle.wait(gateway_settings.CLOSE_WAIT_S)
    processes.kill_session(live)


def disconnect(conn_id: str) -> tuple[int, int]:
    """Detach a gone connection from its sessions; returns (reaped, detached)."""
    outcomes = [_detach(live, conn_id) for live in registry.unlink_connection(conn_id)]
    return outcomes.count("reaped"), outcomes.count("detached")


def detach(session_id: str, conn_id: str) -> None:
    """A connection (of another process) left one session."""
    live = registry.get(session_id)
    if live is not None:
        registry.unlink(conn_id, live)
        _detach(live, conn_id)


def _detach(live: LiveSession, conn_id: str) -> str | None:
    with live.lock:
        live.clients.discard(conn_id)
        orphaned = not live.clients and not live.ended
    if not orphaned:
        return None
    if live.close_on_disconnect:
        return "reaped" if teardown(live, "ws_disconnect") else None
    park(live)
    return "detached"


def park(live: LiveSession) -> None:
    """Arm the orphan timer of a clientless session."""
    grace = gateway_settings.ORPHAN_GRACE_S
    if grace <= 0:
        return
    with live.lock:
        if live.orphan_timer is not None:
            live.orphan_timer.cancel()
        live.orphan_timer = workers.call_later(grace, lambda: orphan_check(live))


def orphan_check(live: LiveSession) -> None:
    """The orphan timer fired: reclaim, keep waiting, or interrupt a stale turn."""
    with live.lock:
        live.orphan_timer = None
        if live.clients or live.ended:
            return
        stale = time.monotonic() - live.last_activity >= gateway_settings.STALE_TURN_S
    from ..processes import processes

    if processes.running(live) or (live.has_pending_work() and not stale):
        park(live)
        return
    teardown(live, "ws_orphan_reap")


def hand_over_all(window: float) -> list[tuple[str, str]]:
    """Drain: give running turns ``window`` seconds, then stop every session's work and forget it.

    Returns (runtime id, key) of the sessions handed over: their leases are released by the
    caller once their last events are out, so another process adopts them on the next call.
    Without a cluster they are simply ended (``end_reason="drain"``)."""
    from ..cluster import cluster

    deadline = time.monotonic() + window
    sessions = registry.all()
    for live in sessions:
        live.idle.wait(max(0.0, deadline - time.monotonic()))
    handed = []
    for live in sessions:
        with live.lock:
            if live.ended:
                continue
            live.ended = True
            if live.orphan_timer is not None:
                live.orphan_timer.cancel()
        registry.remove(live)
        _stop_work(live)
        if not cluster.active:
            store.end(live, "drain")
        outbox.close(live.id)
        handed.append((live.id, live.key))
    return handed


def start_sweeper() -> None:
    """Run :func:`sweep_idle` every SWEEP_INTERVAL_S for the life of the process (idempotent)."""
    global _sweeping
    if _sweeping:
        return
    _sweeping = True

    def tick() -> None:
        try:
            sweep_idle()
        finally:
            workers.call_later(gateway_settings.SWEEP_INTERVAL_S, tick)

    workers.call_later(gateway_settings.SWEEP_INTERVAL_S, tick)


_sweeping = False


def sweep_idle() -> None:
    """Reclaim idle sessions older than IDLE_TTL_S (the backstop for forgotten ones)."""
    cutoff = time.time() - gateway_settings.IDLE_TTL_S
    for live in registry.all():
        if live.has_pending_work() or live.last_active > cutoff or live.started_at > cutoff:
            continue
        teardown(live, "idle_timeout")


def close(live: LiveSession, reason: str = "client_close") -> bool:
    """``session.close``: wait briefly for a running turn, persist, end."""
    live.idle.wait(gateway_settings.CLOSE_WAIT_S)
    return teardown(live, reason, reclaimed=False)
