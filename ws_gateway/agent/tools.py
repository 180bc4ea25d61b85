"""Agent tools: what a backend may call during a turn, with JSON schemas for function calling.

:func:`run_tool` wraps every call in ``tool.start`` / ``tool.complete`` and
stores the tool row; backends (demo directives, OpenAI function calls) go
through it so every client sees the same events whichever backend runs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import terminal
from ..conf import gateway_settings
from ..processes import processes
from ..sessions.live import LiveSession
from ..terminal import CommandResult
from . import approvals
from .context import TurnContext, TurnFailed
from .pending import pending, timeout_for
from .subagents import DelegationPaused, delegate

TODO_STATUSES = ("pending", "in_progress", "completed", "cancelled")


@dataclass
class ToolOutput:
    """A tool's answer: ``result`` is what the model and the transcript get.

    ``data`` replaces ``result`` on the wire when set (a structured result), and ``fields``
    are extra ``tool.complete`` payload fields (the todo tool's ``todos``).
    """

    result: str
    summary: str | None = None
    denied: bool = False
    data: dict[str, Any] | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[TurnContext, dict[str, Any]], ToolOutput]
    context: Callable[[dict[str, Any]], str] = lambda args: ""
    # Extra ``tool.start`` payload fields derived from the arguments.
    start_fields: Callable[[dict[str, Any]], dict[str, Any]] = lambda args: {}

    def schema(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


TOOLS: dict[str, Tool] = {}


def register(tool: Tool) -> Tool:
    TOOLS[tool.name] = tool
    return tool


def disabled(session: LiveSession) -> set[str]:
    """Tools switched off for a session (``tools.configure``)."""
    return set(session.config.get("disabled_tools", ()))


def enabled(session: LiveSession) -> list[Tool]:
    off = disabled(session)
    return [tool for name, tool in TOOLS.items() if name not in off]


def run_tool(ctx: TurnContext, name: str, args: dict[str, Any]) -> ToolOutput:
    """Run one tool call with its events; an unknown tool or bad arguments is a tool error, not a crash."""
    tool = TOOLS.get(name)
    context = tool.context(args) if tool else ""
    tool_id = ctx.tool_start(name, args, context, tool.start_fields(args) if tool else None)
    started = time.monotonic()
    if tool is None:
        output = ToolOutput(f"error: unknown tool {name}")
    elif name in disabled(ctx.session):
        output = ToolOutput(f"error: the {name} tool is disabled for this session", summary="disabled")
    else:
        try:
            output = tool.run(ctx, args)
        except TurnFailed:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            output = ToolOutput(f"error: bad arguments for {name}: {exc}")
    ctx.tool_complete(
        tool_id,
        name,
        args,
        output.result,
        time.monotonic() - started,
        output.summary,
        context,
        data=output.data,
        fields=output.fields,
    )
    return output


# -- terminal -----------------------------------------------------------------


def run_command(ctx: TurnContext, command: str, timeout_s: float | None = None) -> CommandResult:
    """Run a command in the session's cwd with the configured backend: drained, capped, interruptible."""
    return terminal.run(
        terminal.backend(),
        command,
        ctx.session.cwd or os.getcwd(),
        dict(ctx.session.secret_env),
        timeout_s or gateway_settings.COMMAND_TIMEOUT_S,
        gateway_settings.COMMAND_OUTPUT_CHARS,
        ctx.wait,
    )


def _terminal(ctx: TurnContext, args: dict[str, Any]) -> ToolOutput:
    command = args["command"]
    if not isinstance(command, str) or not command.strip():
        raise ValueError("command must be a non-empty string")
    timeout = args.get("timeout")
    if timeout is not None:
        timeout = float(timeout)
        if not 0 < timeout <= 86400:
            raise ValueError("timeout must be a number of seconds between 0 and 86400")
    if not approvals.may_run(ctx, command):
        return ToolOutput(f"denied: {command}", summary="denied", denied=True)
    try:
        if args.get("background"):
            proc = processes.start(ctx.session, command, ctx.session.secret_env)
            return ToolOutput(f"started {proc.id}", summary=f"pid {proc.popen.pid}")
        result = run_command(ctx, command, timeout)
    except (terminal.BackendUnavailable, OSError) as exc:
        return ToolOutput(f"error: cannot run the command: {exc}", summary="not run")
    return ToolOutput(f"exit {result.exit_code}\n{result.output}", summary=f"exit {result.exit_code}")


register(
    Tool(
        "terminal",
        "Run a shell command in the session's working directory and return its exit code and output.",
        {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The shell command to run."},
                "timeout": {"type": "number", "description": "Seconds before it is killed."},
                "background": {
                    "type": "boolean",
                    "description": "Start it as a background process and return its process id.",
                },
            },
            "required": ["command"],
        },
        _terminal,
        context=lambda args: str(args.get("command", "")),
    )
)


