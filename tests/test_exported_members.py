"""The declared public API of ws_gateway: pinned, importable, documented, and lazy."""

from __future__ import annotations

import subprocess
import sys

import ws_gateway
from tests.services import ROOT

EXPECTED = [
    "Agent",
    "Backend",
    "Call",
    "Caller",
    "CommandContext",
    "GatewayClient",
    "LiveSession",
    "Params",
    "Result",
    "RpcError",
    "TurnContext",
    "TurnFailed",
    "command",
    "emit",
    "method",
]


def test_the_exported_members_are_exactly_the_declared_ones() -> None:
    # Adding or removing a public name is a decision: change this list with it.
    assert sorted(ws_gateway.__all__) == EXPECTED
    assert set(ws_gateway.__all__) <= set(dir(ws_gateway))


def test_every_exported_member_is_documented_and_ours() -> None:
    for name in ws_gateway.__all__:
        member = getattr(ws_gateway, name)
        assert member.__module__.startswith("ws_gateway."), name
        assert (member.__doc__ or "").strip(), f"{name} has no docstring"


def test_the_agent_protocol_declares_run_turn() -> None:
    assert callable(ws_gateway.Agent.run_turn)
    assert callable(ws_gateway.Agent.tools)


def test_a_missing_name_is_an_attribute_error() -> None:
    try:
        ws_gateway.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("ws_gateway.no_such_name did not raise AttributeError")


def test_importing_the_package_imports_no_django_model() -> None:
    """``import ws_gateway`` before apps are ready (a settings module may do it) must work."""
    code = "import sys, ws_gateway; print(ws_gateway.__version__, 'django.db.models' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    version, loaded = out.stdout.split()
    assert version == ws_gateway.__version__
    assert loaded == "False"
