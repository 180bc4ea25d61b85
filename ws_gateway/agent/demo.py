"""The demo backend: deterministic, offline, scripted by the prompt (PROTOCOL.md section 12)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..sessions.live import LiveSession


@dataclass
class DemoAgent:
    model: str = "demo"

    def tools(self) -> dict[str, list[str]]:
        return {"demo": ["terminal", "todo", "clarify", "delegate"]}


class DemoBackend:
    name = "demo"

    def __init__(self, **options: Any) -> None:
        self.options = options

    def build(self, session: LiveSession) -> DemoAgent:
        return DemoAgent(model=session.model or "demo")
