"""Paths a client names are confined to the session's working directory.

Methods that read or write files for a client (``complete.path``,
``session.save``, ``image.attach``, ``paste.collapse``, ``input.detect_drop``)
resolve them here: symlinks and ``..`` are resolved first, so nothing outside
the cwd can be reached through them.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import BAD_VALUE, RpcError


def inside(cwd: str, path: str) -> Path:
    """``path`` (relative to ``cwd``, or absolute) resolved; 4002 when it leaves ``cwd``."""
    if not path or "\x00" in path:
        raise RpcError(BAD_VALUE, "path required")
    root = Path(cwd).resolve()
    target = (root / os.path.expanduser(path)).resolve()
    if target != root and root not in target.parents:
        raise RpcError(BAD_VALUE, f"path is outside the session's working directory: {path}")
    return target


def is_inside(cwd: str, path: str) -> bool:
    try:
        inside(cwd, path)
    except RpcError:
        return False
    return True


def complete(cwd: str, word: str, limit: int = 50) -> list[dict[str, str]]:
    """Entries under ``cwd`` whose path starts with ``word`` (directories end with ``/``)."""
    head, _, prefix = word.rpartition("/")
    try:
        base = inside(cwd, head or ".")
    except RpcError:
        return []
    if not base.is_dir():
        return []
    items = []
    try:
        entries = sorted(os.scandir(base), key=lambda e: e.name)
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(prefix) or (entry.name.startswith(".") and not prefix.startswith(".")):
            continue
        text = (f"{head}/" if head else "") + entry.name + ("/" if entry.is_dir() else "")
        items.append({"text": text, "display": entry.name + ("/" if entry.is_dir() else ""), "meta": ""})
        if len(items) >= limit:
            break
    return items
