"""Agent backends for tests, loaded by dotted path (``AGENT``) as a host project's would be."""

from __future__ import annotations

from typing import Any


class Broken:
    """A backend whose agent cannot be built (a missing key, a bad model name, ...)."""

    def __init__(self, **options: Any) -> None:
        self.options = options

    def build(self, session: Any) -> Any:
        raise RuntimeError("no model server configured")
