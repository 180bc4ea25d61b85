"""``session.*`` methods (PROTOCOL.md sections 5 and 6)."""

from __future__ import annotations

from typing import Any

from .. import framing
from ..agent import compression
from ..builtin_commands import status_text
from ..cluster import cluster
from ..outbox import emit, outbox
from ..rpc import RpcError, method
from ..rpc.call import Call
from ..rpc.errors import BAD_VALUE, SESSION_NOT_FOUND
from ..sessions import branching, export, paging, service, store
from ..sessions.eventlog import Replay
from ..sessions.registry import registry

DEFAULT_SOURCE = "tui"


@method("session.create")
def session_create(call: Call) -> dict[str, Any]:
    p = call.params
    live = service.create(
        call,
        cwd=service.check_cwd(p.str("cwd")),
        title=service.check_title(p.str("title", "")),
        model=p.str("model"),
        close_on_disconnect=p.bool("close_on_disconnect"),
        # The reference's default for a session that does not say where it comes from.
        source=p.str("source") or DEFAULT_SOURCE,
        messages=service.validate_messages(p.list("messages")),
        server_requests=_opt_bool(call, "server_requests"),
    )
    out = {"session_id": live.id, "stored_session_id": live.key, "info": service.info(live)}
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
    return service.resume(
        call,
        target,
        omit_messages=p.bool("omit_messages"),
        close_on_disconnect=_opt_bool(call, "close_on_disconnect"),
        server_requests=_opt_bool(call, "server_requests"),
        **paging.page_params(p),
    )


def _opt_bool(call: Call, key: str) -> bool | None:
    """A boolean param, or None when absent (meaning: leave as it is)."""
    return call.params.bool(key) if call.params.raw(key) is not None else None


@method("session.activate")
def session_activate(call: Call) -> dict[str, Any]:
    live = service.get_live(call.params.session_id(), call.conn.user_id)
    page = paging.page_params(call.params)
    service.attach(call, live, _opt_bool(call, "server_requests"))
    return service.snapshot(live, **page)


@method("session.close")
def session_close(call: Call) -> dict[str, Any]:
    session_id = call.params.session_id()
    live = registry.get(session_id)
    if live is None or live.owner_id != call.conn.user_id:
        return {"closed": False}
    return {"closed": service.close(live)}


@method("session.list", pool=True)
def session_list(call: Call) -> dict[str, Any]:
    p = call.params
    limit = p.int("limit", 200, minimum=1)
    return {"sessions": store.list_sessions(call.conn.user_id, min(limit, 1000), p.str("title"))}


@method("session.active_list", pool=True)
def session_active_list(call: Call) -> dict[str, Any]:
    current = call.params.str("current_session_id")
    sessions = [
        {
            "id": live.id,
            "session_key": live.key,
            "status": service.wire_status(live),
            "title": live.title,
            "model": live.model,
            "message_count": len(live.messages),
            "started_at": live.started_at,
            "last_active": live.last_active,
            "current": live.id == current,
        }
        for live in registry.all()
        if live.owner_id == call.conn.user_id and not live.ended
    ]
    sessions.sort(key=lambda s: s["started_at"])
    return {"sessions": sessions}


@method("session.delete")
def session_delete(call: Call) -> dict[str, Any]:
    key = call.params.session_id()
    user_id = call.conn.user_id
    live = registry.by_key(key)
    was_live = live is not None and live.owner_id == user_id
    if was_live:
        service.teardown(live, "deleted", reclaimed=False)
    deleted = store.delete(key, user_id)
    if not (deleted or was_live):
        raise RpcError(SESSION_NOT_FOUND, "session not found")
    outbox.broadcast("sessions.changed", {"reason": "deleted", "session_id": key}, owner=user_id)
    return {"deleted": True}


@method("session.title")
def session_title(call: Call) -> dict[str, Any]:
    p = call.params
    live = service.get_live(p.session_id(), call.conn.user_id)
    title = p.str("title")
    if title is None:
        return {"title": live.title, "session_key": live.key}
    title = " ".join(title.split())
    if not title:
        raise RpcError(BAD_VALUE, "title required")
    service.set_title(live, title)
    return {"title": title, "session_key": live.key, "pending": False}


@method("session.history")
def session_history(call: Call) -> dict[str, Any]:
    """The newest transcript rows before ``before`` that fit one message (docs/protocol.md)."""
    live = service.get_live(call.params.session_id(), call.conn.user_id)
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
    live = service.get_live(p.session_id(), call.conn.user_id)
    index = p.int("index", minimum=0)
    if index is None:
        raise RpcError(BAD_VALUE, "index required")
    field = p.str("field", "text")
    offset = p.int("offset", 0, minimum=0)
    limit = p.int("limit", minimum=1)
    with live.lock:
        messages = list(live.messages)
    budget = framing.max_message_bytes() - framing.RESPONSE_SLACK
    return paging.message_chunk(messages, index, field, offset, limit, budget)


@method("session.events.since")
def session_events_since(call: Call) -> dict[str, Any]:
    p = call.params
    live = service.get_live(p.session_id(), call.conn.user_id)
    last_seen = p.int("last_seen", 0, minimum=0)
    limit = p.int("limit", minimum=1)
    log = outbox.logs.get(live.id)
    replay = log.since(last_seen) if log is not None else Replay([], 0, last_seen > 0)
    if replay.truncated and cluster.active:
        # The owner's ring starts at adoption or was trimmed: the durable log goes further back.
        durable = cluster.run(cluster.replay(live.id, last_seen))
        if not durable.truncated:
            replay = durable
    out: dict[str, Any] = {
        "events": [],
        "latest_seq": replay.latest_seq,
        "truncated": replay.truncated,
        "count": 0,
        "epoch": outbox.epoch,
        "more": False,
        **service.open_requests(live),
    }
    budget = framing.max_message_bytes() - framing.json_len(out) - framing.RESPONSE_SLACK
    page, more = paging.event_page(replay.events, budget, limit)
    out.update(events=[e.params for e in page], count=len(page), more=more)
    return out


@method("session.status")
def session_status(call: Call) -> dict[str, Any]:
    live = service.get_live(call.params.session_id(), call.conn.user_id)
    return {"output": status_text(live)}


@method("session.save", pool=True)
def session_save(call: Call) -> dict[str, Any]:
    p = call.params
    live = service.get_live(p.session_id(), call.conn.user_id)
    return {"file": str(export.save(live, p.str("path")))}


@method("session.compress", pool=True)
def session_compress(call: Call) -> dict[str, Any]:
    p = call.params
    live = service.get_live(p.session_id(), call.conn.user_id)
    result = compression.compress(live, (p.str("focus_topic") or "").strip())
    emit(live.id, "session.info", result["info"])
    return result


@method("session.branch", pool=True)
def session_branch(call: Call) -> dict[str, Any]:
    p = call.params
    live = service.get_live(p.session_id(), call.conn.user_id)
    name = " ".join((p.str("name") or "").split())
    return branching.branch(call, live, name, p.int("upto", None, minimum=0))


@method("session.most_recent", pool=True)
def session_most_recent(call: Call) -> dict[str, Any]:
    return store.most_recent(call.conn.user_id) or {"session_id": None}
