"""The demo backend: deterministic, offline, scripted by the prompt (PROTOCOL.md section 12).

The prompt is read line by line. Lines that do not start with ``!`` are text:
a run of them is echoed once as ``You said: <lines joined by a space>``, one
``message.delta`` per word. Lines starting with ``!`` are directives, run in
order; the grammar is :data:`DIRECTIVES`. Visible parts of the reply are
joined by a newline. Blank lines are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .context import TurnContext, TurnFailed

if TYPE_CHECKING:
    from ..sessions.live import LiveSession


@dataclass(frozen=True)
class Step:
    name: str  # "text" or a directive name
    arg: str


def parse(prompt: str) -> list[Step]:
    """Split a prompt into text runs and directives, in order."""
    steps: list[Step] = []
    run: list[str] = []
    for raw in prompt.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("!"):
            if run:
                steps.append(Step("text", " ".join(run)))
                run = []
            name, _, arg = line[1:].partition(" ")
            steps.append(Step(name.lower(), arg.strip()))
        else:
            run.append(line)
    if run:
        steps.append(Step("text", " ".join(run)))
    return steps


@dataclass
class DemoTurn:
    """One demo turn: keeps track of visible parts so they are joined by newlines."""

    ctx: TurnContext
    parts: int = 0
    reported_usage: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def say_tokens(self, tokens: list[str], delay_s: float = 0.0) -> None:
        """One visible part, streamed token by token (interruptible between tokens)."""
        if not tokens:
            return
        if self.parts:
            tokens = ["\n" + tokens[0], *tokens[1:]]
        self.parts += 1
        for i, token in enumerate(tokens):
            if i and delay_s and self.ctx.wait(delay_s):
                return
            if self.ctx.interrupted:
                return
            self.ctx.delta(token)

    def say(self, text: str) -> None:
        words = text.split()
        self.say_tokens([w + " " for w in words[:-1]] + words[-1:])


Directive = Callable[[DemoTurn, str], None]


def _ints(arg: str, usage: str, count: tuple[int, int]) -> list[int]:
    try:
        values = [int(v) for v in arg.split()]
    except ValueError:
        raise TurnFailed(f"usage: {usage}") from None
    if not count[0] <= len(values) <= count[1] or any(v < 0 for v in values):
        raise TurnFailed(f"usage: {usage}")
    return values


def d_stream(turn: DemoTurn, arg: str) -> None:
    values = _ints(arg, "!stream N [DELAY_MS]", (1, 2))
    n, delay_ms = values[0], values[1] if len(values) > 1 else 0
    tokens = [f"t{i} " for i in range(1, n)] + [f"t{n}"] if n else []
    turn.say_tokens(tokens, delay_ms / 1000.0)


def d_think(turn: DemoTurn, arg: str) -> None:
    turn.ctx.reasoning(arg)


def d_sleep(turn: DemoTurn, arg: str) -> None:
    (ms,) = _ints(arg, "!sleep MS", (1, 1))
    turn.ctx.wait(ms / 1000.0)


def d_fail(turn: DemoTurn, arg: str) -> None:
    raise TurnFailed(arg or "failed")


def d_title(turn: DemoTurn, arg: str) -> None:
    title = " ".join(arg.split())
    if not title:
        raise TurnFailed("usage: !title TITLE")
    turn.ctx.set_title(title)


def d_usage(turn: DemoTurn, arg: str) -> None:
    tokens_in, tokens_out = _ints(arg, "!usage IN OUT", (2, 2))
    turn.reported_usage = True
    turn.ctx.usage(tokens_in, tokens_out)


def d_text(turn: DemoTurn, arg: str) -> None:
    turn.say(f"You said: {arg}")


DIRECTIVES: dict[str, Directive] = {
    "text": d_text,
    "stream": d_stream,
    "think": d_think,
    "sleep": d_sleep,
    "fail": d_fail,
    "title": d_title,
    "usage": d_usage,
}


@dataclass
class DemoAgent:
    model: str = "demo"
    directives: dict[str, Directive] = field(default_factory=lambda: DIRECTIVES)

    def tools(self) -> dict[str, list[str]]:
        return {"demo": sorted(name for name in self.directives if name != "text")}

    def run_turn(self, ctx: TurnContext) -> None:
        turn = DemoTurn(ctx)
        steps = parse(ctx.prompt)
        unknown = [s.name for s in steps if s.name not in self.directives]
        if unknown:
            raise TurnFailed(f"unknown directive: !{unknown[0]} (known: {', '.join(self.known())})")
        for step in steps:
            if ctx.interrupted:
                break
            self.directives[step.name](turn, step.arg)
            for guidance in ctx.take_steers():
                turn.say(f"Steered: {guidance}")
        if not turn.reported_usage:
            ctx.usage(len(ctx.prompt.split()), len(ctx.text.split()))

    def known(self) -> list[str]:
        return sorted(f"!{name}" for name in self.directives if name != "text")


class DemoBackend:
    name = "demo"

    def __init__(self, **options: Any) -> None:
        self.options = options

    def build(self, session: LiveSession) -> DemoAgent:
        return DemoAgent(model=session.model or "demo")
