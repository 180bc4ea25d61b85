"""The OpenAI-compatible backend: any chat-completions server (OpenAI, vLLM, llama.cpp, Ollama, ...).

One turn is a loop of streamed ``chat.completions`` requests through the
``openai`` package (its sync client, on the turn's own thread):

- ``delta.content`` -> ``message.delta``; ``reasoning_content`` / ``reasoning``
  (where the server sends them) -> ``reasoning.delta``;
- streamed ``tool_calls`` fragments are put together by index
  (``tool.generating`` as a call begins); the calls run through
  :func:`ws_gateway.agent.tools.run_tool` (``tool.start`` / ``tool.complete``),
  their results go back as ``role: tool`` messages and the model is asked
  again, at most ``max_tool_rounds`` times;
- guidance sent with ``session.steer`` joins the conversation as user messages
  between rounds;
- the usage chunk (``stream_options.include_usage``) -> ``session.usage``.

The interrupt flag is checked between chunks and the stream is then closed;
a watchdog also cuts the connection of an interrupted turn whose server is
silent (a long prompt being processed, a slow first token). HTTP errors,
connection failures, timeouts and streams that break off end the turn with
``TurnFailed`` (``message.complete {status: "error"}``). The client's own
retries (``max_retries``) cover connection errors and 408/429/5xx answers
before a stream starts. The API key is never logged nor shown in an error.

Options (``WS_GATEWAY["AGENT_OPTIONS"]``): ``base_url``, ``api_key`` (may be
empty for local servers), ``model``, ``timeout_s`` (60), ``max_retries`` (2),
``max_tool_rounds`` (8), ``temperature``, ``system_prompt``.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

# The "openai" extra (pip install "ws-gateway[openai]"). This module is imported only when the
# backend is chosen (ws_gateway.agent.base.load_backend), so the demo backend never needs it.
import openai

from . import tools
from .base import BACKENDS
from .context import TurnContext, TurnFailed

if TYPE_CHECKING:
    from ..sessions.live import LiveSession

log = logging.getLogger(__name__)

# Local servers (llama.cpp, vLLM, Ollama) take any key; the client insists on one.
PLACEHOLDER_API_KEY = "no-key"
DETAIL_CHARS = 500
SUMMARY_REQUEST = (
    "Summarise the conversation so far for your own later use: the user's goals, decisions, "
    "facts learned and open tasks. Be concise."
)
WATCH_INTERVAL_S = 0.1
OPTIONS = (
    "base_url",
    "api_key",
    "model",
    "timeout_s",
    "max_retries",
    "max_tool_rounds",
    "temperature",
    "system_prompt",
)

MODEL_LIST_TIMEOUT_S = 2.0
MODEL_LIST_TTL_S = 60.0
_model_lists: dict[tuple[Any, ...], tuple[float, list[str]]] = {}
_clients: dict[tuple[Any, ...], openai.OpenAI] = {}
_clients_lock = threading.Lock()


def _client(base_url: str | None, api_key: str, timeout_s: float, max_retries: int) -> openai.OpenAI:
    """One client (and connection pool) per configuration, shared by the sessions using it."""
    key = (base_url, api_key, timeout_s, max_retries)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = openai.OpenAI(
                base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=max_retries
            )
        return client


def _display_url(url: str | None) -> str:
    """The base URL for messages, without any user:password part."""
    if not url:
        return "the default OpenAI endpoint"
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def _option(options: dict[str, Any], name: str, default: Any) -> Any:
    """An option's value; missing, None or "" (an unset environment variable) mean the default."""
    value = options.get(name)
    return default if value is None or value == "" else value


def _cause(exc: BaseException) -> str:
    """The underlying reason of a wrapped network error (``Connection refused``, ...)."""
    inner = exc.__cause__ or exc.__context__
    text = str(inner or "").strip()
    return text or exc.__class__.__name__


