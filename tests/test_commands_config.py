"""Slash commands and config over real sockets (PROTOCOL.md section 10), and stale-turn reaping."""

from __future__ import annotations

import pytest

from tests.helpers import Session, stored_rows
from ws_gateway.testing import GatewayClient, RpcFailure

pytestmark = pytest.mark.db

BUILT_INS = [
    "/help",
    "/status",
    "/usage",
    "/history",
    "/title",
    "/model",
    "/queue",
    "/steer",
    "/stop",
    "/undo",
    "/retry",
    "/clear",
]


async def test_catalog_lists_the_built_ins_by_category(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        catalog = await client.call("commands.catalog")
        names = [pair[0] for pair in catalog["pairs"]]
        assert set(BUILT_INS) <= set(names)
        in_categories = [pair[0] for cat in catalog["categories"] for pair in cat["pairs"]]
        assert sorted(in_categories) == sorted(names)


async def test_complete_slash(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        result = await client.call("complete.slash", {"text": "/he"})
        assert result["replace_from"] == 1
        assert result["items"][0] == {"text": "help", "display": "/help", "meta": "Show available commands"}
        assert (await client.call("complete.slash", {"text": "hello"}))["items"] == []
        assert {i["display"] for i in (await client.call("complete.slash", {"text": "/"}))["items"]} >= set(
            BUILT_INS
        )


async def test_slash_exec_plain_commands(gateway):
    async with Session.open(gateway) as s:
        await s.turn("first prompt")
        out = lambda r: r["output"]  # noqa: E731
        assert "/retry" in out(await s.call("slash.exec", {"command": "/help"}))
        assert f"Runtime ID: {s.sid}" in out(await s.call("slash.exec", {"command": "status"}))
        assert "calls 1" in out(await s.call("slash.exec", {"command": "/usage"}))
        assert "You said: first prompt" in out(await s.call("slash.exec", {"command": "/history"}))
        assert out(await s.call("slash.exec", {"command": "/title Renamed"})) == "title set: Renamed"
        assert (await s.call("session.title"))["title"] == "Renamed"
        assert out(await s.call("slash.exec", {"command": "/model"})) == "model: demo"
        assert out(await s.call("slash.exec", {"command": "/stop"})) == "nothing running"
        assert out(await s.call("slash.exec", {"command": "/undo"})) == "removed 2 message(s)"
        await s.turn("again")
        assert out(await s.call("slash.exec", {"command": "/clear"})) == "cleared 2 message(s)"
        assert stored_rows(gateway.env["DATABASE_URL"], s.key) == []
        assert "Unknown command: /nope" in out(await s.call("slash.exec", {"command": "/nope"}))
        with pytest.raises(RpcFailure) as empty:
            await s.call("slash.exec", {"command": "  /  "})
        assert empty.value.code == 4004
        for dispatched in ("/queue hi", "/retry"):
            with pytest.raises(RpcFailure) as err:
                await s.call("slash.exec", {"command": dispatched})
            assert err.value.code == 4018


async def test_command_dispatch(gateway):
    async with Session.open(gateway) as s:
        await s.turn("redo me")
        assert await s.call("command.dispatch", {"name": "queue", "arg": "x"}) == {
            "type": "send",
            "message": "x",
        }
        assert await s.call("command.dispatch", {"name": "q"}) == {"type": "alias", "target": "/queue"}
        retry = await s.call("command.dispatch", {"name": "/retry"})
        assert retry["type"] == "send" and retry["message"] == "redo me"
        assert await s.stored_texts() == []
        steer = await s.call("command.dispatch", {"name": "steer", "arg": "faster"})
        assert steer["type"] == "exec"
        with pytest.raises(RpcFailure) as err:
            await s.call("command.dispatch", {"name": "bogus"})
        assert err.value.code == 4018


async def test_config_session_keys(gateway, tmp_path):
    async with Session.open(gateway) as s:
        assert (await s.call("config.get", {"key": "busy_input_mode"}))["value"] == "interrupt"
        mark = len(s.client.events)
        await s.call("config.set", {"key": "approval_mode", "value": "manual"})
        info = await s.client.event("session.info", s.sid, after=mark)
        assert info["payload"]["approval_mode"] == "manual"
        await s.call("config.set", {"key": "cwd", "value": str(tmp_path)})
        assert (await s.call("config.get", {"key": "cwd"}))["value"] == str(tmp_path)
        events = await s.turn("!run pwd")
        assert events[-2]["payload"]["text"].endswith(f"\n{tmp_path}")
        mark = len(s.client.events)
        await s.call("config.set", {"key": "model", "value": "demo:tiny"})
        rebuilt = await s.client.event("session.info", s.sid, after=mark)
        assert rebuilt["payload"]["model"] == "tiny"
        for key, value in (
            ("busy_input_mode", "sometimes"),
            ("approval_mode", "maybe"),
            ("approval_mode", "off"),  # not unless the deployment allows it (ALLOW_APPROVAL_OFF)
            ("cwd", "/no/such/dir"),
            ("colour", "red"),
        ):
            with pytest.raises(RpcFailure) as err:
                await s.call("config.set", {"key": key, "value": value})
            assert err.value.code == 4002
        with pytest.raises(RpcFailure) as missing:
            await s.client.call("config.set", {"key": "busy_input_mode", "value": "queue"})
        assert missing.value.code == 4006
        assert (await s.call("config.get", {"key": "approval_mode"}))["value"] == "manual"


async def test_approval_mode_off_is_the_deployments_decision(gateways, layer):
    async with Session.open(gateways.shared(layer)) as s:
        with pytest.raises(RpcFailure) as refused:
            await s.call("config.set", {"key": "approval_mode", "value": "off"})
        assert refused.value.code == 4002
        assert "ALLOW_APPROVAL_OFF" in refused.value.message
        assert (await s.call("config.get", {"key": "approval_mode"}))["value"] == "manual"
    async with Session.open(gateways.shared(layer, ALLOW_APPROVAL_OFF=True)) as s:
        mark = len(s.client.events)
        assert await s.call("config.set", {"key": "approval_mode", "value": "off"}) == {
            "key": "approval_mode",
            "value": "off",
        }
        info = await s.client.event("session.info", s.sid, after=mark)
        assert info["payload"]["approval_mode"] == "off"


async def test_skin_change_reaches_every_client_once(gateways):
    gateway = gateways.new("memory")
    async with GatewayClient.connect(gateway.url) as a, GatewayClient.connect(gateway.url) as b:
        skin = await a.call("config.get", {"key": "skin"})
        assert skin["value"] == "default" and {"default", "slate"} <= set(skin["available"])
        assert await a.call("config.set", {"key": "skin", "value": "slate"}) == {
            "key": "skin",
            "value": "slate",
        }
        for client in (a, b):
            event = await client.event("skin.changed")
            assert event["session_id"] == "" and event["payload"]["name"] == "slate"
            assert set(event["payload"]) >= {
                "colors",
                "branding",
                "banner_logo",
                "banner_hero",
                "tool_prefix",
            }
        await a.call("config.set", {"key": "skin", "value": "slate"})
        await a.call("config.set", {"key": "skin", "value": "default"})
        await b.wait_for(lambda: len(b.find_events("skin.changed")) == 2)
        assert [e["payload"]["name"] for e in b.find_events("skin.changed")] == ["slate", "default"]
        with pytest.raises(RpcFailure) as err:
            await a.call("config.set", {"key": "skin", "value": "neon"})
        assert err.value.code == 4002


async def test_parked_stale_turn_is_interrupted_then_reclaimed(gateways):
    gateway = gateways.shared("memory", ORPHAN_GRACE_S=0.5, STALE_TURN_S=1.0)
    async with GatewayClient.connect(gateway.url) as watcher:
        owner = await GatewayClient.open(gateway.url)
        created = await owner.call("session.create")
        await owner.call("prompt.submit", {"session_id": created["session_id"], "text": "!sleep 600000"})
        await owner.close()
        event = await watcher.event("session.reclaimed", timeout=20)
        assert event["payload"]["session_id"] == created["session_id"]
        assert event["payload"]["reason"] == "ws_orphan_reap"
        assert stored_rows(gateway.env["DATABASE_URL"], created["stored_session_id"]) == [
            ("user", "!sleep 600000")
        ]


async def test_parked_active_turn_is_left_running_until_it_ends(gateways):
    gateway = gateways.shared("memory", ORPHAN_GRACE_S=0.5, STALE_TURN_S=1.0)
    async with GatewayClient.connect(gateway.url) as watcher:
        owner = await GatewayClient.open(gateway.url)
        created = await owner.call("session.create")
        await owner.call("prompt.submit", {"session_id": created["session_id"], "text": "!stream 300 10"})
        await owner.close()
        event = await watcher.wait_for(
            lambda: next(
                (
                    e
                    for e in watcher.find_events("session.reclaimed")
                    if e["payload"]["session_id"] == created["session_id"]
                ),
                None,
            ),
            timeout=30,
        )
        assert event["payload"]["reason"] == "ws_orphan_reap"
        rows = stored_rows(gateway.env["DATABASE_URL"], created["stored_session_id"])
        assert rows == [("user", "!stream 300 10"), ("assistant", " ".join(f"t{i}" for i in range(1, 301)))]
