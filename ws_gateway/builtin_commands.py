"""The built-in slash commands: /help /status /usage /history /title /model /queue /steer
/stop /undo /retry /clear."""

from __future__ import annotations

from .agent import turns
from .commands import CommandContext, Result, command, commands
from .sessions import service

HISTORY_LINES = 20


@command("/help", "Show available commands", category="Info", aliases=("/h", "/?"))
def help_(ctx: CommandContext) -> Result:
    lines = ["Commands:"] + [f"  {c.name:<10} {c.description}" for c in commands.all()]
    return Result.exec("\n".join(lines))


@command("/status", "Show the session's status", category="Info")
def status(ctx: CommandContext) -> Result:
    live = ctx.require_session()
    lines = [
        f"session   {live.id} ({live.key})",
        f"title     {live.title or '(none)'}",
        f"model     {live.model}",
        f"status    {service.wire_status(live)}",
        f"messages  {len(live.messages)}",
        f"clients   {len(live.clients)}",
        f"cwd       {live.cwd}",
        f"queued    {len(live.queue)}",
    ]
    return Result.exec("\n".join(lines))


@command("/usage", "Show token usage", category="Info")
def usage(ctx: CommandContext) -> Result:
    u = service.usage(ctx.require_session())
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
    service.set_title(live, " ".join(ctx.arg.split()))
    return Result.exec(f"title set: {live.title}")


@command("/model", "Show or switch the session's model")
def model(ctx: CommandContext) -> Result:
    from .methods.config import set_model

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
        removed = service.truncate(live, 0)
    return Result.exec(f"cleared {removed} message(s)")
