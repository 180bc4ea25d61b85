"""Running terminal commands with the local backend (real processes): the clean environment, output
drained while the command runs and kept as head and tail, the process group killed on interrupt,
timeout and exit (issue 10 item 3)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from django.test import override_settings

from ws_gateway.terminal import Backend, Capture, command_env, run

SERVER_SECRETS = {
    "DJANGO_SECRET_KEY": "django-secret-7a1c",
    "OPENAI_API_KEY": "sk-test-9b2d",
    "DATABASE_URL": "postgres://admin:pw-3e4f@db/prod",
    "REDIS_URL": "redis://:pw-5a6b@cache:6379/0",
    "GATEWAY_SETTINGS": '{"AGENT_OPTIONS": {"api_key": "sk-json-8c9d"}}',
}


def never(seconds: float) -> bool:
    time.sleep(seconds)
    return False


def poll(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_command_environment_is_built_from_an_allowlist(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SERVER_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LANG", "C.UTF-8")
    with override_settings(WS_GATEWAY={"COMMAND_ENV": {"PROJECT": "demo"}}):
        env = command_env({"API_TOKEN": "mine"})
    assert env["LANG"] == "C.UTF-8" and env["PATH"]
    assert env["PROJECT"] == "demo" and env["API_TOKEN"] == "mine"
    assert not set(SERVER_SECRETS) & set(env)
    monkeypatch.setenv("PATH", f".:/usr/bin::bin:{os.pathsep}/bin")
    assert command_env()["PATH"] == "/usr/bin:/bin"  # never a lookup in the cwd
    assert not any(value in " ".join(env.values()) for value in SERVER_SECRETS.values())


def test_a_command_sees_none_of_the_servers_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in SERVER_SECRETS.items():
        monkeypatch.setenv(name, value)
    result = run(Backend(), "env; cat /proc/self/environ", str(tmp_path), {"MINE": "1"}, 30, 100_000, never)
    assert result.exit_code == 0 and "MINE=1" in result.output and "PATH=" in result.output
    for value in SERVER_SECRETS.values():
        assert value not in result.output


def test_big_output_is_drained_while_it_runs_and_kept_as_head_and_tail(tmp_path: Path) -> None:
    # 2 MB through a 64 KiB pipe: read only after the exit, this would block until the timeout.
    result = run(Backend(), "seq 1 300000", str(tmp_path), None, 60, 1000, never)
    assert result.exit_code == 0 and not result.timed_out
    head, marker, tail = result.output.partition("bytes of output omitted ...]\n")
    assert head.startswith("1\n2\n3\n") and marker
    assert tail.endswith("299999\n300000\n")
    assert len(head) + len(tail) < 1100
    omitted = int(head.rsplit("[... ", 1)[1].split()[0])
    assert omitted + len(head.rsplit("[... ", 1)[0].encode()) + len(tail.encode()) == len(
        "".join(f"{i}\n" for i in range(1, 300001)).encode()
    )


def test_small_output_is_kept_whole(tmp_path: Path) -> None:
    result = run(Backend(), "printf 'a\\nb'; echo err >&2", str(tmp_path), None, 30, 1000, never)
    assert result.output == "a\nberr\n" and result.exit_code == 0


def test_capture_keeps_multibyte_text_within_the_cap() -> None:
    read, write = os.pipe()
    with os.fdopen(read, "rb") as stream:
        capture = Capture(stream, keep=40).start()
        os.write(write, ("é" * 100).encode())
        os.close(write)
        capture.join(5)
        text = capture.text(10)
    assert text.startswith("ééééé") and text.endswith("ééééé") and "omitted" in text


def test_an_interrupt_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    started = threading.Event()

    def interrupted(seconds: float) -> bool:
        if pid_file.exists() and pid_file.read_text().strip():
            started.set()
            return True
        time.sleep(seconds)
        return False

    command = "sleep 100 & echo $! > pid; sleep 100"
    result = run(Backend(), command, str(tmp_path), None, 60, 1000, interrupted)
    assert started.is_set() and result.interrupted and result.exit_code == -9
    assert result.output.endswith("[interrupted]")
    child = int(pid_file.read_text())
    poll(lambda: not alive(child))


def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    result = run(Backend(), "sleep 100 & echo $! > pid; sleep 100", str(tmp_path), None, 0.5, 1000, never)
    assert result.timed_out and result.exit_code == -9
    assert result.output.endswith("[timed out after 0.5 s: killed]")
    child = int((tmp_path / "pid").read_text())
    poll(lambda: not alive(child))


def test_what_a_finished_command_left_running_is_ended_with_it(tmp_path: Path) -> None:
    # The background sleep holds the output pipe: the run must not wait for it.
    result = run(Backend(), "sleep 100 & echo $! > pid; echo done", str(tmp_path), None, 60, 1000, never)
    assert result.exit_code == 0 and result.output == "done\n" and not result.timed_out
    child = int((tmp_path / "pid").read_text())
    poll(lambda: not alive(child))
