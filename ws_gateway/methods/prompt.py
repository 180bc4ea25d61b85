"""Turn methods: ``prompt.submit``, ``session.interrupt``, ``session.steer``, ``session.undo``,
``session.usage`` (PROTOCOL.md section 7)."""

from __future__ import annotations

from typing import Any

from ..agent import background, turns
from ..errors import PROCESS_ID_REQUIRED
from ..rpc import RpcError, method
from ..rpc.call import Call
from ..sessions import lifecycle, shapes


def _live(call: Call) -> Any:
    return lifecycle.get_live(call.params.session_id(), call.conn.user_id)


@method("prompt.submit")
def prompt_submit(call: Call) -> dict[str, Any]:
    p = call.params
    live = _live(call)
    text = p.string("text", "")
    call.follow(lifecycle.attach(call.conn, live))
    return turns.submit(
        live,
        text,
        submission_ref=p.string("submission_ref"),
        queued=p.boolean("queued"),
        truncate_before=p.raw("truncate_before_user_ordinal"),
        confirm_truncate=p.boolean("confirm_truncate"),
        confirm_empty=p.boolean("confirm_empty_truncate"),
    )


@method("session.interrupt")
def session_interrupt(call: Call) -> dict[str, Any]:
    live = _live(call)
    return {"status": "interrupted" if turns.interrupt(live) else "not_interrupted"}


@method("session.steer")
def session_steer(call: Call) -> dict[str, Any]:
    live = _live(call)
    return {"status": turns.steer(live, call.params.string("text", ""))}


@method("session.undo")
def session_undo(call: Call) -> dict[str, Any]:
    return {"removed": turns.undo(_live(call))}


@method("session.usage", pool=True)
def session_usage(call: Call) -> dict[str, Any]:
    return shapes.usage(_live(call))


@method("prompt.background")
def prompt_background(call: Call) -> dict[str, Any]:
    live = _live(call)
    text = call.params.string("text", "") or ""
    if not text.strip():
        raise RpcError(PROCESS_ID_REQUIRED, "text required")
    return {"task_id": background.start(live, text)}
