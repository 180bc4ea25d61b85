"""``python -m ws_gateway.client``: the shipped terminal client, driven through its stdin against
a real daphne, as a person would type (here piped)."""

from __future__ import annotations

import asyncio
import os
import re
import select
import signal
import subprocess
import sys

from tests.services import ROOT
from ws_gateway.testing import GatewayClient

SCRIPT = "\n".join(
    [
        "hello there",
        "!clarify Which colour? | red | blue",
        "2",
        "!approve echo approved-run",
        "o",
        "!secret API_TOKEN the deploy token",
        "",  # Enter, then the hidden value (getpass reads it from the pipe here)
        "s3cr3t-value",
        "!stream 3",
        "",
    ]
)


async def run_client(*args: str, stdin: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ws_gateway.client", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


async def test_a_session_with_every_kind_of_prompt_then_resumed(gateway):
    done = await run_client(gateway.url, stdin=SCRIPT)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "You said: hello there" in out
    assert "Which colour?\n  1. red\n  2. blue" in out and "Answer: blue" in out
    assert "approve `echo approved-run`" in out and "Ran: echo approved-run (exit 0)" in out
    assert "the deploy token requested" in out and "secret: stored" in out
    assert "t1 t2 t3" in out
    assert "s3cr3t-value" not in out  # never echoed by the client
    key = re.search(r"^session (\S+) \(later: --resume", out, re.M).group(1)

    resumed = await run_client(gateway.url, "--resume", key, stdin="after resume\n")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed {key} (12 messages)" in resumed.stdout  # 5 prompts, 5 replies, 2 tool rows
    assert "You said: after resume" in resumed.stdout


async def test_a_bad_token_is_refused_with_a_clear_message(gateway):
    done = await run_client(gateway.url, "--token", "gwt_not-a-real-token", stdin="hello\n")
    assert done.returncode == 1
    assert "ws_gateway.client:" in done.stderr and "4501" in done.stderr
    async with GatewayClient.connect(gateway.url) as probe:  # the server is unharmed
        assert await probe.call("gateway.ping") == {"ok": True}


def read_until(proc: subprocess.Popen, marker: str, timeout: float = 30.0) -> str:
    """The client's output up to and including ``marker`` (fails after ``timeout`` seconds)."""
    seen = ""
    while marker not in seen:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        assert ready, f"no {marker!r} within {timeout} s: {seen!r}"
        chunk = proc.stdout.read1(4096).decode()
        assert chunk, f"the client ended before {marker!r}: {seen!r}"
        seen += chunk
    return seen


def test_ctrl_c_interrupts_the_running_turn_and_the_client_stays(gateway):
    proc = subprocess.Popen(
        [sys.executable, "-m", "ws_gateway.client", gateway.url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        proc.stdin.write(b"!stream 100000 20\n")
        proc.stdin.flush()
        read_until(proc, "t3 ")
        proc.send_signal(signal.SIGINT)
        read_until(proc, "[interrupted]\n")
        proc.stdin.write(b"still here\n")
        proc.stdin.close()
        assert "You said: still here" in read_until(proc, "You said: still here")
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
