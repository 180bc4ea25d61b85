"""Background processes and subagents over real sockets (PROTOCOL.md section 9)."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import pytest

from tests.helpers import Session, eventually, server_saw_close, sleeping
from ws_gateway.testing import GatewayClient, RpcFailure

pytestmark = pytest.mark.db


def alive(pid: int) -> bool:
    """True while ``pid`` is a live (non-zombie) process on this machine."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def start_bg(s: Session, command: str) -> dict:
    events = await s.turn(f"!bg {command}")
    text = events[-2]["payload"]["text"]
    assert text.startswith("Started: proc_")
    process_id = text.split()[-1]
    listed = await s.call("process.list")
    return next(p for p in listed["processes"] if p["process_id"] == process_id)


async def test_background_process_output_and_exit_are_streamed(gateway):
    async with Session.open(gateway) as s:
        mark = len(s.client.events)
        proc = await start_bg(s, "echo first-line; echo second-line; exit 3")
        close = await s.client.event("terminal.close", s.sid, after=mark)
        assert close["payload"] == {"process_id": proc["process_id"], "exit_code": 3}
        chunks = "".join(e["payload"]["chunk"] for e in s.events("agent.terminal.output", after=mark))
        assert chunks == "first-line\nsecond-line\n"
        listed = (await s.call("process.list"))["processes"]
        assert listed[0]["status"] == "exited" and listed[0]["exit_code"] == 3
        assert listed[0]["output_tail"] == chunks
        kinds = [e["payload"]["kind"] for e in s.events("status.update", after=mark)]
        assert kinds.count("process") == 2


async def test_process_kill_is_scoped_to_the_session(gateway):
    async with Session.open(gateway) as s, Session.open(gateway) as other:
        proc = await start_bg(s, "sleep 60")
        assert proc["status"] == "running" and alive(proc["pid"])
        assert set(proc) >= {"command", "cwd", "pid", "started_at", "uptime_seconds", "output_preview"}
        with pytest.raises(RpcFailure) as foreign:
            await other.call("process.kill", {"process_id": proc["process_id"]})
        assert foreign.value.code == 4044
        assert (await other.call("process.list"))["processes"] == []
        with pytest.raises(RpcFailure) as missing:
            await s.call("process.kill", {})
        assert missing.value.code == 4012
        killed = await s.call("process.kill", {"process_id": proc["process_id"]})
        assert killed["status"] == "killed" and killed["process_id"] == proc["process_id"]
        await eventually(lambda: not alive(proc["pid"]))
        again = await s.call("process.kill", {"process_id": proc["process_id"]})
        assert again["status"] == "already_exited"


async def test_process_stop_kills_the_callers_processes(gateway):
    async with Session.open(gateway) as s:
        procs = [await start_bg(s, "sleep 60") for _ in range(2)]
        assert await s.client.call("process.stop") == {"killed": 2}
        for proc in procs:
            await eventually(lambda p=proc: not alive(p["pid"]))


async def test_closing_a_session_leaves_none_of_its_processes(gateway):
    async with Session.open(gateway) as s:
        proc = await start_bg(s, "sleep 60 & sleep 60; wait")
        assert alive(proc["pid"])
        assert (await s.call("session.close"))["closed"] is True
        await eventually(lambda: not alive(proc["pid"]))
        leftover = [pid for pid in os.listdir("/proc") if pid.isdigit() and _cmdline(pid) == "sleep 60"]
        assert not [pid for pid in leftover if _pgid(pid) == proc["pid"]]


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _pgid(pid: str) -> int:
    try:
        return os.getpgid(int(pid))
    except OSError:
        return -1


async def test_a_session_with_a_running_process_is_not_reaped(gateways):
    grace = 0.5
    # A short staleness too: a process keeps its session however long nothing else happened.
    gateway = gateways.shared("memory", ORPHAN_GRACE_S=grace, STALE_TURN_S=grace)
    duration = f"{2000 + uuid.uuid4().int % 1000}.25"  # names this test's process among the machine's
    async with GatewayClient.connect(gateway.url) as watcher:
        owner = await GatewayClient.open(gateway.url)
        created = await owner.call("session.create")
        sid = created["session_id"]
        await owner.call("prompt.submit", {"session_id": sid, "text": f"!bg sleep {duration}"})
        await owner.event("message.complete", sid, timeout=15)
        await eventually(lambda: sleeping(duration))
        await owner.close()
        await server_saw_close(gateway, owner)
        # Three graces later on the server's clock, the process still keeps the session.
        await watcher.call("test.after", {"ms": int(grace * 3000)})
        assert not watcher.find_events("session.reclaimed")
        assert sleeping(duration)
        for pid in sleeping(duration):
            os.kill(pid, signal.SIGKILL)  # the process ends: now the session is reclaimed
        event = await watcher.event("session.reclaimed", timeout=15)
        assert event["payload"] == {
            "session_id": sid,
            "stored_session_id": created["stored_session_id"],
            "reason": "ws_orphan_reap",
        }


