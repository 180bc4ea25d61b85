"""hermes-agent 0.19.0's terminal UI, unmodified, driven like a person against a real daphne.

A prompt line starting with ``!`` is the client's shell escape (``shell.exec``), so demo
directives are typed with a leading space (`` !stream 50``): the client only tests
``startswith("!")``, the demo agent strips each line.
"""

from __future__ import annotations

import pytest

from tests.realclient.checks import assert_clean
from tests.realclient.proxy import RecordingProxy
from tests.realclient.tui import Tui

pytestmark = pytest.mark.realclient


def test_startup_and_idle_polling(tui: Tui, proxy: RecordingProxy) -> None:
    """Start-up loads config and setup state; idle polls (pet every 2.5 s, config mtime every 5 s)."""
    proxy.wait(lambda p: len(p.calls("pet.cells")) >= 4, 30, "4 pet.cells polls")
    proxy.wait(lambda p: len(p.calls("config.get")) >= 3, 30, "config polls")
    started = [x.method for x in proxy.exchanges()]
    for method in ("setup.status", "commands.catalog", "session.create", "session.active_list"):
        assert method in started
    assert any(x.params == {"key": "full"} for x in proxy.calls("config.get"))
    assert any(x.params == {"key": "mtime"} for x in proxy.calls("config.get"))
    assert_clean(proxy, tui)
