"""Switching a session's model and backend (``config.set model``, ``/model``, the model picker)."""

from __future__ import annotations

from .. import workers
from ..sessions import lifecycle
from ..sessions.live import LiveSession
from .base import BACKENDS


def set_model(live: LiveSession, value: str) -> None:
    """Switch a session's model; ``backend:model``, a bare backend name, or the hermes picker's
    ``MODEL --provider BACKEND [flags]`` also switch backend.

    The agent is rebuilt in the background and ``session.info`` follows.
    """
    words = value.split()
    if "--provider" in words[:-1]:
        at = words.index("--provider")
        provider, model_words = words[at + 1], [w for w in words[:at] if not w.startswith("--")]
        value = f"{provider}:{' '.join(model_words)}" if provider in BACKENDS else " ".join(model_words)
    backend, _, model = value.partition(":")
    with live.lock:
        if backend in BACKENDS:
            live.config["backend"] = backend
            live.model = model or (backend if backend == "demo" else lifecycle.default_model())
        else:
            live.model = value
        live.agent = None
        live.built.clear()
    workers.submit(lifecycle.build_agent, live)