async def test_delegate_runs_a_child_and_reports_on_the_parent(gateway):
    async with Session.open(gateway) as s:
        events = await s.turn("!delegate count things :: !stream 5\nhi")
        complete = events[-2]["payload"]
        assert complete["text"] == "Delegated: count things -> t1 t2 t3 t4 t5\nYou said: hi"
        kinds = [e["type"] for e in events if e["type"].startswith("subagent.")]
        assert kinds[0] == "subagent.start" and kinds[-1] == "subagent.complete"
        done = next(e for e in events if e["type"] == "subagent.complete")["payload"]
        assert done["status"] == "complete" and done["summary"] == "t1 t2 t3 t4 t5"
        assert done["goal"] == "count things" and "duration_seconds" in done
        listed = await s.call("subagent.list")
        assert [x["subagent_id"] for x in listed["subagents"]] == [done["subagent_id"]]
        assert (await s.call("delegation.status"))["active"] == []


async def test_watch_window_mirrors_a_running_child_and_refuses_prompts(gateway):
    async with Session.open(gateway) as s, GatewayClient.connect(gateway.url) as watcher:
        mark = len(s.client.events)
        await s.call("prompt.submit", {"text": "!delegate slow child :: !stream 200 30"})
        start = await s.client.event("subagent.start", s.sid, after=mark)
        child_key = start["payload"]["child_session_id"]
        watch = await watcher.call("session.resume", {"session_id": child_key, "lazy": True})
        child = watch["session_id"]
        await watcher.event("message.delta", child, timeout=30)  # the child's turn is running
        with pytest.raises(RpcFailure) as busy:
            await watcher.call("prompt.submit", {"session_id": child, "text": "hello?"})
        assert busy.value.code == 4009
        complete = await watcher.event("message.complete", child, timeout=30)
        assert complete["payload"]["text"] == " ".join(f"t{i}" for i in range(1, 201))
        assert watcher.find_events("message.delta", child)
        await s.completes(1, after=mark)
        # Counted before the submit: the reply may arrive before the submit's own answer.
        after = len(watcher.find_events("message.complete", child))
        await watcher.call("prompt.submit", {"session_id": child, "text": "now me"})
        await watcher.wait_for(lambda: len(watcher.find_events("message.complete", child)) > after)
        assert watcher.find_events("message.complete", child)[-1]["payload"]["text"] == "You said: now me"


async def test_interrupting_the_parent_interrupts_the_child(gateway):
    async with Session.open(gateway) as s:
        mark = len(s.client.events)
        await s.call("prompt.submit", {"text": "!delegate forever :: !stream 1000 20"})
        await s.client.event("subagent.start", s.sid, after=mark)
        await s.call("session.interrupt")
        complete = (await s.completes(1, after=mark))[0]["payload"]
        assert complete["status"] == "interrupted"
        done = await s.client.event("subagent.complete", s.sid, after=mark)
        assert done["payload"]["status"] == "interrupted"
        assert not done["payload"]["summary"].endswith("t1000")


async def test_subagent_tool_calls_are_reported_on_the_parent(gateway):
    async with Session.open(gateway) as s:
        # The child runs one command; the parent's own command after it is no subagent's tool.
        events = await s.turn("!delegate one command :: !run echo one\n!run echo two")
        tools = [e["payload"] for e in events if e["type"] == "subagent.tool"]
        assert [(t["tool_count"], t["goal"], t["status"]) for t in tools] == [(1, "one command", "running")]
        done = next(e for e in events if e["type"] == "subagent.complete")["payload"]
        assert done["tool_count"] == 1 and done["subagent_id"] == tools[0]["subagent_id"]
        parents = [(e["payload"]["name"], e["payload"]["args"]) for e in s.events("tool.complete")]
        assert parents == [("delegate", parents[0][1]), ("terminal", {"command": "echo two"})]


async def test_subagent_interrupt_stops_the_child_and_the_parent_goes_on(gateway):
    async with Session.open(gateway) as s, GatewayClient.connect(gateway.url) as watcher:
        mark = len(s.client.events)
        await s.call("prompt.submit", {"text": "!delegate held child :: !clarify Hold on?\nafter"})
        start = (await s.client.event("subagent.start", s.sid, after=mark))["payload"]
        child = await watcher.call("session.resume", {"session_id": start["child_session_id"], "lazy": True})
        # The child waits for an answer (asked before or after the watcher came: its open requests say).
        for _ in range(200):
            since = await watcher.call("session.events.since", {"session_id": child["session_id"]})
            if since.get("open_requests"):
                break
            await asyncio.sleep(0.05)  # polling interval of a bounded wait
        assert [r["kind"] for r in since["open_requests"]] == ["clarify"]
        assert await s.call("subagent.interrupt", {"subagent_id": "sub_nosuch"}) == {"found": False}
        assert await s.call("subagent.interrupt", {"subagent_id": start["subagent_id"]}) == {"found": True}
        child_complete = await watcher.event("message.complete", child["session_id"])
        assert child_complete["payload"]["status"] == "interrupted"
        done = (await s.client.event("subagent.complete", s.sid, after=mark))["payload"]
        assert done["subagent_id"] == start["subagent_id"] and done["status"] == "interrupted"
        complete = (await s.completes(1, after=mark))[0]["payload"]
        assert complete["status"] == "complete" and complete["text"].endswith("You said: after")
