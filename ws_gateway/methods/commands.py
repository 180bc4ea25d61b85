"""Command methods: ``commands.catalog``, ``complete.slash``, ``slash.exec``, ``command.dispatch``."""

from __future__ import annotations

from typing import Any

from .. import builtin_commands  # noqa: F401  (registers the built-ins)
from ..commands import CommandContext, catalog, commands, complete, split
from ..errors import EMPTY_COMMAND, NOT_PLAIN_SLASH
from ..rpc import RpcError, method
from ..rpc.call import Call
from ..sessions import lifecycle
from ..sessions.live import LiveSession


def _session(call: Call) -> LiveSession | None:
    session_id = call.params.string("session_id")
    return lifecycle.get_live(session_id, call.conn.user_id) if session_id else None


@method("commands.catalog")
def commands_catalog(call: Call) -> dict[str, Any]:
    return catalog()


@method("complete.slash", pool=True)
def complete_slash(call: Call) -> dict[str, Any]:
    return complete(call.params.string("text", ""))


@method("slash.exec", pool=True)
def slash_exec(call: Call) -> dict[str, Any]:
    name, arg = split(call.params.string("command", ""))
    if not name:
        raise RpcError(EMPTY_COMMAND, "empty command")
    cmd, _ = commands.resolve(name)
    if cmd is None:
        return {"output": f"Unknown command: /{name} (try /help)"}
    if cmd.dispatched:
        raise RpcError(NOT_PLAIN_SLASH, f"not a plain slash command: use command.dispatch for {cmd.name}")
    result = cmd.handler(CommandContext(call, cmd.name, arg, _session(call)))
    return {"output": result.output or result.message or "(no output)"}


@method("command.dispatch")
def command_dispatch(call: Call) -> dict[str, Any]:
    p = call.params
    raw = p.string("name", "")
    name, inline_arg = split(raw)
    if not name:
        raise RpcError(EMPTY_COMMAND, "empty command")
    cmd, target = commands.resolve(name)
    if cmd is None:
        raise RpcError(NOT_PLAIN_SLASH, f"unknown command: {name}")
    if target is not None and "/" + name.lower().lstrip("/") != target:
        return {"type": "alias", "target": target}
    arg = p.string("arg") or inline_arg
    return cmd.handler(CommandContext(call, cmd.name, arg, _session(call))).to_wire()
