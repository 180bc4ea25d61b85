"""What keeps a live session busy, as the layers above tell it.

Sessions sit below the agent and the terminal tool, so they do not ask them;
those register here at start-up what they know about a session: its open
requests (waiting for a person) and whether background processes run for it.
Stopping a session's work goes the other way, by the ``session_stopping`` signal
(:mod:`ws_gateway.signals`), and building its agent by :func:`install_builder`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# live session -> its open interactive requests (objects with ``.public()`` and ``.kind``)
RequestsOf = Callable[[Any], list[Any]]
# live session -> whether background processes of it run (they keep an orphan alive)
RunningOf = Callable[[Any], bool]
# live session -> its agent (raises when it cannot be built)
Builder = Callable[[Any], Any]

_requests: list[RequestsOf] = []
_running: list[RunningOf] = []
_builder: list[Builder] = []


def register(*, requests: RequestsOf | None = None, running: RunningOf | None = None) -> None:
    """Tell sessions where a session's open requests and running processes are (idempotent)."""
    if requests is not None and requests not in _requests:
        _requests.append(requests)
    if running is not None and running not in _running:
        _running.append(running)


def install_builder(builder: Builder) -> None:
    """The function that builds a session's agent (the agent layer, at start-up)."""
    _builder[:] = [builder]


def open_requests(live: Any) -> list[Any]:
    return [request for source in _requests for request in source(live)]


def processes_running(live: Any) -> bool:
    return any(running(live) for running in _running)


def build(live: Any) -> Any:
    if not _builder:
        raise RuntimeError("no agent builder installed (ws_gateway's AppConfig.ready did not run)")
    return _builder[0](live)
