"""First contact: ready frame, ping, create and close through a real daphne."""

from ws_gateway.testing import GatewayClient


async def test_ready_then_create_and_close(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        ready = client.ready
        assert ready["method"] == "event"
        assert ready["params"]["type"] == "gateway.ready"
        assert "session_id" not in ready["params"] and "seq" not in ready["params"]
        assert len(ready["params"]["payload"]["replay_epoch"]) == 32
        assert await client.call("gateway.ping") == {"ok": True}
        created = await client.call("session.create")
        sid = created["session_id"]
        info = await client.event("session.info", sid)
        assert info["seq"] == 1
        assert await client.call("session.close", {"session_id": sid}) == {"closed": True}
        assert await client.call("session.close", {"session_id": sid}) == {"closed": False}


def test_healthz_checks_database_and_channel_layer(gateway):
    import json
    import urllib.request

    with urllib.request.urlopen(f"{gateway.http}/healthz", timeout=10) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {"status": "ok", "database": "ok", "channel_layer": "ok"}
