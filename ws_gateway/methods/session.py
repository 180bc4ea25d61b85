"""``session.*`` methods (PROTOCOL.md sections 5 and 6)."""

from __future__ import annotations

from typing import Any

from .. import framing
from ..agent import compression
from ..builtin_commands import status_text
from ..errors import BAD_VALUE, SESSION_NOT_FOUND
from ..events.outbox import emit, outbox
from ..rpc import RpcError, method
from ..rpc.call import Call
from ..sessions import branching, export, lifecycle, paging, shapes, store, transcript
from ..sessions.registry import registry

DEFAULT_SOURCE = "tui"


@method("session.create")
def session_create(call: Call) -> dict[str, Any]:
    p = call.params
    live, sub = lifecycle.create(
        call.conn,
        cwd=lifecycle.check_cwd(p.string("cwd")),
        title=lifecycle.check_title(p.string("title", "")),
        model=p.string("model"),
        close_on_disconnect=p.boolean("close_on_disconnect"),
        # The reference's default for a session that does not say where it comes from.
        source=p.string("source") or DEFAULT_SOURCE,
        messages=lifecycle.validate_messages(p.array("messages")),
        server_requests=_opt_bool(call, "server_requests"),
    )
    call.follow(sub)
    out: dict[str, Any] = {"session_id": live.id, "stored_session_id": live.key, "info": shapes.info(live)}
    with live.lock:
        messages = list(live.messages)
    budget = framing.max_message_bytes() - framing.json_len(out) - framing.RESPONSE_SLACK
    page = paging.message_page(messages, budget)
    out.update(message_count=len(messages), messages=page.rows, start=page.start, more=page.more)
    return out


@method("session.resume", pool=True)
def session_resume(call: Call) -> dict[str, Any]:
    p = call.params
    target = p.session_id()
    out, subs = lifecycle.resume(
        call,
        target,
        omit_messages=p.boolean("omit_messages"),
        close_on_disconnect=_opt_bool(call, "close_on_disconnect"),
        server_requests=_opt_bool(call, "server_requests"),
        **paging.page_params(p),
    )
    call.follow(*subs)
    return out


def _opt_bool(call: Call, key: str) -> bool | None:
    """A boolean param, or None when absent (meaning: leave as it is)."""
    return call.params.boolean(key) if call.params.raw(key) is not None else None


@method("session.activate")
def session_activate(call: Call) -> dict[str, Any]:
    live = lifecycle.get_live(call.params.session_id(), call.conn.user_id)
    page = paging.page_params(call.params)
    call.follow(lifecycle.attach(call.conn, live, _opt_bool(call, "server_requests")))
    return shapes.snapshot(live, **page)


@method("session.close")
def session_close(call: Call) -> dict[str, Any]:
    session_id = call.params.session_id()
    live = registry.get(session_id)
    if live is None or live.owner_id != call.conn.user_id:
        return {"closed": False}
    return {"closed": lifecycle.close(live)}


@method("session.list", pool=True)
def session_list(call: Call) -> dict[str, Any]:
    p = call.params
    limit = p.integer("limit", 200, minimum=1)
    return {"sessions": store.list_sessions(call.conn.user_id, min(limit, 1000), p.string("title"))}


@method("session.active_list", pool=True)
def session_active_list(call: Call) -> dict[str, Any]:
    current = call.params.string("current_session_id")
    sessions = [
        {
            "id": live.id,
            "session_key": live.key,
            "status": shapes.wire_status(live),
            "title": live.title,
            "model": live.model,
            "message_count": len(live.messages),
            "started_at": live.started_at,
            "last_active": live.last_active,
            "current": live.id == current,
        }
        for live in registry.all()
        # Subagent and background sessions are the agent's, not a person's to switch to.
        if live.owner_id == call.conn.user_id and not live.ended and live.source not in store.HIDDEN_SOURCES
    ]
    sessions.sort(key=lambda s: float(s["started_at"]))  # type: ignore[arg-type]
    return {"sessions": sessions}


