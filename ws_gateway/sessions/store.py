"""Persistence helpers over the models. Called from worker threads only.

Every write is one :func:`~ws_gateway.writes.write_unit` (an immediate
transaction on SQLite, retried while the database is locked), so a write
never fails because another session wrote at the same time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.utils import timezone as djtz

from ..models import StoredSession, TranscriptMessage
from ..writes import grouped, write_unit
from . import hot_writes
from .live import LiveSession

PREVIEW_CHARS = 120
TITLE_CHARS: int = StoredSession._meta.get_field("title").max_length or 0
ROW_FIELDS = ("reasoning", "name", "args", "context")
# Sessions that no person started: not listed (as the reference hides "tool" rows).
HIDDEN_SOURCES = ("tool",)


def _ts(value: float | None) -> datetime:
    return datetime.fromtimestamp(value, UTC) if value else djtz.now()


def row_to_wire(row: TranscriptMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": row.role, "text": row.text}
    for name in ROW_FIELDS:
        value = getattr(row, name)
        if value not in ("", None):
            out[name] = value
    out["timestamp"] = row.timestamp.timestamp()
    return out


def _preview(messages: list[dict[str, Any]]) -> str:
    for message in messages:
        if message.get("role") == "user" and message.get("text"):
            return " ".join(message["text"].split())[:PREVIEW_CHARS]
    return ""


def ensure_row(live: LiveSession) -> None:
    """Write the stored row (and any seeded transcript) the first time it is needed."""
    with live.lock:
        if live.stored:
            return
        messages = list(live.messages)
        _create_row(live, messages)
        live.stored = True


@grouped
def _create_row(live: LiveSession, messages: list[dict[str, Any]]) -> None:
    # The parent may have no row (nothing stored yet, or deleted meanwhile): link only a real one.
    parent = live.parent_key
    if parent and not StoredSession.objects.filter(id=parent).exists():
        parent = None
    StoredSession.objects.get_or_create(
        id=live.key,
        defaults=dict(
            owner_id=live.owner_id,
            title=live.title,
            preview=_preview(messages),
            source=live.source,
            model=live.model,
            cwd=live.cwd,
            parent_id=parent,
            started_at=_ts(live.started_at),
            message_count=len(messages),
        ),
    )
    TranscriptMessage.objects.bulk_create([_new_row(live.key, i, m) for i, m in enumerate(messages)])


def _new_row(key: str, ordinal: int, message: dict[str, Any]) -> TranscriptMessage:
    return TranscriptMessage(
        session_id=key,
        ordinal=ordinal,
        role=message["role"],
        text=message.get("text") or "",
        reasoning=message.get("reasoning") or "",
        name=message.get("name") or "",
        args=message.get("args"),
        context=message.get("context") or "",
        timestamp=_ts(message.get("timestamp")),
    )


def append(live: LiveSession, messages: list[dict[str, Any]], start: int) -> None:
    """Store ``messages`` at ordinals ``start``... (ordinal = index in the live transcript).

    The first write of a session stores its row with the whole transcript instead.
    Either is one write unit shared with other sessions' writes (group commit).
    """
    with live.lock:
        if not live.stored:
            _create_row(live, list(live.messages))
            live.stored = True
            return
    _append_rows(live.key, messages, start)


@grouped
def _append_rows(key: str, messages: list[dict[str, Any]], start: int) -> None:
    hot_writes.insert_rows(_new_row(key, start + i, m) for i, m in enumerate(messages))
    hot_writes.update_session(key, start + len(messages), djtz.now(), _preview(messages))


@write_unit
def truncate(live: LiveSession, keep: int) -> None:
    """Drop stored rows from ordinal ``keep`` on (rewind, undo)."""
    if not live.stored:
        return
    TranscriptMessage.objects.filter(session_id=live.key, ordinal__gte=keep).delete()
    StoredSession.objects.filter(id=live.key).update(message_count=keep, last_active=djtz.now())


@write_unit
def replace(live: LiveSession, messages: list[dict[str, Any]]) -> None:
    """Replace every stored row of the session by ``messages``."""
    TranscriptMessage.objects.filter(session_id=live.key).delete()
    TranscriptMessage.objects.bulk_create([_new_row(live.key, i, m) for i, m in enumerate(messages)])
    StoredSession.objects.filter(id=live.key).update(message_count=len(messages), last_active=djtz.now())


def set_title(live: LiveSession, title: str) -> None:
    ensure_row(live)
    _store_title(live, title)


@grouped
def _store_title(live: LiveSession, title: str) -> None:
    StoredSession.objects.filter(id=live.key).update(title=title, last_active=djtz.now())


@write_unit
def update_settings(live: LiveSession) -> None:
    StoredSession.objects.filter(id=live.key).update(cwd=live.cwd, model=live.model)


@write_unit
def touch(live: LiveSession) -> None:
    if live.stored:
        StoredSession.objects.filter(id=live.key).update(last_active=djtz.now())


@write_unit
def end(live: LiveSession, reason: str) -> None:
    if live.stored:
        StoredSession.objects.filter(id=live.key).update(
            ended_at=djtz.now(), end_reason=reason, last_active=djtz.now()
        )


def find(key_or_title: str, owner_id: int | None) -> StoredSession | None:
    """A stored session by key, else by exact title (newest first), visible to ``owner_id``."""
    mine = StoredSession.objects.filter(owner_id=owner_id)
    session = mine.filter(id=key_or_title).first()
    if session is None:
        session = mine.filter(title=key_or_title).order_by("-last_active").first()
    return session


def load_messages(session: StoredSession) -> list[dict[str, Any]]:
    return [row_to_wire(row) for row in session.messages.order_by("ordinal")]


@write_unit
def reopen(session: StoredSession) -> None:
    StoredSession.objects.filter(id=session.id).update(ended_at=None, end_reason="", last_active=djtz.now())


def list_sessions(owner_id: int | None, limit: int, title: str | None) -> list[dict[str, Any]]:
    qs = StoredSession.objects.filter(owner_id=owner_id).exclude(source__in=HIDDEN_SOURCES)
    if title:
        if len(title) > TITLE_CHARS:
            # No stored title contains a longer string; and SQLite refuses LIKE patterns
            # over 50,000 bytes ("LIKE or GLOB pattern too complex").
            return []
        qs = qs.filter(title__icontains=title)
    return [
        {
            "id": s.id,
            "title": s.title,
            "preview": s.preview,
            "started_at": s.started_at.timestamp(),
            "message_count": s.message_count,
            "source": s.source,
        }
        for s in qs.order_by("-last_active")[:limit]
    ]


def titles_like(base: str, owner_id: int | None) -> list[str]:
    """Titles of the owner's sessions that are ``base`` or ``base #N``."""
    qs = StoredSession.objects.filter(owner_id=owner_id)
    return list(qs.filter(title=base).values_list("title", flat=True)) + list(
        qs.filter(title__startswith=f"{base} #").values_list("title", flat=True)
    )


def most_recent(owner_id: int | None) -> dict[str, Any] | None:
    """The owner's most recently active session that a person started (no subagents)."""
    found = (
        StoredSession.objects.filter(owner_id=owner_id)
        .exclude(source__in=HIDDEN_SOURCES)
        .order_by("-last_active")
        .first()
    )
    if found is None:
        return None
    return {
        "session_id": found.id,
        "title": found.title,
        "started_at": found.started_at.timestamp(),
        "source": found.source,
    }


@write_unit
def delete(key: str, owner_id: int | None) -> bool:
    deleted, _ = StoredSession.objects.filter(id=key, owner_id=owner_id).delete()
    return deleted > 0
