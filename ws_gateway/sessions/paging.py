"""Pages of a transcript and of the event log that fit one WebSocket message.

Transcript pages go backwards from the newest row (``before`` is a row index,
exclusive); event pages go forwards from ``last_seen``. Pages are sized in
bytes as sent. A row too large for a page of its own is shortened, with a
visible marker, a ``shortened`` map of the full lengths and its ``index``; its
whole text is read in chunks with ``session.message``. Shapes are documented in
docs/protocol.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from .. import framing
from ..backplane.eventlog import LoggedEvent
from ..errors import invalid_params
from ..params import Params

# Row fields that may be long text, shortened in pages and read with session.message.
TEXT_FIELDS = ("text", "reasoning", "context")
MARKER = "\n[... {rest} more characters: session.message index={index} field={field}]"


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    start: int  # index of rows[0] in the transcript
    count: int  # rows in the whole transcript

    @property
    def more(self) -> bool:
        """Earlier rows exist (ask with ``before: start``)."""
        return self.start > 0


class PageParams(TypedDict):
    before: int | None
    limit: int | None


def page_params(params: Params) -> PageParams:
    """``before`` and ``limit`` of a transcript page request (-32602 when malformed)."""
    return {"before": params.integer("before", minimum=0), "limit": params.integer("limit", minimum=1)}


def message_page(
    messages: list[dict[str, Any]], budget: int, before: int | None = None, limit: int | None = None
) -> Page:
    """The newest rows before ``before`` (at most ``limit``) that fit ``budget`` bytes."""
    count = len(messages)
    start, stop = framing.page_back(
        count,
        lambda i: framing.json_len(messages[i]) + 2,
        budget,
        count if before is None else before,
        limit,
    )
    rows = messages[start:stop]
    if len(rows) == 1 and framing.json_len(rows[0]) > budget:
        rows = [shorten_row(rows[0], start, budget)]
    return Page(rows, start, count)


def shorten_row(row: dict[str, Any], index: int, budget: int) -> dict[str, Any]:
    """``row`` with its long text fields cut (marker appended) until it fits ``budget`` bytes."""
    out = dict(row)
    shortened: dict[str, int] = {}
    out["index"] = index
    out["shortened"] = shortened
    for field in sorted((f for f in TEXT_FIELDS if isinstance(out.get(f), str)), key=lambda f: -len(out[f])):
        excess = framing.json_len(out) - budget + 64  # room for the shortened map's entry
        if excess <= 0:
            break
        full = row[field]
        room = framing.json_len(full) - excess - len(MARKER) - 40
        kept = framing.head(full, room) if room > 0 else ""
        out[field] = kept + MARKER.format(rest=len(full) - len(kept), index=index, field=field)
        shortened[field] = len(full)
    if framing.json_len(out) > budget and "args" in out:
        shortened["args"] = framing.json_len(out.pop("args"))
    return out


def message_chunk(
    messages: list[dict[str, Any]], index: int, field: str, offset: int, limit: int | None, budget: int
) -> dict[str, Any]:
    """A piece of one row's text field: characters from ``offset``, as many as fit."""
    if not 0 <= index < len(messages):
        raise invalid_params(f"index must be between 0 and {len(messages) - 1}")
    if field not in TEXT_FIELDS:
        raise invalid_params(f"field must be one of {', '.join(TEXT_FIELDS)}")
    row = messages[index]
    value = row.get(field) or ""
    if not isinstance(value, str):
        value = ""
    rest = value[offset : offset + limit if limit is not None else None]
    piece = framing.head(rest, budget) if rest else ""
    end = offset + len(piece)
    return {
        "index": index,
        "role": row.get("role"),
        "field": field,
        "offset": offset,
        "text": piece,
        "next_offset": end if end < len(value) else None,
        "total_chars": len(value),
    }


def event_page(events: list[LoggedEvent], budget: int, limit: int | None) -> tuple[list[LoggedEvent], bool]:
    """The leading events that fit ``budget`` bytes (at most ``limit``), and whether more follow."""
    taken = framing.page_forward((framing.utf8_len(e.text) + 2 for e in events), budget, limit)
    return events[:taken], taken < len(events)
