"""Fixtures of the real-client tier: the unpacked client, a gateway of its own, clients in tmux."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import GatewayFactory
from tests.realclient import wheel
from tests.realclient.proxy import RecordingProxy
from tests.realclient.tui import Tui
from tests.services import Gateway

STARTUP_TIMEOUT_S = 45.0  # node parses a 3.4 MB bundle; CI machines are shared


@pytest.fixture(scope="session")
def tui_entry() -> Path:
    """The hermes-agent 0.19.0 terminal UI's ``entry.js`` (downloaded and unpacked once)."""
    missing = [tool for tool in ("node", "tmux") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the realclient tier needs {' and '.join(missing)} (apt-get install nodejs tmux)")
    return wheel.tui_entry()


@pytest.fixture(scope="session")
def client_cwd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working directory of the tier's gateway, hence of its sessions' tools."""
    return tmp_path_factory.mktemp("realclient-cwd")


@pytest.fixture(scope="session")
def client_gateway(gateways: GatewayFactory, client_cwd: Path) -> Gateway:
    """A daphne of the tier's own: the demo agent, sessions working in ``client_cwd``."""
    return gateways.new("memory", cwd=client_cwd)


@pytest.fixture
def proxy(client_gateway: Gateway) -> Iterator[RecordingProxy]:
    """A recording proxy in front of the gateway, one per test."""
    recording = RecordingProxy(client_gateway.url)
    yield recording
    recording.close()


@pytest.fixture
def open_tui(tui_entry: Path, proxy: RecordingProxy, tmp_path: Path) -> Iterator[Callable[..., Tui]]:
    """Start a client through the proxy and wait until it has a session and a prompt."""
    started: list[Tui] = []

    def start(name: str = "tui", cols: int = 120, rows: int = 40, query: str = "") -> Tui:
        before = len(proxy.calls("session.create"))
        tui = Tui(tui_entry, proxy.url + query, tmp_path / name, name, cols, rows)
        started.append(tui)
        tui.wait(
            lambda: any(x.response is not None for x in proxy.calls("session.create")[before:]),
            STARTUP_TIMEOUT_S,
            "session.create answered",
        )
        tui.wait_screen(re.compile(r"Session: \w+"), STARTUP_TIMEOUT_S)
        tui.wait_screen(re.compile(r"^ ─ ready", re.M), STARTUP_TIMEOUT_S)
        return tui

    yield start
    for tui in started:
        tui.close()


@pytest.fixture
def tui(open_tui: Callable[..., Tui]) -> Tui:
    """One started client."""
    return open_tui()