# -- todo -------------------------------------------------------------------


def set_todos(ctx: TurnContext, todos: list[dict[str, Any]]) -> None:
    """Replace the session's todo list and emit ``todo.updated`` with the next revision."""
    live = ctx.session
    with live.lock:
        live.todos = todos
        live.todo_revision += 1
        payload = {"todos": list(todos), "revision": live.todo_revision}
    ctx.emit("todo.updated", payload)


def parse_todos(args: dict[str, Any]) -> list[dict[str, str]]:
    """The todo tool's list, normalised (``id``, ``content``, ``status``); ValueError when malformed."""
    items = args["todos"]
    if not isinstance(items, list):
        raise ValueError("todos must be a list")
    todos = []
    for i, item in enumerate(items, 1):
        content = item["content"] if isinstance(item, dict) else str(item)
        status = item.get("status", "pending") if isinstance(item, dict) else "pending"
        if status not in TODO_STATUSES:
            raise ValueError(f"status must be one of {', '.join(TODO_STATUSES)}")
        todos.append(
            {
                "id": str(item.get("id", i)) if isinstance(item, dict) else str(i),
                "content": content,
                "status": status,
            }
        )
    return todos


def _todo_start_fields(args: dict[str, Any]) -> dict[str, Any]:
    try:
        return {"todos": parse_todos(args)}
    except (KeyError, TypeError, ValueError):
        return {}


def _todo(ctx: TurnContext, args: dict[str, Any]) -> ToolOutput:
    todos = parse_todos(args)
    set_todos(ctx, todos)
    counts = {status: sum(1 for t in todos if t["status"] == status) for status in TODO_STATUSES}
    data = {"todos": todos, "summary": {"total": len(todos), **counts}}
    return ToolOutput(
        json.dumps(data, ensure_ascii=False),
        summary=f"{len(todos)} item(s)",
        data=data,
        fields={"todos": todos},
    )


register(
    Tool(
        "todo",
        "Replace the task list shown to the user. Each item has content and a status.",
        {
            "type": "object",
            "properties": {
                "todos": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "content": {"type": "string"},
                            "status": {"type": "string", "enum": list(TODO_STATUSES)},
                        },
                        "required": ["content", "status"],
                    },
                }
            },
            "required": ["todos"],
        },
        _todo,
        start_fields=_todo_start_fields,
    )
)


# -- clarify ------------------------------------------------------------------


def clarify(ctx: TurnContext, question: str, choices: list[str] | None) -> str:
    """Ask the user a question and wait for the answer ("" when none came)."""
    answer = pending.ask(
        ctx.session, "clarify", {"question": question, "choices": choices}, timeout_for("clarify")
    )
    return answer if isinstance(answer, str) else ""


def _clarify(ctx: TurnContext, args: dict[str, Any]) -> ToolOutput:
    question = args["question"]
    if not isinstance(question, str) or not question.strip():
        raise ValueError("question must be a non-empty string")
    choices = args.get("choices") or None
    if choices is not None and not (isinstance(choices, list) and all(isinstance(c, str) for c in choices)):
        raise ValueError("choices must be a list of strings")
    answer = clarify(ctx, question, choices)
    return ToolOutput(answer, summary="answered" if answer else "no answer")


register(
    Tool(
        "clarify",
        "Ask the user a question when the task is ambiguous; optionally offer choices.",
        {
            "type": "object",
            "properties": {
                "question": {"type": "string"},
                "choices": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["question"],
        },
        _clarify,
        context=lambda args: str(args.get("question", "")),
    )
)


# -- delegate -----------------------------------------------------------------


def _delegate(ctx: TurnContext, args: dict[str, Any]) -> ToolOutput:
    goal, prompt = args["goal"], args.get("prompt") or args["goal"]
    if not isinstance(goal, str) or not goal.strip() or not isinstance(prompt, str):
        raise ValueError("goal must be a non-empty string")
    try:
        sub = delegate(ctx, goal.strip(), prompt)
    except DelegationPaused as exc:
        return ToolOutput(f"error: {exc}", summary="paused")
    return ToolOutput(sub.summary or "", summary=f"{sub.status}, {sub.tool_count} tool call(s)")


register(
    Tool(
        "delegate",
        "Hand a self-contained sub-task to a subagent that works in its own session; returns its answer.",
        {
            "type": "object",
            "properties": {
                "goal": {"type": "string", "description": "Short name of the sub-task."},
                "prompt": {"type": "string", "description": "Full instructions for the subagent."},
            },
            "required": ["goal"],
        },
        _delegate,
        context=lambda args: str(args.get("goal", "")),
    )
)
