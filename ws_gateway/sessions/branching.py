"""``session.branch``: a new stored session with a copy of a transcript, and its title."""

from __future__ import annotations

import re
from typing import Any

from ..caller import Caller, Subscription
from ..errors import NOTHING_TO_BRANCH, RpcError
from . import store
from .lifecycle import PORTABLE_CONFIG, create
from .live import LiveSession
from .transcript import set_title

_NUMBERED = re.compile(r"^(.*?) #(\d+)$")


def next_title(base_title: str, existing: list[str]) -> str:
    """The next title of a lineage: ``x`` -> ``x #2`` -> ``x #3`` (the first free number)."""
    match = _NUMBERED.match(base_title)
    base = match.group(1) if match else base_title
    numbers = [1 for t in existing if t == base]
    for title in existing:
        found = _NUMBERED.match(title)
        if found and found.group(1) == base:
            numbers.append(int(found.group(2)))
    return f"{base} #{max(numbers) + 1}" if numbers else base


def branch(
    caller: Caller, live: LiveSession, name: str = "", upto: int | None = None
) -> tuple[dict[str, Any], Subscription]:
    """A new live session (attached to the caller) holding the first ``upto`` rows (all by default)."""
    with live.lock:
        history = [dict(m) for m in live.messages]
    if upto is not None:
        history = history[:upto]
    if not history:
        raise RpcError(NOTHING_TO_BRANCH, "nothing to branch: send a message first")
    base = name or live.title or "branch"
    title = name or next_title(base, store.titles_like(base, live.owner_id))
    child, sub = create(
        caller,
        cwd=live.cwd,
        title=title,
        model=live.model,
        source=live.source,
        messages=history,
        parent_key=live.key,
        config={k: v for k, v in live.config.items() if k in PORTABLE_CONFIG},
    )
    set_title(child, title)
    return {
        "session_id": child.id,
        "stored_session_id": child.key,
        "title": title,
        "parent": live.key,
        "message_count": len(history),
    }, sub
