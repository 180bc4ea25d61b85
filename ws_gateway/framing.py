"""Sizes of frames on the wire: the one message limit, and fitting content under it.

Every WebSocket message, in both directions, is at most ``MAX_MESSAGE_BYTES``
bytes of UTF-8 (the consumer sets the server's own limit from it on accept).
What the server has to say beyond that is cut here, never dropped: long
streaming text becomes several events, lists become pages, a field that cannot
fit is left out and named. These are pure functions over strings and JSON
values; callers choose budgets and log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from .conf import gateway_settings

# Bytes kept free in a response around content sized to fit a frame: the envelope,
# the request id (usually short), the other result fields measured separately.
RESPONSE_SLACK = 1024
# An event frame stays this far below the limit, so any event also fits, whole, in a
# ``session.events.since`` page (whose envelope and result fields take the rest).
EVENT_HEADROOM = 8 * 1024
# A UTF-8 code point takes at most 4 bytes; JSON escapes a character in at most 6.
_MAX_UTF8_PER_CHAR = 4
_MAX_JSON_PER_CHAR = 6

# A JSON escape that decodes to a lone surrogate or NUL: the only way such text enters
# (a text frame itself is valid UTF-8, and raw control characters are not JSON).
_BAD_ESCAPE = re.compile(r"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000)")
_UNSTORABLE = re.compile("[\ud800-\udfff\x00]")


def max_message_bytes() -> int:
    """The largest WebSocket message (UTF-8 bytes) sent or accepted."""
    return int(gateway_settings.MAX_MESSAGE_BYTES)


def event_budget() -> int:
    """The largest event frame the outbox sends (bytes)."""
    limit = max_message_bytes()
    return limit - min(EVENT_HEADROOM, limit // 8)


def utf8_len(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (lone surrogates, sent escaped, count as their 6-byte escape)."""
    if text.isascii():
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return len(text.encode("utf-8", "backslashreplace"))


def fits(text: str, budget: int) -> bool:
    """Whether ``text`` is at most ``budget`` bytes of UTF-8 (cheap for short text)."""
    return len(text) * _MAX_UTF8_PER_CHAR <= budget or utf8_len(text) <= budget


def json_len(value: Any) -> int:
    """Bytes of ``value`` as sent (UTF-8 JSON without ASCII escaping)."""
    return utf8_len(json.dumps(value, ensure_ascii=False))


def split_text(text: str, budget: int) -> list[str]:
    """``text`` cut into parts whose JSON string encodings are each at most ``budget`` bytes.

    The parts concatenate to ``text`` exactly; cuts fall between code points. Sizes are
    measured, not estimated, so escapes (quotes, newlines, control characters) are counted."""
    parts: list[str] = []
    start = 0
    while start < len(text):
        end = _cut(text, start, budget)
        parts.append(text[start:end])
        start = end
    return parts


def head(text: str, budget: int) -> str:
    """The longest prefix of ``text`` (roughly) whose JSON string fits in ``budget`` bytes."""
    if budget < 16 or not text:
        return ""
    return text[: _cut(text, 0, budget)]


def _cut(text: str, start: int, budget: int) -> int:
    """Where a part of ``text`` starting at ``start`` ends so that it encodes in ``budget`` bytes."""
    if budget < 16:
        raise ValueError("budget too small to carry text")
    rest = len(text) - start
    if rest * _MAX_JSON_PER_CHAR + 2 <= budget:
        return len(text)
    # Guess from the size of what is left, then shrink until the part fits.
    n = min(rest, budget)
    size = json_len(text[start : start + n])
    while size > budget:
        n = max(1, int(n * budget / size * 0.98))
        size = json_len(text[start : start + n])
    return start + n


def page_back(
    count: int, size_of: Callable[[int], int], budget: int, before: int, limit: int | None
) -> tuple[int, int]:
    """Indexes ``[start, before)`` of the latest items before ``before`` that fit ``budget`` bytes.

    ``size_of(i)`` is item i's encoded size (plus its separator). At least one item is taken
    when there is one, even over the budget (the caller shortens it), so paging always moves."""
    before = max(0, min(before, count))
    start = before
    used = 0
    while start > 0 and (limit is None or before - start < limit):
        size = size_of(start - 1)
        if start < before and used + size > budget:
            break
        used += size
        start -= 1
    return start, before


def page_forward(sizes: Iterable[int], budget: int, limit: int | None) -> int:
    """How many of the leading items fit ``budget`` bytes (at least one when there is one)."""
    used = 0
    taken = 0
    for size in sizes:
        if taken and (used + size > budget or (limit is not None and taken >= limit)):
            break
        used += size
        taken += 1
    return taken


def fit_payload(payload: dict[str, Any], budget: int) -> tuple[dict[str, Any], dict[str, int]]:
    """``payload`` with its largest fields left out until it encodes in ``budget`` bytes.

    Returns the fitted payload and ``{field: bytes}`` of what was left out (empty when
    the payload already fits)."""
    if json_len(payload) <= budget:
        return payload, {}
    out = dict(payload)
    omitted: dict[str, int] = {}
    for key in sorted(out, key=lambda k: json_len(out[k]), reverse=True):
        omitted[key] = json_len(out.pop(key))
        if json_len({**out, "omitted": omitted}) <= budget:
            break
    out["omitted"] = omitted
    return out, omitted


def unstorable(value: Any, path: str = "params") -> str | None:
    """Where ``value`` holds text no database or UTF-8 stream can keep (a lone surrogate
    or NUL), as ``params.key[i]``; None when all of it is storable."""
    if isinstance(value, str):
        return path if _UNSTORABLE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = unstorable(key, f"{path} key") or unstorable(item, f"{path}.{key}")
            if where is not None:
                return where
    elif isinstance(value, list):
        for i, item in enumerate(value):
            where = unstorable(item, f"{path}[{i}]")
            if where is not None:
                return where
    return None


def may_hold_unstorable(frame: str) -> bool:
    """False when a raw JSON frame certainly decodes to storable text (the cheap pre-check)."""
    return _BAD_ESCAPE.search(frame) is not None
