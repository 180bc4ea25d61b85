"""Slash commands: the registry and the built-ins (PROTOCOL.md section 10).

A command is either *plain* (``slash.exec`` runs it and returns its output)
or *dispatched* (it needs the client to act: send a message, prefill the
input; ``slash.exec`` answers 4018 and ``command.dispatch`` returns what to
do). Host projects add commands the same way::

    from ws_gateway.commands import command, Result

    @command("/ping", "Answer pong", category="Custom")
    def ping(ctx):
        return Result.exec("pong")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import BAD_VALUE, SESSION_ID_REQUIRED, RpcError
from .rpc.call import Call
from .sessions.live import LiveSession


@dataclass
class Result:
    """What ``command.dispatch`` returns: ``{type, output?, target?, message?, notice?}``."""

    type: str
    output: str | None = None
    target: str | None = None
    message: str | None = None
    notice: str | None = None

    @classmethod
    def exec(cls, output: str) -> Result:
        return cls("exec", output=output)

    @classmethod
    def send(cls, message: str, notice: str | None = None) -> Result:
        return cls("send", message=message, notice=notice)

    @classmethod
    def prefill(cls, message: str, notice: str | None = None) -> Result:
        return cls("prefill", message=message, notice=notice)

    def to_wire(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class CommandContext:
    call: Call
    name: str  # canonical, with the slash
    arg: str
    session: LiveSession | None

    def require_session(self) -> LiveSession:
        if self.session is None:
            raise RpcError(SESSION_ID_REQUIRED, f"{self.name} needs session_id")
        return self.session


Handler = Callable[[CommandContext], Result]


@dataclass
class Command:
    name: str
    description: str
    handler: Handler
    category: str = "Session"
    dispatched: bool = False  # True: slash.exec answers 4018
    aliases: list[str] = field(default_factory=list)


class CommandRegistry:
    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}
        self._aliases: dict[str, str] = {}

    def add(self, cmd: Command) -> None:
        self._commands[cmd.name] = cmd
        for alias in cmd.aliases:
            self._aliases[alias] = cmd.name

    def resolve(self, name: str) -> tuple[Command | None, str | None]:
        """(command, alias target) for a name with or without its slash."""
        name = "/" + name.lstrip("/").lower()
        if name in self._aliases:
            return self._commands[self._aliases[name]], self._aliases[name]
        return self._commands.get(name), None

    def all(self) -> list[Command]:
        return sorted(self._commands.values(), key=lambda c: c.name)

    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)


commands = CommandRegistry()


def command(
    name: str,
    description: str,
    *,
    category: str = "Session",
    dispatched: bool = False,
    aliases: tuple[str, ...] = (),
) -> Callable[[Handler], Handler]:
    """Register the decorated function as the slash command ``name``."""

    def decorate(handler: Handler) -> Handler:
        commands.add(Command(name, description, handler, category, dispatched, list(aliases)))
        return handler

    return decorate


def catalog() -> dict[str, Any]:
    pairs = [[c.name, c.description] for c in commands.all()]
    categories: dict[str, list[list[str]]] = {}
    for c in commands.all():
        categories.setdefault(c.category, []).append([c.name, c.description])
    return {
        "pairs": pairs,
        "categories": [{"name": name, "pairs": items} for name, items in categories.items()],
        "canon": commands.aliases(),
    }


def complete(text: str) -> dict[str, Any]:
    if not text.startswith("/"):
        return {"items": []}
    prefix = text[1:].lower()
    if " " in prefix:
        return {"items": [], "replace_from": len(text)}
    items = [
        {"text": c.name[1:], "display": c.name, "meta": c.description}
        for c in commands.all()
        if c.name[1:].startswith(prefix)
    ]
    return {"items": items, "replace_from": 1}


def split(line: str) -> tuple[str, str]:
    line = line.strip()
    if not line.lstrip("/"):
        return "", ""
    name, _, arg = line.lstrip("/").partition(" ")
    return name, arg.strip()


def unknown(name: str) -> RpcError:
    return RpcError(BAD_VALUE, f"unknown command: /{name.lstrip('/')} (try /help)")
