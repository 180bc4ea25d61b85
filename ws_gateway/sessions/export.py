"""``session.save``: the transcript written as JSON into the session's working directory."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

from .. import workspace
from ..errors import BAD_VALUE, RpcError
from .live import LiveSession


def default_name() -> str:
    return f"hermes_conversation_{time.strftime('%Y%m%d_%H%M%S')}.json"


def save(live: LiveSession, name: str | None = None) -> Path:
    """Write ``{model, session_id, session_start, system_prompt, messages}``; returns the path."""
    path = workspace.inside(live.cwd, name or default_name())
    if path.is_dir():
        raise RpcError(BAD_VALUE, f"is a directory: {name}")
    with live.lock:
        document = {
            "model": live.model,
            "session_id": live.key,
            "session_start": datetime.fromtimestamp(live.started_at).isoformat(),
            "system_prompt": "",
            "title": live.title,
            "messages": list(live.messages),
        }
    try:
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")
    except OSError as exc:
        raise RpcError(BAD_VALUE, f"cannot write {path.name}: {exc.strerror}") from None
    return path
