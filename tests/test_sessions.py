"""Live and stored sessions over real sockets (PROTOCOL.md section 5)."""

from __future__ import annotations

import pytest

from ws_gateway.testing import GatewayClient, RpcFailure

pytestmark = pytest.mark.db


async def create(client: GatewayClient, **params) -> dict:
    created = await client.call("session.create", params)
    await client.event("session.info", created["session_id"])
    return created


async def test_create_returns_ids_and_lazy_info(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        created = await client.call("session.create", {"title": "first", "cwd": "/tmp"})
        assert len(created["session_id"]) == 8
        int(created["session_id"], 16)
        date, clock, tail = created["stored_session_id"].split("_")
        assert len(date) == 8 and len(clock) == 6 and len(tail) == 6
        assert created["message_count"] == 0 and created["messages"] == []
        assert created["info"]["cwd"] == "/tmp"
        info = await client.event("session.info", created["session_id"])
        assert info["payload"]["stored_session_id"] == created["stored_session_id"]
        assert info["payload"]["tools"]


async def test_create_seeds_messages_and_history_returns_them(gateway):
    seed = [{"role": "user", "text": "hi"}, {"role": "assistant", "text": "hello"}]
    async with GatewayClient.connect(gateway.url) as client:
        created = await client.call("session.create", {"messages": seed})
        assert created["message_count"] == 2
        history = await client.call("session.history", {"session_id": created["session_id"]})
        assert history["count"] == 2
        assert [(m["role"], m["text"]) for m in history["messages"]] == [
            ("user", "hi"),
            ("assistant", "hello"),
        ]
        with pytest.raises(RpcFailure) as err:
            await client.call("session.create", {"messages": [{"role": "robot", "text": "x"}]})
        assert err.value.code == -32602


async def test_session_calls_need_a_live_id(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        for method in ("session.history", "session.title", "session.activate", "session.events.since"):
            with pytest.raises(RpcFailure) as missing:
                await client.call(method, {})
            assert missing.value.code == 4006
            with pytest.raises(RpcFailure) as unknown:
                await client.call(method, {"session_id": "deadbeef"})
            assert unknown.value.code == 4001
        assert await client.call("session.close", {"session_id": "deadbeef"}) == {"closed": False}
        with pytest.raises(RpcFailure) as err:
            await client.call("session.resume", {"session_id": "20200101_000000_abcdef"})
        assert err.value.code == 4007


async def test_title_stores_the_row_and_list_shows_it(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        created = await create(client)
        sid, key = created["session_id"], created["stored_session_id"]
        assert await client.call("session.title", {"session_id": sid}) == {"title": "", "session_key": key}
        title = f"title {key}"
        result = await client.call("session.title", {"session_id": sid, "title": title})
        assert result["title"] == title
        event = await client.event("session.title", sid)
        assert event["payload"] == {"session_id": key, "title": title}
        await client.event("sessions.changed", "")
        listed = await client.call("session.list", {"title": key})
        assert [s["id"] for s in listed["sessions"]] == [key]
        row = listed["sessions"][0]
        assert set(row) == {"id", "title", "preview", "started_at", "message_count", "source"}


async def test_resume_stored_session_by_key_and_by_title_after_close(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        created = await create(client, messages=[{"role": "user", "text": "remember me"}])
        sid, key = created["session_id"], created["stored_session_id"]
        await client.call("session.title", {"session_id": sid, "title": f"t-{key}"})
        assert (await client.call("session.close", {"session_id": sid}))["closed"] is True
        resumed = await client.call("session.resume", {"session_id": key})
        assert resumed["session_id"] != sid
        assert resumed["resumed"] == key and resumed["session_key"] == key
        assert [m["text"] for m in resumed["messages"]] == ["remember me"]
        assert resumed["running"] is False
        await client.call("session.close", {"session_id": resumed["session_id"]})
        by_title = await client.call("session.resume", {"session_id": f"t-{key}", "omit_messages": True})
        assert by_title["session_key"] == key
        assert by_title["messages"] == [] and by_title["message_count"] == 1


async def test_second_client_resumes_live_session_with_same_id_and_both_get_events(gateway):
    async with GatewayClient.connect(gateway.url) as a, GatewayClient.connect(gateway.url) as b:
        created = await create(a)
        sid, key = created["session_id"], created["stored_session_id"]
        resumed = await b.call("session.resume", {"session_id": key})
        assert resumed["session_id"] == sid
        activated = await b.call("session.activate", {"session_id": sid})
        assert activated["session_id"] == sid
        await a.call("session.title", {"session_id": sid, "title": f"shared {key}"})
        for client in (a, b):
            event = await client.event("session.title", sid)
            assert event["payload"]["title"] == f"shared {key}"
        active = await b.call("session.active_list")
        mine = [s for s in active["sessions"] if s["id"] == sid]
        assert mine and mine[0]["session_key"] == key and mine[0]["status"] == "idle"


async def test_delete_closes_live_session_and_forgets_stored_one(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        created = await create(client)
        sid, key = created["session_id"], created["stored_session_id"]
        await client.call("session.title", {"session_id": sid, "title": f"doomed {key}"})
        assert await client.call("session.delete", {"session_id": key}) == {"deleted": True}
        with pytest.raises(RpcFailure) as gone:
            await client.call("session.history", {"session_id": sid})
        assert gone.value.code == 4001
        with pytest.raises(RpcFailure) as again:
            await client.call("session.delete", {"session_id": key})
        assert again.value.code == 4007
        with pytest.raises(RpcFailure) as missing:
            await client.call("session.delete", {})
        assert missing.value.code == 4006


async def test_an_agent_that_cannot_be_built_is_an_error_event_and_prompts_are_refused(gateways):
    gateway = gateways.shared("memory", AGENT="tests.testapp.backends.Broken")
    async with GatewayClient.connect(gateway.url) as client:
        sid = (await client.call("session.create"))["session_id"]
        error = await client.event("error", sid)
        assert error["payload"] == {"message": "agent init failed: no model server configured", "code": 5032}
        with pytest.raises(RpcFailure) as err:
            await client.call("prompt.submit", {"session_id": sid, "text": "hello"})
        assert err.value.code == 5032 and err.value.message == "agent init failed: no model server configured"
        assert (await client.call("session.history", {"session_id": sid}))["count"] == 0
