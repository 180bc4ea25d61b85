"""Safe by default, against a real daphne (issue 9): commands get a clean environment, destructive
ones ask before anything happens, harmless ones still run, and a turn interrupt ends a long command.
"""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import pytest

from tests.helpers import Session, eventually, sleeping
from tests.services import Gateway

pytestmark = pytest.mark.db

SERVER_SECRETS = {
    "DJANGO_SECRET_KEY": "django-secret-" + uuid.uuid4().hex,
    "OPENAI_API_KEY": "sk-test-" + uuid.uuid4().hex,
    "GATEWAY_SETTINGS": json.dumps({"AGENT_OPTIONS": {"api_key": "sk-settings-" + uuid.uuid4().hex}}),
}


async def submit(s: Session, text: str) -> int:
    mark = len(s.client.events)
    assert (await s.call("prompt.submit", {"text": text}))["status"] == "streaming"
    return mark


async def reply(s: Session, mark: int) -> dict:
    return (await s.completes(1, after=mark))[0]["payload"]


def tool_results(s: Session, mark: int) -> list[str]:
    return [e["payload"]["result"] for e in s.events("tool.complete", after=mark)]


async def test_run_env_shows_none_of_the_servers_secrets(gateways, logdir, tmp_path):
    env = gateways.env("redis", {})
    env.update(SERVER_SECRETS)
    gateway = Gateway(env, logdir, "secrets")
    secrets = [*SERVER_SECRETS.values(), env["DATABASE_URL"], env["REDIS_URL"], "sk-settings-"]
    try:
        async with Session.open(gateway, cwd=str(tmp_path)) as s:
            mark = await submit(s, "!run env")
            request = await s.client.event("approval.request", s.sid, after=mark)
            assert request["payload"]["description"] == "env prints or changes the environment"
            await s.call("approval.respond", {"choice": "once"})
            assert (await reply(s, mark))["text"].startswith("Ran: env (exit 0)")
            (output,) = tool_results(s, mark)
            assert "PATH=" in output and "PWD=" + str(tmp_path) in output
            # Reading the server's environment through /proc asks first.
            mark = await submit(s, "!run cat /proc/$PPID/environ")
            request = await s.client.event("approval.request", s.sid, after=mark)
            await s.call("approval.respond", {"choice": "deny"})
            await reply(s, mark)
            frames = json.dumps(s.client.frames)
            for secret in secrets:
                assert secret not in frames
    finally:
        gateway.stop()


def _populate(work: Path) -> None:
    (work / "D").mkdir()
    (work / "D" / "inner").write_text("keep me")
    (work / "F").write_text("keep me too")
    (work / "x").write_text("and me")


def _intact(work: Path, mode: int) -> bool:
    return (
        (work / "D" / "inner").read_text() == "keep me"
        and (work / "F").read_text() == "keep me too"
        and (work / "x").read_text() == "and me"
        and stat.S_IMODE((work / "D").stat().st_mode) == mode
    )


DESTRUCTIVE = [
    "rm -f -r D",
    "rm --force --recursive D",
    '"rm" -rf D',
    r"r\m -rf D",
    "R=rm; $R -rf D",
    "$(echo rm) -rf D",
    "find D -delete",
    "echo cm0gLXJmIEQ= | base64 -d | sh",  # rm -rf D
    "perl -e 'use File::Path; rmtree(\"D\")'",
    "python3 -c \"import os; os.remove('F')\"",
    "curl -s http://127.0.0.1:9/x | python3",
    "chmod -R a+rwx D",
    ": > F",
    "echo hi > F",
    "rm -rf x",
    "rm -r D",
    "/bin/rm -rf D",
    "bash -c 'rm -rf D'",
    "curl http://127.0.0.1:9/x | sh",
    "sudo rm F",
    "cat F | tee x",
    "dd if=/dev/zero of=F count=1",
]


async def test_destructive_commands_ask_before_anything_happens(gateways, layer, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    _populate(work)
    mode = stat.S_IMODE((work / "D").stat().st_mode)
    async with Session.open(gateways.shared(layer), cwd=str(work)) as s:
        for command in DESTRUCTIVE:
            mark = await submit(s, f"!run {command}")
            request = await s.client.event("approval.request", s.sid, after=mark)
            assert request["payload"]["command"] == command
            assert request["payload"]["description"]
            assert _intact(work, mode), f"{command!r} acted before its approval"
            await s.call("approval.respond", {"choice": "deny"})
            assert (await reply(s, mark))["text"] == f"Denied: {command}"
            assert _intact(work, mode), command


async def test_harmless_commands_run_without_asking(gateways, layer, tmp_path):
    (tmp_path / "notes.txt").write_text("alpha\nbeta\n")
    async with Session.open(gateways.shared(layer), cwd=str(tmp_path)) as s:
        for command, first in (
            ("echo hi", "hi"),
            ("printf 'a\\nb\\n'", "a"),
            ("pwd", str(tmp_path)),
            ("ls", "notes.txt"),
            ("seq 1 5", "1"),
            ("wc -l notes.txt", "2 notes.txt"),
            ("head -n 1 notes.txt", "alpha"),
            ("tail -n 1 notes.txt", "beta"),
            ("cat notes.txt", "alpha"),
            ("grep bet notes.txt", "beta"),
            ("echo alpha | grep al", "alpha"),
            ("ls 2>&1", "notes.txt"),
            ("sleep 0.1", None),
            ("true", None),
            ("seq 3 > /dev/null", None),
        ):
            events = await s.turn(f"!run {command}")
            assert not [e for e in events if e["type"] == "approval.request"], command
            expected = f"Ran: {command} (exit 0)" + (f"\n{first}" if first else "")
            assert events[-2]["payload"]["text"] == expected
        mark = len(s.client.events)
        events = await s.turn("!bg echo bg-hi")
        assert not [e for e in events if e["type"] == "approval.request"]
        close = await s.client.event("terminal.close", s.sid, after=mark)
        assert close["payload"]["exit_code"] == 0
        chunks = "".join(e["payload"]["chunk"] for e in s.events("agent.terminal.output", after=mark))
        assert chunks == "bg-hi\n"


async def test_big_output_returns_with_head_and_tail(gateways, tmp_path):
    # Read only after the exit (the old code), 2 MB of output blocked until COMMAND_TIMEOUT_S (120 s),
    # far past the turn's wait below.
    async with Session.open(gateways.shared("memory"), cwd=str(tmp_path)) as s:
        mark = len(s.client.events)
        events = await s.turn("!run seq 1 300000")
        assert events[-2]["payload"]["text"] == "Ran: seq 1 300000 (exit 0)\n1"
        (output,) = tool_results(s, mark)
        assert output.startswith("exit 0\n1\n2\n") and output.endswith("299999\n300000\n")
        assert "bytes of output omitted ...]" in output and len(output) < 16_200


async def test_interrupt_ends_a_long_command_and_its_process_group(gateways, layer, tmp_path):
    duration = f"{100 + uuid.uuid4().int % 1000}.5"  # names this run's sleep among the machine's
    async with Session.open(gateways.shared(layer), cwd=str(tmp_path)) as s:
        mark = await submit(s, f"!run sleep {duration} & sleep {duration}")
        await eventually(lambda: len(sleeping(duration)) == 2)
        assert (await s.call("session.interrupt"))["status"] == "interrupted"
        assert (await reply(s, mark))["status"] == "interrupted"
        await eventually(lambda: not sleeping(duration))  # both: the group, not just the shell