@method("session.delete")
def session_delete(call: Call) -> dict[str, Any]:
    key = call.params.session_id()
    user_id = call.conn.user_id
    live = registry.by_key(key)
    was_live = live is not None and live.owner_id == user_id
    if live is not None and was_live:
        lifecycle.teardown(live, "deleted", reclaimed=False)
    deleted = store.delete(key, user_id)
    if not (deleted or was_live):
        raise RpcError(SESSION_NOT_FOUND, "session not found")
    outbox.broadcast("sessions.changed", {"reason": "deleted", "session_id": key}, owner=user_id)
    return {"deleted": True}


@method("session.title")
def session_title(call: Call) -> dict[str, Any]:
    p = call.params
    live = lifecycle.get_live(p.session_id(), call.conn.user_id)
    title = p.string("title")
    if title is None:
        return {"title": live.title, "session_key": live.key}
    title = " ".join(title.split())
    if not title:
        raise RpcError(BAD_VALUE, "title required")
    transcript.set_title(live, title)
    return {"title": title, "session_key": live.key, "pending": False}


@method("session.history")
def session_history(call: Call) -> dict[str, Any]:
    """The newest transcript rows before ``before`` that fit one message (docs/protocol.md)."""
    live = lifecycle.get_live(call.params.session_id(), call.conn.user_id)
    page_params = paging.page_params(call.params)
    with live.lock:
        messages = list(live.messages)
    budget = framing.max_message_bytes() - framing.RESPONSE_SLACK
    page = paging.message_page(messages, budget, **page_params)
    return {"count": page.count, "messages": page.rows, "start": page.start, "more": page.more}


@method("session.message")
def session_message(call: Call) -> dict[str, Any]:
    """A chunk of one transcript row's text, for rows shortened in pages."""
    p = call.params
    live = lifecycle.get_live(p.session_id(), call.conn.user_id)
    index = p.integer("index", minimum=0)
    if index is None:
        raise RpcError(BAD_VALUE, "index required")
    field = p.string("field", "text")
    offset = p.integer("offset", 0, minimum=0)
    limit = p.integer("limit", minimum=1)
    with live.lock:
        messages = list(live.messages)
    budget = framing.max_message_bytes() - framing.RESPONSE_SLACK
    return paging.message_chunk(messages, index, field, offset, limit, budget)


@method("session.events.since")
def session_events_since(call: Call) -> dict[str, Any]:
    p = call.params
    live = lifecycle.get_live(p.session_id(), call.conn.user_id)
    last_seen = p.integer("last_seen", 0, minimum=0)
    limit = p.integer("limit", minimum=1)
    replay = outbox.replay(live.id, last_seen)
    out: dict[str, Any] = {
        "events": [],
        "latest_seq": replay.latest_seq,
        "truncated": replay.truncated,
        "count": 0,
        "epoch": outbox.epoch,
        "more": False,
        **shapes.open_requests(live),
    }
    budget = framing.max_message_bytes() - framing.json_len(out) - framing.RESPONSE_SLACK
    page, more = paging.event_page(replay.events, budget, limit)
    out.update(events=[e.params for e in page], count=len(page), more=more)
    return out


@method("session.status")
def session_status(call: Call) -> dict[str, Any]:
    live = lifecycle.get_live(call.params.session_id(), call.conn.user_id)
    return {"output": status_text(live)}


@method("session.save", pool=True)
def session_save(call: Call) -> dict[str, Any]:
    p = call.params
    live = lifecycle.get_live(p.session_id(), call.conn.user_id)
    return {"file": str(export.save(live, p.string("path")))}


@method("session.compress", pool=True)
def session_compress(call: Call) -> dict[str, Any]:
    p = call.params
    live = lifecycle.get_live(p.session_id(), call.conn.user_id)
    result = compression.compress(live, (p.string("focus_topic") or "").strip())
    emit(live.id, "session.info", result["info"])
    return result


@method("session.branch", pool=True)
def session_branch(call: Call) -> dict[str, Any]:
    p = call.params
    live = lifecycle.get_live(p.session_id(), call.conn.user_id)
    name = " ".join((p.string("name") or "").split())
    out, sub = branching.branch(call.conn, live, name, p.integer("upto", None, minimum=0))
    call.follow(sub)
    return out


@method("session.most_recent", pool=True)
def session_most_recent(call: Call) -> dict[str, Any]:
    return store.most_recent(call.conn.user_id) or {"session_id": None}
