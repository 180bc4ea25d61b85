"""``tools.configure``: switch tools on or off for one session (PROTOCOL.md section 13)."""

from __future__ import annotations

from typing import Any

from ..agent import tools
from ..errors import BAD_VALUE
from ..rpc import RpcError, method
from ..rpc.call import Call
from .config import set_session_option
from .workspace import caller_session

ACTIONS = ("enable", "disable")


@method("tools.configure")
def tools_configure(call: Call) -> dict[str, Any]:
    p = call.params
    action = (p.string("action") or "").strip().lower()
    if action not in ACTIONS:
        raise RpcError(BAD_VALUE, f"unknown tools action: {action or '(none)'} (enable or disable)")
    raw = p.array("names") or []
    names = [n.strip() for n in raw if isinstance(n, str) and n.strip()]
    if not names:
        raise RpcError(BAD_VALUE, "names required")
    live = caller_session(call)
    if live is None:
        raise RpcError(BAD_VALUE, "open a session first: tools are configured per session")
    unknown = [n for n in names if n not in tools.TOOLS]
    changed = [n for n in names if n in tools.TOOLS]
    off = tools.disabled(live)
    off = off | set(changed) if action == "disable" else off - set(changed)
    set_session_option(live, "disabled_tools", sorted(off))
    return {
        "changed": changed,
        "unknown": unknown,
        "enabled_toolsets": sorted(t.name for t in tools.enabled(live)),
        "missing_servers": [],
        "reset": False,
        "info": None,
    }
