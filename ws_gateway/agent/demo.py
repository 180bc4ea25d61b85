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

from . import approvals, compression, tools
from .context import TurnContext, TurnFailed
from .pending import pending, timeout_for

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

    def say_lines(self, text: str) -> None:
        """One visible part that may span lines, streamed one line per delta."""
        lines = text.split("\n")
        self.say_tokens([line + "\n" for line in lines[:-1]] + lines[-1:])


Directive = Callable[[DemoTurn, str], None]


# Largest value of each numeric directive argument: enough for any script, small enough
# that no argument can exhaust memory or overflow a timer.
MAX_STREAM_TOKENS = 1_000_000
MAX_DELAY_MS = 60_000
MAX_SLEEP_MS = 3_600_000
MAX_USAGE_TOKENS = 10**12


def _ints(arg: str, usage: str, count: tuple[int, int], maxima: tuple[int, ...]) -> list[int]:
    """The integer arguments of a directive, each within 0..its maximum (else a clear turn error)."""
    ranges = " ".join(f"0..{m}" for m in maxima[: count[1]])
    try:
        values = [int(v) for v in arg.split()]
    except ValueError:
        raise TurnFailed(f"usage: {usage} (integers {ranges})") from None
    if not count[0] <= len(values) <= count[1]:
        raise TurnFailed(f"usage: {usage} (integers {ranges})")
    for value, maximum in zip(values, maxima, strict=False):
        if not 0 <= value <= maximum:
            raise TurnFailed(f"usage: {usage}: {value} is out of range 0..{maximum}")
    return values


def d_stream(turn: DemoTurn, arg: str) -> None:
    values = _ints(arg, "!stream N [DELAY_MS]", (1, 2), (MAX_STREAM_TOKENS, MAX_DELAY_MS))
    n, delay_ms = values[0], values[1] if len(values) > 1 else 0
    tokens = [f"t{i} " for i in range(1, n)] + [f"t{n}"] if n else []
    turn.say_tokens(tokens, delay_ms / 1000.0)


def d_think(turn: DemoTurn, arg: str) -> None:
    turn.ctx.reasoning(arg)


def d_sleep(turn: DemoTurn, arg: str) -> None:
    (ms,) = _ints(arg, "!sleep MS", (1, 1), (MAX_SLEEP_MS,))
    turn.ctx.wait(ms / 1000.0)


def d_fail(turn: DemoTurn, arg: str) -> None:
    raise TurnFailed(arg or "failed")


def d_title(turn: DemoTurn, arg: str) -> None:
    title = " ".join(arg.split())
    if not title:
        raise TurnFailed("usage: !title TITLE")
    turn.ctx.set_title(title)


def d_usage(turn: DemoTurn, arg: str) -> None:
    tokens_in, tokens_out = _ints(arg, "!usage IN OUT", (2, 2), (MAX_USAGE_TOKENS, MAX_USAGE_TOKENS))
    turn.reported_usage = True
    turn.ctx.usage(tokens_in, tokens_out)


def d_text(turn: DemoTurn, arg: str) -> None:
    turn.say(f"You said: {arg}")


def ran_reply(command: str, output: tools.ToolOutput) -> str:
    """``Ran: COMMAND (exit N)`` plus the output's first line, from a terminal tool result."""
    status, _, text = output.result.partition("\n")
    first = next((line for line in text.splitlines() if line.strip()), "")
    reply = f"Ran: {command} ({status})"
    return f"{reply}\n{first}" if first else reply


def d_run(turn: DemoTurn, arg: str) -> None:
    if not arg:
        raise TurnFailed("usage: !run COMMAND")
    output = tools.run_tool(turn.ctx, "terminal", {"command": arg})
    if turn.ctx.interrupted:
        return
    turn.say_lines(f"Denied: {arg}" if output.denied else ran_reply(arg, output))


def d_bg(turn: DemoTurn, arg: str) -> None:
    if not arg:
        raise TurnFailed("usage: !bg COMMAND")
    output = tools.run_tool(turn.ctx, "terminal", {"command": arg, "background": True})
    if turn.ctx.interrupted:
        return
    turn.say(f"Denied: {arg}" if output.denied else f"Started: {output.result.split()[-1]}")


def d_approve(turn: DemoTurn, arg: str) -> None:
    if not arg:
        raise TurnFailed("usage: !approve COMMAND")
    assessment = approvals.assess(turn.ctx.session, arg)
    approved = approvals.request_approval(turn.ctx, arg, assessment, always_ask=True)
    if turn.ctx.interrupted:
        return
    if not approved:
        turn.say(f"Denied: {arg}")
        return
    d_run(turn, arg)


