"""Deployment-level methods the hermes clients call: ``setup.status``, ``model.options``,
``reload.env``, ``reload.mcp`` (PROTOCOL.md section 13)."""

from __future__ import annotations

from typing import Any

from ..agent.base import load_backend
from ..conf import gateway_settings
from ..rpc import method
from ..rpc.call import Call
from ..sessions import lifecycle
from .workspace import caller_session


def _backend_configured(name: str) -> bool:
    try:
        backend = load_backend(name, gateway_settings.AGENT_OPTIONS if name != "demo" else {})
    except Exception:
        return False
    configured = getattr(backend, "configured", None)
    return bool(configured()) if callable(configured) else True


@method("setup.status")
def setup_status(call: Call) -> dict[str, Any]:
    """Whether the deployment's backend can run a turn (the client then skips its setup screen)."""
    return {"provider_configured": _backend_configured(gateway_settings.AGENT)}


def _providers(current_backend: str, current_model: str) -> list[dict[str, Any]]:
    names = ["demo"]
    options = gateway_settings.AGENT_OPTIONS
    if gateway_settings.AGENT == "openai" or options.get("base_url") or options.get("model"):
        names.append("openai")
    if gateway_settings.AGENT not in names:
        names.append(gateway_settings.AGENT)
    providers = []
    for name in names:
        models = _models(name)
        providers.append(
            {
                "slug": name,
                "name": name,
                "models": models,
                "total_models": len(models),
                "is_current": name == current_backend,
                "authenticated": _backend_configured(name),
                "auth_type": "none",
            }
        )
    return providers


def _models(name: str) -> list[str]:
    if name == "demo":
        return ["demo"]
    try:
        backend = load_backend(name, gateway_settings.AGENT_OPTIONS)
    except Exception:
        return []
    list_models = getattr(backend, "list_models", None)
    return list(list_models()) if callable(list_models) else []


@method("model.options", pool=True)
def model_options(call: Call) -> dict[str, Any]:
    """The deployment's backends and their models (the OpenAI-compatible server's list, cached)."""
    live = caller_session(call) if call.params.string("session_id") else None
    backend = live.config.get("backend", gateway_settings.AGENT) if live else gateway_settings.AGENT
    model = live.model if live else lifecycle.default_model()
    return {"providers": _providers(backend, model), "model": model, "provider": backend}


@method("reload.env")
def reload_env(call: Call) -> dict[str, Any]:
    # Settings are read once at start-up (hermes_site/settings.py); nothing to re-read.
    return {"updated": 0}


@method("reload.mcp")
def reload_mcp(call: Call) -> dict[str, Any]:
    return {"status": "unchanged", "message": "this gateway has no MCP servers", "servers": 0}
