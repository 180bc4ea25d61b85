"""The built-in slash commands: /help /status /usage /history /title /model /queue /steer
/stop /undo /retry /clear /tools, and one-line answers for features this gateway does not host."""

from __future__ import annotations

import time

from .agent import tools, turns
from .agent.model_choice import set_model
from .commands import CommandContext, Handler, Result, command, commands
from .conf import gateway_settings
from .sessions import shapes, transcript
from .sessions.live import LiveSession

HISTORY_LINES = 20


@command("/help", "Show available commands", category="Info", aliases=("/h", "/?"))
def help_(ctx: CommandContext) -> Result:
    lines = ["Commands:"] + [f"  {c.name:<10} {c.description}" for c in commands.all()]
    return Result.exec("\n".join(lines))


def status_text(live: LiveSession) -> str:
    """The ``/status`` text (also ``session.status``)."""
    when = "%Y-%m-%d %H:%M"
    provider = live.config.get("backend", gateway_settings.AGENT)
    lines = [
        "Gateway Status",
        "",
        f"Session ID: {live.key}",
        f"Runtime ID: {live.id}",
    ]
    if live.title:
        lines.append(f"Title: {live.title}")
    lines += [
        f"Model: {live.model} ({provider})",
        f"Created: {time.strftime(when, time.localtime(live.started_at))}",
        f"Last Activity: {time.strftime(when, time.localtime(live.last_active))}",
        f"Tokens: {shapes.usage(live)['total']:,}",
        f"Agent Running: {'Yes' if live.running else 'No'}",
        f"Status: {shapes.wire_status(live)}",
        f"Messages: {len(live.messages)}",
        f"Clients: {len(live.clients)}",
        f"Working Directory: {live.cwd}",
    ]
    if live.queue:
        lines.append(f"Queued: {len(live.queue)}")
    return "\n".join(lines)


@command("/status", "Show the session's status", category="Info")
def status(ctx: CommandContext) -> Result:
    return Result.exec(status_text(ctx.require_session()))


@command("/usage", "Show token usage", category="Info")
def usage(ctx: CommandContext) -> Result:
    u = shapes.usage(ctx.require_session())
    return Result.exec(
        f"input {u['input']}  output {u['output']}  total {u['total']}  "
        f"calls {u['calls']}  model {u['model']}"
    )


@command("/history", "Show the recent transcript", category="Info")
def history(ctx: CommandContext) -> Result:
    live = ctx.require_session()
    rows = list(live.messages)[-HISTORY_LINES:]
    if not rows:
        return Result.exec("(no messages)")
    lines = [f"{m['role']:>9}: {' '.join(m.get('text', '').split())[:100]}" for m in rows]
    return Result.exec("\n".join(lines))


@command("/title", "Show or set the session title")
def title(ctx: CommandContext) -> Result:
    live = ctx.require_session()
    if not ctx.arg:
        return Result.exec(f"title: {live.title or '(none)'}")
    transcript.set_title(live, " ".join(ctx.arg.split()))
    return Result.exec(f"title set: {live.title}")


@command("/model", "Show or switch the session's model")
def model(ctx: CommandContext) -> Result:
    live = ctx.require_session()
    if not ctx.arg:
        return Result.exec(f"model: {live.model}")
    set_model(live, ctx.arg)
    return Result.exec(f"model set: {live.model}")


@command("/queue", "Queue a prompt to run after the current turn", dispatched=True, aliases=("/q",))
def queue(ctx: CommandContext) -> Result:
    if not ctx.arg:
        return Result.prefill("/queue ", notice="usage: /queue TEXT")
    return Result.send(ctx.arg)


@command("/steer", "Send guidance into the running turn")
def steer(ctx: CommandContext) -> Result:
    if not ctx.arg:
        return Result.exec("usage: /steer TEXT")
    outcome = turns.steer(ctx.require_session(), ctx.arg)
    return Result.exec(f"steer: {outcome}")


@command("/stop", "Interrupt the running turn")
def stop(ctx: CommandContext) -> Result:
    stopped = turns.interrupt(ctx.require_session())
    return Result.exec("interrupted" if stopped else "nothing running")


@command("/undo", "Remove the last exchange")
def undo(ctx: CommandContext) -> Result:
    removed = turns.undo(ctx.require_session())
    return Result.exec(f"removed {removed} message(s)")


@command("/retry", "Remove the last exchange and send its prompt again", dispatched=True)
def retry(ctx: CommandContext) -> Result:
    live = ctx.require_session()
    prompts = [m["text"] for m in live.messages if m["role"] == "user"]
    if not prompts:
        return Result.exec("nothing to retry")
    turns.undo(live)
    return Result.send(prompts[-1], notice="retrying the last prompt")


@command("/clear", "Clear the session's transcript")
def clear(ctx: CommandContext) -> Result:
    live = ctx.require_session()
    with live.lock:
        if live.running:
            return Result.exec("busy: /stop the running turn first")
        removed = transcript.truncate(live, 0)
    return Result.exec(f"cleared {removed} message(s)")


@command("/tools", "List the session's tools (enable/disable with tools.configure)", category="Tools")
def tools_(ctx: CommandContext) -> Result:
    live = ctx.require_session()
    off = tools.disabled(live)
    lines = ["Tools:"] + [
        f"  {'off' if name in off else 'on ':<4} {name:<10} {tool.description}"
        for name, tool in sorted(tools.TOOLS.items())
    ]
    return Result.exec("\n".join(lines))


def _not_offered(feature: str) -> Handler:
    def run(ctx: CommandContext) -> Result:
        return Result.exec(f"{feature} are not available on this gateway.")

    return run


# Features of a hermes install that this gateway does not host: one clear line each.
for _name, _feature in (("/skills", "Skills"), ("/plugins", "Plugins"), ("/pet", "Pets")):
    command(_name, f"{_feature} (not available on this gateway)", category="Unavailable")(
        _not_offered(_feature)
    )