def _chunks(stream: Any) -> Iterator[Any]:
    """The chunks of a streamed completion. openai releases before 3.x let the HTTP library's
    transport errors (httpx's ReadTimeout, RemoteProtocolError, ...) out of a stream unwrapped;
    they are wrapped here as later releases do, so the turn ends with the same readable reason
    on every supported release."""
    it = iter(stream)
    while True:
        try:
            chunk = next(it)
        except StopIteration:
            return
        except openai.APIError:
            raise
        except Exception as exc:
            request = stream.response.request
            # httpx (and httpx2) name the base of their timeouts TimeoutException.
            if any(cls.__name__ == "TimeoutException" for cls in type(exc).__mro__):
                raise openai.APITimeoutError(request=request) from exc
            raise openai.APIConnectionError(request=request) from exc
        yield chunk


class _Watchdog:
    """Cuts the connection of a stream whose turn is interrupted, also while the server is silent.

    The turn thread checks the interrupt flag between chunks; a server that is
    busy (a long prompt being processed, a slow first token) sends none for a
    while. One thread for the whole process looks at the watched streams every
    ``WATCH_INTERVAL_S`` and shuts down the socket of an interrupted one, so
    the blocked read returns at once. It sleeps while nothing is watched.
    """

    def __init__(self) -> None:
        self._streams: dict[int, tuple[TurnContext, socket.socket]] = {}
        self._tokens = itertools.count(1)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, ctx: TurnContext, response: Any) -> int | None:
        try:
            sock = response.extensions["network_stream"].get_extra_info("socket")
        except Exception:  # another transport: the between-chunks check still applies
            sock = None
        if not isinstance(sock, socket.socket):
            return None
        with self._cond:
            token = next(self._tokens)
            self._streams[token] = (ctx, sock)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="gw-openai-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return token

    def unwatch(self, token: int | None) -> None:
        if token is not None:
            with self._cond:
                self._streams.pop(token, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._streams:
                    self._cond.wait()
                cut = [t for t, (ctx, _) in self._streams.items() if ctx.interrupted]
                for token in cut:
                    _, sock = self._streams.pop(token)
                    with contextlib.suppress(OSError):  # already closed by the turn thread
                        sock.shutdown(socket.SHUT_RDWR)
                self._cond.wait(WATCH_INTERVAL_S)


watchdog = _Watchdog()


class OpenAIBackend:
    """Builds :class:`OpenAIAgent` objects; options as in the module docstring."""

    name = "openai"

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ValueError(f"unknown option(s) for the openai backend: {', '.join(unknown)}")
        self.base_url: str | None = options.get("base_url") or None
        self._api_key: str = options.get("api_key") or PLACEHOLDER_API_KEY
        self.model: str = options.get("model") or ""
        self.timeout_s = float(_option(options, "timeout_s", 60.0))
        self.max_retries = int(_option(options, "max_retries", 2))
        self.max_tool_rounds = int(_option(options, "max_tool_rounds", 8))
        temperature = _option(options, "temperature", None)
        self.temperature = None if temperature is None else float(temperature)
        if self.timeout_s <= 0 or self.max_retries < 0 or self.max_tool_rounds < 0:
            raise ValueError("timeout_s must be > 0, max_retries and max_tool_rounds >= 0")
        self.system_prompt: str = options.get("system_prompt") or ""

    def __repr__(self) -> str:  # never the key
        return f"OpenAIBackend(base_url={_display_url(self.base_url)!r}, model={self.model!r})"

    def build(self, session: LiveSession) -> OpenAIAgent:
        model = session.model if session.model and session.model not in BACKENDS else self.model
        if not model:
            raise ValueError(
                "no model configured: set OPENAI_MODEL (AGENT_OPTIONS['model']) or config.set model"
            )
        return OpenAIAgent(model=model, backend=self)

    def configured(self) -> bool:
        """A model is named: turns can run without the client choosing one."""
        return bool(self.model)

    def list_models(self) -> list[str]:
        """The server's ``/v1/models`` (short timeout, cached); [] when it does not answer."""
        key = (self.base_url, self._api_key)
        now = time.monotonic()
        cached = _model_lists.get(key)
        if cached is not None and now - cached[0] < MODEL_LIST_TTL_S:
            return cached[1]
        try:
            client = self.client().with_options(timeout=MODEL_LIST_TIMEOUT_S, max_retries=0)
            names = sorted(m.id for m in client.models.list())
        except Exception as exc:
            log.info("model list unavailable from %s: %s", _display_url(self.base_url), self.redact(str(exc)))
            names = [self.model] if self.model else []
        _model_lists[key] = (now, names)
        return names

    def client(self) -> openai.OpenAI:
        return _client(self.base_url, self._api_key, self.timeout_s, self.max_retries)

    def redact(self, text: str) -> str:
        """``text`` without the API key (some servers echo it in their errors)."""
        key = self._api_key
        if key and key != PLACEHOLDER_API_KEY and len(key) >= 4:
            text = text.replace(key, "***")
        return text


@dataclass
class OpenAIAgent:
    model: str
    backend: OpenAIBackend = field(repr=False)

    def tools(self) -> dict[str, list[str]]:
        return {"openai": sorted(tools.TOOLS)}

    def summarize(self, rows: list[dict[str, Any]], focus: str = "") -> str:
        """A summary of ``rows`` written by the model (one non-streamed request)."""
        ask = SUMMARY_REQUEST + (f" Focus on: {focus}." if focus else "")
        messages: Any = [*history_messages(rows), {"role": "user", "content": ask}]
        try:
            response = self.backend.client().chat.completions.create(model=self.model, messages=messages)
        except Exception as exc:
            raise RuntimeError(self.backend.redact(str(exc))) from None
        return response.choices[0].message.content or ""

    def run_turn(self, ctx: TurnContext) -> None:
        try:
            OpenAITurn(self.backend, self.model, ctx).run()
        except TurnFailed as exc:
            log.warning("openai turn failed session=%s model=%s: %s", ctx.session.id, self.model, exc)
            raise


# -- one turn -------------------------------------------------------------------


def history_messages(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Transcript rows as chat messages.

    Tool rows become an assistant ``tool_calls`` message (one per run of
    consecutive tool rows) followed by their ``role: tool`` results, before
    the assistant's reply text of that exchange.
    """
    out: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []

    def flush() -> None:
        if calls:
            out.append({"role": "assistant", "content": None, "tool_calls": list(calls)})
            out.extend(results)
            calls.clear()
            results.clear()

    for i, row in enumerate(rows):
        role, text = row.get("role"), row.get("text") or ""
        if role == "tool":
            call_id = f"call_h{i}"
            args = row.get("args")
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {
                        "name": row.get("name") or "tool",
                        "arguments": json.dumps(args if isinstance(args, dict) else {}),
                    },
                }
            )
            results.append({"role": "tool", "tool_call_id": call_id, "content": text})
            continue
        flush()
        if role == "user":
            out.append({"role": "user", "content": text})
        elif role == "assistant" and text.strip():
            out.append({"role": "assistant", "content": text})
    flush()
    return out


def user_content(prompt: str, attachments: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """The user message's content: plain text, or text and images (data URLs) when attached."""
    if not attachments:
        return prompt
    parts: list[dict[str, Any]] = [{"type": "text", "text": prompt}]
    for image in attachments:
        url = f"data:{image['mime']};base64,{base64.b64encode(image['data']).decode()}"
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


@dataclass
class ToolCall:
    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass
class Round:
    """What one streamed response said."""

    text: list[str] = field(default_factory=list)
    calls: dict[int, ToolCall] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Any = None
    chunks: int = 0


class OpenAITurn:
    def __init__(self, backend: OpenAIBackend, model: str, ctx: TurnContext) -> None:
        self.backend = backend
        self.model = model
        self.ctx = ctx
        self.url = _display_url(backend.base_url)
        self.messages: list[dict[str, Any]] = []
        system = [backend.system_prompt] if backend.system_prompt else []
        personality = ctx.session.config.get("personality")
        if personality:  # config.set personality (the hermes client's /personality)
            system.append(f"Answer in this style: {personality}")
        if system:
            self.messages.append({"role": "system", "content": "\n\n".join(system)})
        self.messages += history_messages(ctx.history)
        self.messages.append({"role": "user", "content": user_content(ctx.prompt, ctx.attachments)})

    def run(self) -> None:
        ctx = self.ctx
        tool_rounds = 0
        while not ctx.interrupted:
            rnd = self.stream(tool_rounds)
            if ctx.interrupted:
                return
            calls = [rnd.calls[i] for i in sorted(rnd.calls)]
            text = "".join(rnd.text)
            if calls:
                if tool_rounds >= self.backend.max_tool_rounds:
                    raise TurnFailed(
                        f"the model kept calling tools: stopped after {tool_rounds} tool rounds "
                        f"(max_tool_rounds={self.backend.max_tool_rounds})"
                    )
                tool_rounds += 1
                self.run_calls(text, calls)
                if ctx.interrupted:
                    return
            elif text:
                self.messages.append({"role": "assistant", "content": text})
            steers = ctx.take_steers()
            self.messages += [{"role": "user", "content": s} for s in steers]
            if not calls and not steers:
                return

    # -- one request ----------------------------------------------------------

    def request(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        enabled = tools.enabled(self.ctx.session)
        if enabled:
            kwargs["tools"] = [t.schema() for t in enabled]
        if self.backend.temperature is not None:
            kwargs["temperature"] = self.backend.temperature
        effort = self.ctx.session.config.get("reasoning_effort")
        if effort:  # only when a person chose one (config.set reasoning)
            kwargs["reasoning_effort"] = effort
        return kwargs

    def fail(self, message: str) -> TurnFailed:
        return TurnFailed(self.backend.redact(message))

    def stream(self, round_no: int) -> Round:
        ctx = self.ctx
        rnd = Round()
        log.debug("openai request session=%s model=%s round=%d", ctx.session.id, self.model, round_no)
        try:
            stream = self.backend.client().chat.completions.create(**self.request())
        except openai.APIStatusError as exc:
            raise self.fail(self.status_message(exc)) from None
        except openai.APITimeoutError:
            raise self.fail(
                f"the model server at {self.url} did not answer within {self.backend.timeout_s:g} s"
            ) from None
        except openai.APIConnectionError as exc:
            raise self.fail(f"could not reach the model server at {self.url}: {_cause(exc)}") from None
        except openai.OpenAIError as exc:
            raise self.fail(f"the model request failed: {exc}") from None
        watch = watchdog.watch(ctx, stream.response)
        try:
            for chunk in _chunks(stream):
                if ctx.interrupted:
                    break
                ctx.touch()
                rnd.chunks += 1
                self.apply(rnd, chunk)
        except openai.APIError as exc:
            if not ctx.interrupted:  # else: the watchdog cut the connection; the turn just stops
                raise self.fail(self.stream_error(exc, rnd)) from None
        finally:
            watchdog.unwatch(watch)
            stream.close()
            if rnd.usage is not None:
                self.report_usage(rnd.usage)
        if rnd.finish_reason is None and not ctx.interrupted:
            raise self.fail(
                f"the model server's stream ended after {rnd.chunks} chunks before the answer was "
                "finished (no finish_reason)"
            )
        return rnd

    def stream_error(self, exc: openai.APIError, rnd: Round) -> str:
        if isinstance(exc, openai.APITimeoutError):
            return (
                f"the model server stopped sending for {self.backend.timeout_s:g} s in the middle of "
                f"its answer ({self.url})"
            )
        if isinstance(exc, openai.APIConnectionError):
            return f"the model server's stream broke off after {rnd.chunks} chunks: {_cause(exc)}"
        return f"the model server reported an error mid-stream: {exc.message}"

    def status_message(self, exc: openai.APIStatusError) -> str:
        body = exc.body
        if isinstance(body, dict):
            detail = body.get("message") or body.get("error") or json.dumps(body)
        elif isinstance(body, str) and body.strip():
            detail = body
        else:
            detail = exc.message
        detail = " ".join(str(detail).split())[:DETAIL_CHARS]
        message = f"the model server answered HTTP {exc.status_code}: {detail}"
        if exc.status_code == 401:
            message += " (check OPENAI_API_KEY)"
        elif exc.status_code == 404:
            message += f" (check OPENAI_BASE_URL - usually ending in /v1 - and the model {self.model!r})"
        return message

    def apply(self, rnd: Round, chunk: Any) -> None:
        """Feed one ``chat.completion.chunk`` into the round and out to the clients."""
        ctx = self.ctx
        if getattr(chunk, "usage", None) is not None:
            rnd.usage = chunk.usage  # the last one counts (some servers repeat running totals)
        for choice in chunk.choices or []:
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta is not None:
                extra = delta.model_extra or {}
                reasoning = extra.get("reasoning_content") or extra.get("reasoning")
                if isinstance(reasoning, str):
                    ctx.reasoning(reasoning)
                text = delta.content or getattr(delta, "refusal", None)
                if text:
                    if not rnd.text and ctx.text and not ctx.text.endswith("\n"):
                        ctx.delta("\n\n")  # a new round's text starts a new paragraph
                    rnd.text.append(text)
                    ctx.delta(text)
                for fragment in delta.tool_calls or []:
                    self.add_fragment(rnd, fragment)
            if choice.finish_reason:
                rnd.finish_reason = choice.finish_reason

    def add_fragment(self, rnd: Round, fragment: Any) -> None:
        index = fragment.index if isinstance(fragment.index, int) else len(rnd.calls)
        call = rnd.calls.get(index)
        if call is None:
            call = rnd.calls[index] = ToolCall(index)
        if fragment.id and not call.id:
            call.id = fragment.id
        function = fragment.function
        if function is None:
            return
        if function.name and function.name != call.name:
            first = not call.name
            call.name += function.name  # a name streamed in pieces; a repeated full name is ignored
            if first:
                self.ctx.tool_generating(call.name)
        arguments = function.arguments
        if isinstance(arguments, dict):  # some servers send an object, not a JSON string
            arguments = json.dumps(arguments)
        if arguments:
            call.arguments += arguments

    def report_usage(self, usage: Any) -> None:
        details = getattr(usage, "completion_tokens_details", None)
        reasoning = getattr(details, "reasoning_tokens", None) or 0
        self.ctx.usage(
            int(getattr(usage, "prompt_tokens", 0) or 0),
            int(getattr(usage, "completion_tokens", 0) or 0),
            int(reasoning),
        )

    # -- tools ------------------------------------------------------------------

    def run_calls(self, text: str, calls: list[ToolCall]) -> None:
        """Run one round's tool calls; their results join the conversation."""
        parsed: list[tuple[ToolCall, dict[str, Any] | None, str]] = []
        for n, call in enumerate(calls):
            call.id = call.id or f"call_{len(self.messages)}_{n}"
            args, error = parse_arguments(call.arguments)
            parsed.append((call, args, error))
        self.messages.append(
            {
                "role": "assistant",
                "content": text or None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {
                            "name": call.name,
                            # Sent back as valid JSON: some servers parse it to render the template.
                            "arguments": (call.arguments.strip() or "{}")
                            if args is not None
                            else json.dumps({"invalid_arguments": call.arguments}),
                        },
                    }
                    for call, args, _ in parsed
                ],
            }
        )
        for call, args, error in parsed:
            if self.ctx.interrupted:
                return
            if args is None:
                result = self.bad_arguments(call, error)
            else:
                result = tools.run_tool(self.ctx, call.name, args).result
            self.messages.append({"role": "tool", "tool_call_id": call.id, "content": result})

    def bad_arguments(self, call: ToolCall, error: str) -> str:
        """A call whose arguments are not a JSON object: a tool error the model can correct."""
        shown = {"arguments": call.arguments}
        tool_id = self.ctx.tool_start(call.name, shown)
        result = (
            f"error: the arguments of {call.name or 'this call'} are not a valid JSON object ({error}); "
            "call it again with valid JSON arguments"
        )
        self.ctx.tool_complete(tool_id, call.name, shown, result, 0.0, "bad arguments")
        return result


def parse_arguments(raw: str) -> tuple[dict[str, Any] | None, str]:
    """A tool call's arguments: (the object, "") or (None, why not)."""
    if not raw.strip():
        return {}, ""
    try:
        value = json.loads(raw)
    except ValueError as exc:
        return None, str(exc)
    if not isinstance(value, dict):
        return None, f"expected an object, got {type(value).__name__}"
    return value, ""
