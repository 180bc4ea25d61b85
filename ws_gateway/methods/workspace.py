"""Methods about the client's terminal and files under the session's cwd (PROTOCOL.md section 13):
``terminal.resize``, ``input.detect_drop``, ``complete.path``, ``paste.collapse``, ``image.attach``.

The hermes client sends some of these without ``session_id``; they then use
the caller's most recently active session. Paths never leave that session's cwd.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import shlex
import time
from pathlib import Path
from typing import Any

from .. import workspace
from ..errors import BAD_VALUE, EMPTY_COMMAND, invalid_params
from ..rpc import RpcError, method
from ..rpc.call import Call
from ..sessions import lifecycle
from ..sessions.live import LiveSession
from ..sessions.registry import registry

IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
}
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_ATTACHMENTS = 8
PASTE_DIR = ".gateway-pastes"
MAX_COLS = 10_000


def caller_session(call: Call) -> LiveSession | None:
    """The session named by ``session_id`` (4001 when not the caller's), else the caller's latest."""
    session_id = call.params.string("session_id")
    if session_id:
        return lifecycle.get_live(session_id, call.conn.user_id)
    attached = registry.of_connection(call.conn.id)
    return attached[0] if attached else None


@method("terminal.resize")
def terminal_resize(call: Call) -> dict[str, Any]:
    cols = call.params.integer("cols", 80, minimum=1)
    assert cols is not None
    cols = min(cols, MAX_COLS)
    session_id = call.params.string("session_id")
    live = lifecycle.find_live(session_id, call.conn.user_id) if session_id else None
    if live is not None:
        with live.lock:
            live.config["cols"] = cols
    return {"cols": cols}


def _dropped_path(live: LiveSession, text: str) -> tuple[Path, str] | None:
    """(existing file under the cwd, rest of the text) when ``text`` starts with such a path."""
    stripped = text.strip()
    if not stripped:
        return None
    try:
        words = shlex.split(stripped)
    except ValueError:
        words = stripped.split()
    candidates = [stripped, *words[:1]]
    for candidate in candidates:
        if candidate.startswith("file://"):
            candidate = candidate[len("file://") :]
        if not workspace.is_inside(live.cwd, candidate):
            continue
        path = workspace.inside(live.cwd, candidate)
        if path.is_file():
            remainder = "" if candidate == stripped else stripped[len(stripped.split(None, 1)[0]) :].strip()
            return path, remainder
    return None


@method("input.detect_drop")
def input_detect_drop(call: Call) -> dict[str, Any]:
    text = call.params.string("text", "") or ""
    live = caller_session(call)
    found = _dropped_path(live, text) if live is not None else None
    if found is None:
        return {"matched": False}
    path, remainder = found
    if live is not None and path.suffix.lower() in IMAGE_TYPES:
        count = _attach(live, path.name, IMAGE_TYPES[path.suffix.lower()], _read_image(path), str(path))
        return {
            "matched": True,
            "is_image": True,
            "path": str(path),
            "name": path.name,
            "count": count,
            "text": remainder or f"[User attached image: {path.name}]",
        }
    text_out = f"[User attached file: {path}]" + (f"\n{remainder}" if remainder else "")
    return {"matched": True, "is_image": False, "path": str(path), "name": path.name, "text": text_out}


@method("complete.path", pool=True)
def complete_path(call: Call) -> dict[str, Any]:
    word = call.params.string("word", "") or ""
    live = caller_session(call)
    if not word or live is None or word.startswith(("/", "~")):
        return {"items": []}
    return {"items": workspace.complete(live.cwd, word.removeprefix("./"))}


@method("paste.collapse")
def paste_collapse(call: Call) -> dict[str, Any]:
    text = call.params.string("text", "") or ""
    if not text:
        raise RpcError(EMPTY_COMMAND, "empty paste")
    lines = text.count("\n") + 1
    live = caller_session(call)
    if live is None:
        return {"placeholder": f"[Pasted text: {lines} lines]", "lines": lines}
    with live.lock:
        live.config["pastes"] = number = live.config.get("pastes", 0) + 1
    folder = workspace.inside(live.cwd, PASTE_DIR)
    folder.mkdir(exist_ok=True)
    path = folder / f"paste_{live.key}_{number}_{time.strftime('%H%M%S')}.txt"
    path.write_text(text, encoding="utf-8")
    placeholder = f"[Pasted text #{number}: {lines} lines -> {path}]"
    return {"placeholder": placeholder, "path": str(path), "lines": lines}


def _read_image(path: Path) -> bytes:
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        raise RpcError(BAD_VALUE, f"image too large: {size} bytes (max {MAX_IMAGE_BYTES})")
    return path.read_bytes()


def _attach(live: LiveSession, name: str, mime: str, data: bytes, path: str = "") -> int:
    with live.lock:
        if len(live.attachments) >= MAX_ATTACHMENTS:
            raise RpcError(BAD_VALUE, f"at most {MAX_ATTACHMENTS} images per prompt")
        live.attachments.append({"name": name, "mime": mime, "data": data, "path": path})
        return len(live.attachments)


def _decode_data(raw: str) -> tuple[str, bytes]:
    """A base64 payload, optionally a ``data:image/...;base64,`` URL: (mime, bytes)."""
    mime = "image/png"
    if raw.startswith("data:"):
        header, _, raw = raw.partition(",")
        mime = header[5:].split(";")[0] or mime
    if mime not in IMAGE_TYPES.values():
        raise RpcError(BAD_VALUE, f"unsupported image type: {mime}")
    try:
        data = base64.b64decode(raw, validate=False)
    except (binascii.Error, ValueError):
        raise invalid_params("data must be base64") from None
    if not data or len(data) > MAX_IMAGE_BYTES:
        raise RpcError(BAD_VALUE, f"image must be 1 to {MAX_IMAGE_BYTES} bytes")
    return mime, data


@method("image.attach")
def image_attach(call: Call) -> dict[str, Any]:
    """An image (a path under the cwd, or base64 ``data``) joins the session's next prompt."""
    p = call.params
    live = lifecycle.get_live(p.session_id(), call.conn.user_id)
    raw_path, data_param = (p.string("path") or "").strip(), p.string("data")
    if data_param:
        mime, data = _decode_data(data_param)
        name = (p.string("name") or "image").strip() or "image"
        count = _attach(live, name, mime, data)
        return {
            "attached": True,
            "name": name,
            "count": count,
            "remainder": "",
            "text": f"[User attached image: {name}]",
        }
    if not raw_path:
        raise RpcError(BAD_VALUE, "path or data required")
    path = workspace.inside(live.cwd, raw_path)
    if not path.is_file():
        raise RpcError(BAD_VALUE, f"image not found: {raw_path}")
    mime = IMAGE_TYPES.get(path.suffix.lower()) or (mimetypes.guess_type(path.name)[0] or "")
    if mime not in IMAGE_TYPES.values():
        raise RpcError(BAD_VALUE, f"unsupported image: {path.name}")
    count = _attach(live, path.name, mime, _read_image(path), str(path))
    return {
        "attached": True,
        "path": str(path),
        "name": path.name,
        "count": count,
        "remainder": "",
        "text": f"[User attached image: {path.name}]",
    }
