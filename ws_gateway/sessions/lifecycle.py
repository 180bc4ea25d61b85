"""Live-session lifecycle: admission under the caps, create, build, attach, resume, end.

Called from worker threads (RPC handlers, timers). Events go out through the
outbox; the database is touched through :mod:`.store`. Ownership across
processes is recorded through the backplane (a no-op with one process); a
stored session live in another process is the business of the policy above, asked
through :func:`install_elsewhere`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import ids, workers
from ..backplane import backplane
from ..caller import Caller, Request, Subscription
from ..conf import gateway_settings
from ..errors import (
    AGENT_BUILD_FAILED,
    BAD_VALUE,
    LIVE_LIMIT,
    SESSION_NOT_FOUND,
    SESSION_NOT_LIVE,
    TRANSCRIPT_TOO_LARGE,
    RpcError,
    invalid_params,
)
from ..events.outbox import outbox
from ..models import StoredSession
from ..signals import session_stopping
from . import store, work
from .live import LiveSession
from .registry import registry
from .shapes import info, snapshot

log = logging.getLogger(__name__)


ROLES = ("user", "assistant", "tool")


MAX_TITLE_CHARS: int = StoredSession._meta.get_field("title").max_length or 0


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


def validate_messages(raw: list[Any] | None) -> list[dict[str, Any]]:
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
    _shared(backplane.claim, live.id, live.key, live.owner_id)
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
    _shared(backplane.remember, live.id, json.dumps(portable))


def _shared(operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Tell the other processes (from this worker thread); a backplane fault is logged, not raised."""
    if not backplane.shared:
        return None
    try:
        return backplane.run(operation(*args, **kwargs))
    except Exception:
        log.warning("backplane %s failed", operation.__name__, exc_info=True)
        return None


def create(
    caller: Caller, *, server_requests: bool | None = None, **options: Any
) -> tuple[LiveSession, Subscription]:
    """A new live session attached to the caller (options as :func:`spawn`)."""
    live = spawn(owner_id=caller.user_id, conn_id=caller.id, **options)
    # Baseline 0: its build may already have emitted, and the caller must get all of it.
    return live, attach(caller, live, server_requests, baseline=0)


def default_model() -> str:
    return str(gateway_settings.AGENT_OPTIONS.get("model") or gateway_settings.AGENT)


def build_agent(live: LiveSession) -> None:
    """Background step: build the agent, then ``session.info`` (or an ``error`` event)."""
    try:
        agent = work.build(live)
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
    caller: Caller, live: LiveSession, server_requests: bool | None = None, baseline: int | None = None
) -> Subscription:
    """Add the caller to the session's clients; what it returns subscribes the caller to its events.

    ``server_requests`` opts the caller into interactive requests as JSON-RPC requests (8.2).
    """
    if baseline is None:
        baseline = outbox.latest_seq(live.id)
    with live.lock:
        live.clients.add(caller.id)
        if live.orphan_timer is not None:
            live.orphan_timer.cancel()
            live.orphan_timer = None
        live.touch()
    registry.link(caller.id, live)
    return Subscription(live.id, baseline, server_requests)


# A stored session live in another process: (the resume's result, its subscriptions), else None.
Elsewhere = Callable[[Request, str], "tuple[dict[str, Any], list[Subscription]] | None"]
_elsewhere: list[Elsewhere] = []


def install_elsewhere(elsewhere: Elsewhere) -> None:
    """Where a resume asks whether the stored session is live in another process (installed at start-up)."""
    _elsewhere[:] = [elsewhere]


def resume(
    request: Request,
    target: str,
    *,
    omit_messages: bool = False,
    close_on_disconnect: bool | None = None,
    server_requests: bool | None = None,
    before: int | None = None,
    limit: int | None = None,
) -> tuple[dict[str, Any], list[Subscription]]:
    """Attach the caller to a live session by key or title, or make a stored one live here."""
    user_id = request.conn.user_id
    live = registry.by_key(target)
    if live is None:
        live = next((s for s in registry.all() if s.title == target and s.owner_id == user_id), None)
    if live is not None and live.owner_id == user_id and not live.ended:
        if close_on_disconnect is not None:
            live.close_on_disconnect = close_on_disconnect
        sub = attach(request.conn, live, server_requests)
        out = snapshot(live, omit_messages=omit_messages, before=before, limit=limit)
        out["resumed"] = live.key
        return out, [sub]
    stored = store.find(target, user_id)
    if stored is None:
        raise RpcError(SESSION_NOT_FOUND, "session not found")
    for ask in _elsewhere:
        elsewhere = ask(request, stored.id)
        if elsewhere is not None:
            return elsewhere
    if stored.message_count > gateway_settings.MAX_RESUME_MESSAGES:
        raise RpcError(TRANSCRIPT_TOO_LARGE, "transcript too large to resume")
    messages = store.load_messages(stored)
    live, sub = create(  # before reopen: a resume refused by a cap (4090) leaves the row as it was
        request.conn,
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
    return out, [sub]


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
    stop_work(live)
    try:
        store.end(live, reason)
    except Exception:
        log.exception("could not store the end of session=%s", live.id)
    outbox.close(live.id)
    _shared(backplane.release, live.id, live.key, ended=True)
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


def stop_work(live: LiveSession) -> None:
    """Release requests, interrupt a running turn (a moment to store what it said), kill processes:
    done by the receivers of ``session_stopping`` (the agent's, then the terminal tool's)."""
    session_stopping.send(sender=LiveSession, live=live)


def close(live: LiveSession, reason: str = "client_close") -> bool:
    """``session.close``: wait briefly for a running turn, persist, end."""
    live.idle.wait(gateway_settings.CLOSE_WAIT_S)
    return teardown(live, reason, reclaimed=False)
