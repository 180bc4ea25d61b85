"""Who may connect and whose sessions they see (PROTOCOL.md section 11: auth and close codes)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pytest
import websockets

from tests.services import ROOT
from ws_gateway.testing import GatewayClient, RpcFailure

pytestmark = pytest.mark.db


def issue_token(gateway, username: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", "gateway_token", username, "--create-user", "--name", "tests"],
        cwd=ROOT,
        env=gateway.env,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


async def close_code(url: str, **kwargs) -> int:
    async with websockets.connect(url, **kwargs) as ws:
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code


@pytest.fixture
def private_gateway(gateways):
    return gateways.shared("memory", ALLOW_ANONYMOUS=False, ALLOWED_ORIGINS=["https://app.example"])


async def test_anonymous_and_bad_tokens_are_refused_with_4501(private_gateway):
    assert await close_code(private_gateway.url) == 4501
    bad = {"additional_headers": {"Authorization": "Bearer gwt_not-a-real-token"}}
    assert await close_code(private_gateway.url, **bad) == 4501


async def test_foreign_origin_is_refused_with_4503(private_gateway):
    token = issue_token(private_gateway, f"origin-{uuid.uuid4().hex[:8]}")
    headers = {"Authorization": f"Bearer {token}"}
    assert (
        await close_code(private_gateway.url, additional_headers=headers, origin="https://evil.example")
        == 4503
    )
    async with GatewayClient.connect(
        private_gateway.url, additional_headers=headers, origin="https://app.example"
    ) as ok:
        assert await ok.call("gateway.ping") == {"ok": True}


async def test_another_users_session_looks_missing(private_gateway):
    alice = issue_token(private_gateway, f"alice-{uuid.uuid4().hex[:8]}")
    bob = issue_token(private_gateway, f"bob-{uuid.uuid4().hex[:8]}")
    async with (
        GatewayClient.connect(
            private_gateway.url, additional_headers={"Authorization": f"Bearer {alice}"}
        ) as a,
        GatewayClient.connect(private_gateway.url + f"?token={bob}") as b,
    ):
        created = await a.call("session.create")
        sid, key = created["session_id"], created["stored_session_id"]
        await a.call("session.title", {"session_id": sid, "title": f"alice's {key}"})
        for method, params, code in (
            ("session.resume", {"session_id": key}, 4007),
            ("session.resume", {"session_id": f"alice's {key}"}, 4007),
            ("session.delete", {"session_id": key}, 4007),
            ("session.activate", {"session_id": sid}, 4001),
            ("prompt.submit", {"session_id": sid, "text": "hi"}, 4001),
        ):
            with pytest.raises(RpcFailure) as err:
                await b.call(method, params)
            assert err.value.code == code, method
        assert key not in [s["id"] for s in (await b.call("session.list"))["sessions"]]
        assert sid not in [s["id"] for s in (await b.call("session.active_list"))["sessions"]]
        assert key in [s["id"] for s in (await a.call("session.list"))["sessions"]]


async def test_a_frame_over_the_limit_closes_with_4509(gateways):
    gateway = gateways.shared("memory", MAX_MESSAGE_BYTES=10_000)
    async with websockets.connect(gateway.url) as ws:
        await ws.recv()
        await ws.send('{"id": 1, "method": "test.echo", "params": {"x": "' + "a" * 20_000 + '"}}')
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd.code == 4509


async def test_nobody_answers_another_users_prompts(private_gateway):
    """clarify, sudo and secret answers, and replies to server requests, from another user change nothing."""
    alice = issue_token(private_gateway, f"alice-{uuid.uuid4().hex[:8]}")
    bob = issue_token(private_gateway, f"bob-{uuid.uuid4().hex[:8]}")
    async with (
        GatewayClient.connect(private_gateway.url + f"?token={alice}") as a,
        GatewayClient.connect(private_gateway.url + f"?token={bob}") as b,
    ):
        sid = (await a.call("session.create"))["session_id"]
        await a.call(
            "prompt.submit", {"session_id": sid, "text": "!clarify Which?\n!sudo\n!secret KEY Paste"}
        )
        for kind, method, field, _answer in (
            ("clarify", "clarify.respond", "answer", "Answer: mine"),
            ("sudo", "sudo.respond", "password", "sudo: received"),
            ("secret", "secret.respond", "value", "secret: stored"),
        ):
            request = (await a.event(f"{kind}.request", sid))["payload"]
            with pytest.raises(RpcFailure) as err:
                await b.call(method, {"request_id": request["request_id"], field: "bob's"})
            assert err.value.code == 4009, kind
            open_ids = [
                r["request_id"]
                for r in (await a.call("session.events.since", {"session_id": sid}))["open_requests"]
            ]
            assert open_ids == [request["request_id"]], kind  # still open: bob's answer did nothing
            assert await a.call(method, {"request_id": request["request_id"], field: "mine"}) == {
                "status": "ok"
            }
        complete = await a.event("message.complete", sid)
        assert complete["payload"]["text"] == "Answer: mine\nsudo: received\nsecret: stored"


async def test_another_users_reply_to_a_server_request_is_dropped(private_gateway):
    alice = issue_token(private_gateway, f"alice-{uuid.uuid4().hex[:8]}")
    bob = issue_token(private_gateway, f"bob-{uuid.uuid4().hex[:8]}")
    async with (
        GatewayClient.connect(private_gateway.url + f"?token={alice}") as a,
        GatewayClient.connect(private_gateway.url + f"?token={bob}") as b,
    ):
        sid = (await a.call("session.create", {"server_requests": True}))["session_id"]
        await a.call("prompt.submit", {"session_id": sid, "text": "!clarify Pick | left | right"})
        request = await a.server_request("clarify")
        await b.reply(request["id"], {"answers": {"q1": "left"}})
        assert await b.call("gateway.ping") == {"ok": True}  # bob's reply was handled before this
        open_ids = [
            r["id"] for r in (await a.call("session.events.since", {"session_id": sid}))["open_requests"]
        ]
        assert open_ids == [request["id"]]
        await a.reply(request["id"], {"answers": {"q1": "right"}})
        complete = await a.event("message.complete", sid)
        assert complete["payload"]["text"] == "Answer: right"
