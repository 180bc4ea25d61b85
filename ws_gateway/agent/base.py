"""The backend interface: a backend builds one agent per session; the agent runs its turns."""

from __future__ import annotations

from typing import Any, Protocol

from django.utils.module_loading import import_string

from ..conf import gateway_settings
from ..sessions.live import LiveSession
from .context import TurnContext


class Agent(Protocol):
    """A session's agent, built once per live session."""

    model: str

    def tools(self) -> dict[str, list[str]]:
        """Tool names by toolset, for ``session.info``."""
        ...

    def run_turn(self, ctx: TurnContext) -> None:
        """Run one turn on the turn's thread: stream through ``ctx`` (``ctx.emit``, ``ctx.delta``,
        tools, approvals), check ``ctx.interrupted`` often, raise ``TurnFailed`` to fail it."""
        ...


class Backend(Protocol):
    """Builds agents. Chosen by ``WS_GATEWAY["AGENT"]`` or per session by ``config.set model``."""

    name: str

    def build(self, session: LiveSession) -> Agent: ...


BACKENDS = {
    "demo": "ws_gateway.agent.demo.DemoBackend",
    "openai": "ws_gateway.agent.openai_backend.OpenAIBackend",
}


def load_backend(spec: str, options: dict[str, Any] | None = None) -> Backend:
    """A backend by short name (``demo``, ``openai``) or dotted class path."""
    cls = import_string(BACKENDS.get(spec, spec))
    backend: Backend = cls(**(options or {}))
    return backend


def build(live: LiveSession) -> Agent:
    """A session's agent, from the backend its config names (else ``WS_GATEWAY["AGENT"]``)."""
    backend = load_backend(live.config.get("backend", gateway_settings.AGENT), gateway_settings.AGENT_OPTIONS)
    return backend.build(live)