def d_clarify(turn: DemoTurn, arg: str) -> None:
    question, *choices = [part.strip() for part in arg.split("|")]
    if not question:
        raise TurnFailed("usage: !clarify QUESTION | CHOICE | CHOICE")
    args: dict[str, Any] = {"question": question}
    if [c for c in choices if c]:
        args["choices"] = [c for c in choices if c]
    answer = tools.run_tool(turn.ctx, "clarify", args).result
    if not turn.ctx.interrupted:
        turn.say(f"Answer: {answer or '(none)'}")


def d_sudo(turn: DemoTurn, arg: str) -> None:
    password = pending.ask(turn.ctx.session, "sudo", {}, timeout_for("sudo"))
    if not turn.ctx.interrupted:
        turn.say("sudo: received" if password else "sudo: declined")


def d_secret(turn: DemoTurn, arg: str) -> None:
    env_var, _, prompt = arg.partition(" ")
    if not env_var:
        raise TurnFailed("usage: !secret ENV_VAR PROMPT")
    live = turn.ctx.session
    value = pending.ask(live, "secret", {"prompt": prompt.strip(), "env_var": env_var}, timeout_for("secret"))
    if value:
        with live.lock:
            live.secret_env[env_var] = value
    if not turn.ctx.interrupted:
        turn.say("secret: stored" if value else "secret: skipped")


def d_delegate(turn: DemoTurn, arg: str) -> None:
    goal, sep, prompt = arg.partition("::")
    if not sep or not goal.strip():
        raise TurnFailed("usage: !delegate GOAL :: CHILD PROMPT")
    output = tools.run_tool(turn.ctx, "delegate", {"goal": goal.strip(), "prompt": prompt.strip()})
    if not turn.ctx.interrupted:
        turn.say_lines(f"Delegated: {goal.strip()} -> {output.result}")


def d_todo(turn: DemoTurn, arg: str) -> None:
    items = [item.strip() for item in arg.split(";") if item.strip()]
    if not items:
        raise TurnFailed("usage: !todo A; B; C")
    todos = [
        {"id": str(i), "content": item, "status": "in_progress" if i == 1 else "pending"}
        for i, item in enumerate(items, 1)
    ]
    tools.run_tool(turn.ctx, "todo", {"todos": todos})


def d_todo_done(turn: DemoTurn, arg: str) -> None:
    (n,) = _ints(arg, "!todo-done N", (1, 1), (10_000,))
    todos = [dict(t) for t in turn.ctx.session.todos]
    if not 1 <= n <= len(todos):
        raise TurnFailed(f"!todo-done: no item {n}")
    todos[n - 1]["status"] = "completed"
    if not any(t["status"] == "in_progress" for t in todos):
        following = todos[n:] + todos[: n - 1]
        nxt = next((t for t in following if t["status"] == "pending"), None)
        if nxt is not None:
            nxt["status"] = "in_progress"
    tools.run_tool(turn.ctx, "todo", {"todos": todos})


DIRECTIVES: dict[str, Directive] = {
    "text": d_text,
    "stream": d_stream,
    "think": d_think,
    "sleep": d_sleep,
    "fail": d_fail,
    "title": d_title,
    "usage": d_usage,
    "run": d_run,
    "todo": d_todo,
    "todo-done": d_todo_done,
    "bg": d_bg,
    "approve": d_approve,
    "clarify": d_clarify,
    "sudo": d_sudo,
    "secret": d_secret,
    "delegate": d_delegate,
}


@dataclass
class DemoAgent:
    model: str = "demo"
    directives: dict[str, Directive] = field(default_factory=lambda: DIRECTIVES)

    def tools(self) -> dict[str, list[str]]:
        return {"demo": sorted(tools.TOOLS)}

    def run_turn(self, ctx: TurnContext) -> None:
        turn = DemoTurn(ctx)
        if ctx.attachments:
            turn.say("Attached: " + ", ".join(a["name"] for a in ctx.attachments))
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

    def summarize(self, rows: list[dict[str, Any]], focus: str = "") -> str:
        """Deterministic: the digest of the older rows."""
        return compression.digest(rows, focus)

    def known(self) -> list[str]:
        return sorted(f"!{name}" for name in self.directives if name != "text")


class DemoBackend:
    name = "demo"

    def __init__(self, **options: Any) -> None:
        self.options = options

    def configured(self) -> bool:
        return True

    def build(self, session: LiveSession) -> DemoAgent:
        return DemoAgent(model=session.model or "demo")
