"""First contact: ready frame, ping, create and close through a real daphne."""

import json
import urllib.error
import urllib.request

import pytest

from tests.services import Gateway, free_port, server_env
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
    with urllib.request.urlopen(f"{gateway.http}/healthz", timeout=10) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {"status": "ok", "database": "ok", "channel_layer": "ok"}


def test_healthz_answers_503_naming_what_failed(logdir, tmp_path):
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    env = server_env(f"sqlite:///{tmp_path / 'no-such-dir' / 'db.sqlite3'}", nowhere)
    gateway = Gateway(env, logdir, name="unhealthy")
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{gateway.http}/healthz", timeout=30)
        assert err.value.code == 503
        body = json.loads(err.value.read())
        assert body["status"] == "error"
        assert body["database"].startswith("error: ") and body["channel_layer"].startswith("error: ")
    finally:
        gateway.stop()
