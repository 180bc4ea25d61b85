"""The sandbox terminal backend with the real bubblewrap: what a command can and cannot reach.

These tests need ``bwrap`` (Debian package ``bubblewrap``), so they are a tier of their own
(marker ``sandbox``: ``pytest -m sandbox``), which ``.ci/run`` runs after installing it. Without
bwrap they fail, saying so: the sandbox is a security boundary and must not go untested silently.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from tests.helpers import Session, eventually, sleeping
from ws_gateway.checks import terminal_backend_check
from ws_gateway.terminal import run
from ws_gateway.terminal.backends import SandboxBackend, sandbox_options

pytestmark = pytest.mark.sandbox


@pytest.fixture(autouse=True)
def bwrap() -> str:
    path = shutil.which("bwrap")
    assert path, "bubblewrap (bwrap) is not installed: apt-get install bubblewrap (.ci/run installs it)"
    return path


def never(seconds: float) -> bool:
    time.sleep(seconds)
    return False


def sandbox(**options: Any) -> SandboxBackend:
    return SandboxBackend({**sandbox_options(), **options})


@pytest.fixture
def work(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work


def sh(backend: SandboxBackend, command: str, cwd: Path, timeout: float = 60, cap: int = 100_000):
    return run(backend, command, str(cwd), {"SESSION_SECRET": "mine"}, timeout, cap, never)


def test_writes_inside_the_cwd_and_nowhere_else(work: Path, tmp_path: Path) -> None:
    result = sh(sandbox(), "echo inside > made.txt && cat made.txt && id -u", work)
    assert result.exit_code == 0 and result.output == "inside\n65534\n"
    assert (work / "made.txt").read_text() == "inside\n"
    outside = tmp_path / "outside.txt"
    for command in (f"echo x > {outside}", "echo x > ../outside.txt", "touch /usr/x", "touch /etc/passwd"):
        result = sh(sandbox(), command, work)
        assert result.exit_code != 0 or not outside.exists(), command
    assert not outside.exists()
    assert not os.path.exists("/usr/x")
    # /tmp is the sandbox's own: what is written there is gone with it.
    marker = f"/tmp/sandbox-{os.getpid()}-{time.monotonic_ns()}"
    assert sh(sandbox(), f"echo x > {marker} && cat {marker}", work).output == "x\n"
    assert not os.path.exists(marker)


def test_sees_only_the_system_directories_and_the_cwd(work: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("hidden")
    result = sh(sandbox(), f"cat {tmp_path}/secret.txt; ls /; cat /root/.bashrc", work)
    assert "hidden" not in result.output
    listed = set(result.output.split())
    assert {"usr", "etc", "tmp", "proc", "dev"} <= listed
    assert not {"root", "home", "work", "var", "opt"} & listed


def test_cannot_read_the_servers_environment(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SECRET_KEY", "django-secret-in-sandbox-test")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-sandbox-test")
    command = f"env; cat /proc/{os.getpid()}/environ; cat /proc/1/environ | tr '\\0' '\\n'"
    result = sh(sandbox(), command, work)
    assert "SESSION_SECRET=mine" in result.output  # the session's own secrets do reach it
    assert "django-secret-in-sandbox-test" not in result.output
    assert "sk-sandbox-test" not in result.output


def _listener() -> tuple[socket.socket, list[socket.socket]]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return server, accepted


def test_cannot_reach_the_network_unless_allowed(work: Path) -> None:
    server, accepted = _listener()
    port = server.getsockname()[1]
    connect = f"echo hi > /dev/tcp/127.0.0.1/{port} && echo connected"
    try:
        result = sh(sandbox(), connect, work)
        assert result.exit_code != 0 and "connected" not in result.output
        assert accepted == []
        # The control: the same command with the host's network does connect.
        allowed = sh(sandbox(network=True), connect, work)
        assert allowed.exit_code == 0 and "connected" in allowed.output
        deadline = time.monotonic() + 10
        while not accepted and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(accepted) == 1
    finally:
        server.close()
        for conn in accepted:
            conn.close()


def test_cpu_limit_is_reported(work: Path) -> None:
    result = sh(sandbox(cpu_s=1), "while :; do :; done", work)
    assert result.exit_code != 0
    assert result.output.endswith("[CPU time limit reached (1 s)]")


def test_output_limit_kills_and_is_reported(work: Path) -> None:
    result = sh(sandbox(output_mb=1), "cat /dev/zero", work, cap=1000)
    assert result.output.endswith(f"[printed more than {1024 * 1024} bytes: killed]")


def test_file_size_limit_is_reported(work: Path) -> None:
    result = sh(sandbox(file_mb=1), "head -c 2000000 /dev/zero > big", work)
    assert result.output.endswith("[file size limit reached (1 MB)]")
    assert (work / "big").stat().st_size == 1024 * 1024


def test_memory_limit_stops_an_allocation(work: Path) -> None:
    grow = "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo ${#x}"
    result = sh(sandbox(memory_mb=64), grow, work)
    assert result.exit_code != 0 and "cannot allocate" in result.output
    assert sh(sandbox(memory_mb=1024), grow, work).output == "100000000\n"  # the control


def test_refuses_a_cwd_that_would_expose_the_system() -> None:
    for cwd in ("/", "/usr", "/etc", "/tmp"):
        with pytest.raises(Exception, match="does not run commands with"):
            sandbox().argv("true", cwd)


def test_system_check_says_why_the_sandbox_cannot_run() -> None:
    with override_settings(WS_GATEWAY={"TERMINAL_BACKEND": "sandbox", "SANDBOX": {"bwrap": "no-such-bwrap"}}):
        errors = terminal_backend_check()
    assert [e.id for e in errors] == ["ws_gateway.E002"]
    assert "bubblewrap not found ('no-such-bwrap')" in errors[0].msg
    with override_settings(WS_GATEWAY={"TERMINAL_BACKEND": "sandbox"}):
        found = terminal_backend_check()
    assert [e.id for e in found] == (["ws_gateway.W001"] if os.geteuid() == 0 else [])
    with override_settings(WS_GATEWAY={"TERMINAL_BACKEND": "chroot"}):
        assert [e.id for e in terminal_backend_check()] == ["ws_gateway.E001"]


@pytest.mark.db
async def test_demo_run_and_bg_in_the_sandbox(gateways, tmp_path: Path) -> None:
    """End to end: with auto_approve the sandbox runs what the policy would ask about, confined."""
    work = tmp_path / "work"
    work.mkdir()
    gateway = gateways.new("memory", TERMINAL_BACKEND="sandbox", SANDBOX={"auto_approve": True})
    async with Session.open(gateway, cwd=str(work)) as s:
        events = await s.turn("!run echo made > made.txt; id -u")
        assert not [e for e in events if e["type"] == "approval.request"]
        assert events[-2]["payload"]["text"] == "Ran: echo made > made.txt; id -u (exit 0)\n65534"
        assert (work / "made.txt").read_text() == "made\n"
        events = await s.turn(f"!run touch {tmp_path}/escaped")
        assert not (tmp_path / "escaped").exists()
        # A dangerous pattern still asks, even with auto_approve.
        mark = len(s.client.events)
        await s.call("prompt.submit", {"text": "!run rm -rf made.txt"})
        await s.client.event("approval.request", s.sid, after=mark)
        assert (work / "made.txt").exists()
        await s.call("approval.respond", {"choice": "deny"})
        await s.completes(1, mark)
        mark = len(s.client.events)
        events = await s.turn("!bg echo from-the-sandbox; id -u")
        close = await s.client.event("terminal.close", s.sid, after=mark)
        assert close["payload"]["exit_code"] == 0
        chunks = "".join(e["payload"]["chunk"] for e in s.events("agent.terminal.output", after=mark))
        assert chunks == "from-the-sandbox\n65534\n"
        # process.kill ends the sandbox and everything in it.
        duration = f"{300 + uuid.uuid4().int % 1000}.5"
        events = await s.turn(f"!bg sleep {duration}")
        process_id = events[-2]["payload"]["text"].split()[-1]
        await eventually(lambda: sleeping(duration))
        killed = await s.call("process.kill", {"process_id": process_id})
        assert killed["status"] == "killed"
        await eventually(lambda: not sleeping(duration))
