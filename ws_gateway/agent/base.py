"""The backend interface: a backend builds one agent per session."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..sessions.live import LiveSession


class Agent(Protocol):
    """A session's agent, built once per live session."""

    model: str

    def tools(self) -> dict[str, list[str]]:
        """Tool names by toolset, for ``session.info``."""
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
    from django.utils.module_loading import import_string

    cls = import_string(BACKENDS.get(spec, spec))
    return cls(**(options or {}))
