"""``session.compress``: the older part of a transcript becomes one summary row.

The session's agent writes the summary when it can (``Agent.summarize``);
otherwise (or when it fails) a deterministic digest of the older rows is used,
so compression never loses the session. The newest rows stay verbatim.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..errors import BUSY, RpcError
from ..sessions import shapes, transcript
from ..sessions.live import LiveSession

log = logging.getLogger(__name__)

# Rows kept verbatim after the summary (the last exchanges).
KEEP_RECENT = 4
DIGEST_LINE_CHARS = 100
SUMMARY_PREFIX = "[Summary of the earlier conversation]"


def estimate_tokens(rows: list[dict[str, Any]]) -> int:
    """A rough token count (4 characters a token), as the reference estimates."""
    return sum(len(r.get("text") or "") + len(r.get("reasoning") or "") for r in rows) // 4


def digest(rows: list[dict[str, Any]], focus: str = "") -> str:
    """A deterministic summary: one line per user prompt and assistant reply."""
    lines = [f"Focus: {focus}"] if focus else []
    for row in rows:
        if row.get("role") not in ("user", "assistant"):
            continue
        text = " ".join((row.get("text") or "").split())
        if text:
            lines.append(f"- {row['role']}: {text[:DIGEST_LINE_CHARS]}")
    return "\n".join(lines) or "(nothing was said)"


def _summary_text(live: LiveSession, older: list[dict[str, Any]], focus: str) -> str:
    summarize = getattr(live.agent, "summarize", None)
    if summarize is not None:
        try:
            text = summarize(older, focus)
            if isinstance(text, str) and text.strip():
                return text.strip()
        except Exception as exc:  # the digest still keeps the session usable
            log.warning("summarize failed session=%s: %s", live.id, exc)
    return digest(older, focus)


def compress(live: LiveSession, focus: str = "") -> dict[str, Any]:
    """Replace all but the newest rows by a summary row; the reference's result shape."""
    with live.lock:
        if live.running:
            raise RpcError(BUSY, "session busy: interrupt the running turn before compressing")
        before = list(live.messages)
    older, recent = before[:-KEEP_RECENT] if len(before) > KEEP_RECENT else [], before[-KEEP_RECENT:]
    before_tokens = estimate_tokens(before)
    if not older:
        summary = {"noop": True, "aborted": False, "headline": "nothing to compress"}
        return _result(live, "compressed", 0, before, before, before_tokens, before_tokens, summary)
    text = f"{SUMMARY_PREFIX}\n{_summary_text(live, older, focus)}"
    row = {"role": "assistant", "text": text, "context": "compressed", "timestamp": time.time()}
    after = transcript.replace_messages(live, [row, *recent])
    after_tokens = estimate_tokens(after)
    summary = {
        "noop": False,
        "aborted": False,
        "headline": f"compressed {len(older)} messages into a summary",
        "token_line": f"~{before_tokens:,} -> ~{after_tokens:,} tokens",
    }
    return _result(live, "compressed", len(older), before, after, before_tokens, after_tokens, summary)


def _result(
    live: LiveSession,
    status: str,
    removed: int,
    before: list[dict[str, Any]],
    after: list[dict[str, Any]],
    before_tokens: int,
    after_tokens: int,
    summary: dict[str, Any],
) -> dict[str, Any]:
    return {
        "status": status,
        "removed": removed,
        "before_messages": len(before),
        "after_messages": len(after),
        "before_tokens": before_tokens,
        "after_tokens": after_tokens,
        "summary": summary,
        "usage": shapes.usage(live),
        "info": shapes.info(live),
        "messages": after,
    }
