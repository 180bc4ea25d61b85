"""A session's transcript and title: the one write API agents and methods use.

Each write changes memory and the database together, under the session's lock
(which serialises the session's writes).
"""

from __future__ import annotations

from typing import Any

from ..events.outbox import outbox
from . import store
from .lifecycle import check_title
from .live import LiveSession


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
