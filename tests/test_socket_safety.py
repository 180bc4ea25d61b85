"""Safe by default against a real daphne: origins and hosts, dashboard tokens, limits, tenancy.

PROTOCOL.md section 11 (Origins, Auth, close codes) and section 13's last
paragraph (dashboard-style URLs); docs/security.md says why each rule exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import uuid
from typing import Any

import pytest
import websockets

from tests.helpers import server_saw_close
from tests.services import ROOT, server_env
from ws_gateway.testing import GatewayClient, RpcFailure

pytestmark = pytest.mark.db
# Creates a user (staff or not) in the servers' database and prints a bearer token for it and
# the session cookie of a browser logged in as that user (Django's test client: a real login).
MAKE_USER = """
import django, json, sys
django.setup()
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from ws_gateway.auth import issue_token
name, staff = sys.argv[1], sys.argv[2] == "staff"
user = get_user_model().objects.create_user(name, is_staff=staff)
browser = Client()
browser.force_login(user)
print(json.dumps({"token": issue_token(user, "tests"),
                  "cookie": browser.cookies[settings.SESSION_COOKIE_NAME].value}))
"""


def make_user(env: dict[str, str], prefix: str, *, staff: bool = False) -> dict[str, str]:
    """A new user of the servers' database (``env`` of a server): ``{"token": ..., "cookie": ...}``."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [sys.executable, "-c", MAKE_USER, name, "staff" if staff else "user"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def bearer(user: dict[str, str]) -> dict[str, Any]:
    return {"additional_headers": {"Authorization": f"Bearer {user['token']}"}}


def cookie(user: dict[str, str]) -> dict[str, str]:
    return {"Cookie": f"sessionid={user['cookie']}"}


async def refused(url: str, **kwargs: Any) -> tuple[int, list[str]]:
    """(close code, frames received before it) of a socket the server closes; it sends a request
    at once, so a socket that got as far as running anything would answer it."""
    frames: list[str] = []
    async with websockets.connect(url, **kwargs) as ws:
        with contextlib.suppress(websockets.ConnectionClosed):  # the close may come first
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "session.create"}))
        try:
            while True:
                frames.append(await asyncio.wait_for(ws.recv(), 10))
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code, frames
    raise AssertionError("the server did not close the socket")


def origin_of(gateway: Any) -> str:
    return f"http://127.0.0.1:{gateway.port}"


@pytest.fixture
def default_gateway(gateways):
    """A gateway with the defaults of a fresh install (anonymous access on)."""
    return gateways.shared("memory")


@pytest.fixture
def private_gateway(gateways):
    """Anonymous access off: every socket authenticates (token or browser cookie)."""
    return gateways.shared("memory", ALLOW_ANONYMOUS=False)


# -- origins and hosts --------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "reason"), [("http://evil.example", "foreign origin"), ("null", "null origin")]
)
async def test_a_foreign_or_null_origin_gets_4503_and_nothing_runs(default_gateway, origin, reason):
    code, frames = await refused(default_gateway.url, origin=origin)
    assert (code, frames) == (4503, [])  # not even gateway.ready: no dispatcher ever existed
    log = default_gateway.log_text()
    assert f"code=4503 reason={reason} host='127.0.0.1:{default_gateway.port}' origin='{origin}'" in log


async def test_a_rebinding_host_gets_4503_even_without_origin(default_gateway):
    # DNS rebinding: the page's name resolves to 127.0.0.1, so the handshake's Host is that name.
    url = f"ws://rebind.evil.example:{default_gateway.port}/api/ws"
    code, frames = await refused(url, host="127.0.0.1", port=default_gateway.port)
    assert (code, frames) == (4503, [])
    assert "reason=host not in ALLOWED_HOSTS host='rebind.evil.example:" in default_gateway.log_text()
    # ...also when the rebinding page sends its (then same-host) Origin.
    same = f"http://rebind.evil.example:{default_gateway.port}"
    code, _ = await refused(url, host="127.0.0.1", port=default_gateway.port, origin=same)
    assert code == 4503


async def test_same_origin_listed_origin_and_no_origin_are_accepted(default_gateway, gateways):
    for kwargs in ({}, {"origin": origin_of(default_gateway)}):
        async with GatewayClient.connect(default_gateway.url, **kwargs) as client:
            assert await client.call("gateway.ping") == {"ok": True}
    # Same host, another port: another origin.
    other_port = f"http://127.0.0.1:{default_gateway.port + 1}"
    assert (await refused(default_gateway.url, origin=other_port))[0] == 4503
    listed = gateways.shared("memory", ALLOWED_ORIGINS=["https://app.example"])
    async with GatewayClient.connect(listed.url, origin="https://app.example") as client:
        assert await client.call("gateway.ping") == {"ok": True}
    assert (await refused(listed.url, origin="https://evil.example"))[0] == 4503


async def test_a_logged_in_cookie_counts_only_from_an_accepted_origin(private_gateway):
    user = make_user(private_gateway.env, "browser")
    headers = cookie(user)
    # CSWSH: the user's own browser, logged in, on a foreign page.
    code, frames = await refused(
        private_gateway.url, additional_headers=headers, origin="http://evil.example"
    )
    assert (code, frames) == (4503, [])
    # A cookie without Origin is not the user's browser: it does not authenticate.
    assert (await refused(private_gateway.url, additional_headers=headers))[0] == 4501
    assert "code=4501 reason=not authenticated" in private_gateway.log_text()
    # The page's own origin: the cookie is the user's login.
    async with GatewayClient.connect(
        private_gateway.url, additional_headers=headers, origin=origin_of(private_gateway)
    ) as client:
        created = await client.call("session.create")
        assert created["session_id"]


# -- dashboard-style URLs -----------------------------------------------------


async def test_an_unknown_query_token_connects_anonymously_when_anonymous_is_on(default_gateway):
    async with GatewayClient.connect(default_gateway.url + "?token=dashboard-token-of-elsewhere") as client:
        assert (await client.call("session.create"))["session_id"]
    bad = {"additional_headers": {"Authorization": "Bearer gwt_not-a-real-token"}}
    assert (await refused(default_gateway.url, **bad))[0] == 4501
    assert "code=4501 reason=unrecognised bearer token" in default_gateway.log_text()


async def test_unknown_tokens_get_4501_when_anonymous_is_off_and_are_never_logged(private_gateway):
    secret = f"garbage-{uuid.uuid4().hex}"
    assert (await refused(private_gateway.url + f"?token={secret}"))[0] == 4501
    bad = {"additional_headers": {"Authorization": f"Bearer {secret}x"}}
    assert (await refused(private_gateway.url, **bad))[0] == 4501
    log = private_gateway.log_text()
    assert "code=4501 reason=unrecognised ?token=" in log and secret not in log
    user = make_user(private_gateway.env, "t")
    async with GatewayClient.connect(private_gateway.url, **bearer(user)) as ok:
        assert await ok.call("gateway.ping") == {"ok": True}


# -- limits -------------------------------------------------------------------


async def test_live_session_caps_per_connection_and_per_user(gateways):
    gateway = gateways.shared("memory", MAX_SESSIONS_PER_CONNECTION=3, MAX_SESSIONS_PER_USER=4)
    first = await GatewayClient.open(gateway.url)
    mine = [(await first.call("session.create"))["session_id"] for _ in range(3)]
    with pytest.raises(RpcFailure) as err:
        await first.call("session.create")
    assert err.value.code == 4090 and err.value.data == {"reason": "connection"}
    listed = (await first.call("session.active_list"))["sessions"]
    assert sorted(s["id"] for s in listed) == sorted(mine)  # the refused one left nothing behind
    async with GatewayClient.connect(gateway.url) as second:
        await second.call("session.create")
        with pytest.raises(RpcFailure) as err:  # anonymous clients are one user: 4 in all
            await second.call("session.create")
        assert err.value.code == 4090 and err.value.data == {"reason": "user"}
        # Once the first client is gone its sessions are clientless: the oldest makes room.
        await first.close()
        await server_saw_close(gateway, first)
        await second.call("session.create")
        reclaimed = await second.event("session.reclaimed", "")
        assert reclaimed["payload"]["session_id"] == mine[0] and reclaimed["payload"]["reason"] == "lru_evict"
        assert len((await second.call("session.active_list"))["sessions"]) == 4


async def test_the_default_rate_limit_answers_a_burst_with_4290(default_gateway):
    async with websockets.connect(default_gateway.url) as ws:
        await ws.recv()  # gateway.ready
        batch = [{"jsonrpc": "2.0", "id": i, "method": "test.echo", "params": {"i": i}} for i in range(600)]
        await ws.send(json.dumps(batch))
        answers = await next_answer(ws, list)
        assert [a["id"] for a in answers] == list(range(600))
        ok = [a for a in answers if "result" in a]
        limited = [a["error"] for a in answers if "error" in a]
        # The burst of 200 goes through (plus the 50/s that trickle in while the batch is read).
        assert len(ok) >= 200 and limited and len(ok) + len(limited) == 600
        assert all(e["code"] == 4290 and e["data"]["retry_after_ms"] > 0 for e in limited)
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": "p", "method": "gateway.ping"}))
        assert await next_answer(ws, dict) == {"jsonrpc": "2.0", "id": "p", "result": {"ok": True}}


async def next_answer(ws: Any, kind: type) -> Any:
    """The next frame that is not an event (the shared gateway's anonymous user may get global
    events of other tests' sessions meanwhile)."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if isinstance(frame, kind) and not (isinstance(frame, dict) and frame.get("method") == "event"):
            return frame


# -- tenancy ------------------------------------------------------------------


async def test_global_events_carry_no_ids_of_another_users_sessions(private_gateway):
    alice, bob = make_user(private_gateway.env, "alice"), make_user(private_gateway.env, "bob")
    async with (
        GatewayClient.connect(private_gateway.url, **bearer(alice)) as a,
        GatewayClient.connect(private_gateway.url, **bearer(bob)) as b,
    ):
        sid = (await a.call("session.create"))["session_id"]
        titled = await a.call("session.title", {"session_id": sid, "title": "alice's plans"})
        key = titled["session_key"]
        await a.event("sessions.changed", "")
        gone = await GatewayClient.open(private_gateway.url, **bearer(alice))
        other = (await gone.call("session.create", {"close_on_disconnect": True}))["session_id"]
        await gone.close()
        assert (await a.event("session.reclaimed", ""))["payload"]["session_id"] == other
        await a.call("session.delete", {"session_id": key})
        await a.wait_for(lambda: len(a.find_events("sessions.changed")) >= 2)
        # Bob's own change comes after all of Alice's on the same gateway, in order.
        own = (await b.call("session.create"))["session_id"]
        own_key = (await b.call("session.title", {"session_id": own, "title": "bob's"}))["session_key"]
        assert (await b.event("sessions.changed", ""))["payload"]["session_id"] == own_key
        seen = json.dumps(b.frames)
        assert key not in seen and sid not in seen and other not in seen
        assert not b.find_events("session.reclaimed")


async def test_global_events_reach_only_the_owner_on_every_worker(clusters, server_database_url):
    cluster, _ = clusters(2, ALLOW_ANONYMOUS=False)
    env = server_env(server_database_url, None)
    alice, bob = make_user(env, "alice"), make_user(env, "bob")
    one, two = cluster.workers
    async with (
        GatewayClient.connect(one.url, **bearer(alice)) as a1,
        GatewayClient.connect(two.url, **bearer(alice)) as a2,
        GatewayClient.connect(two.url, **bearer(bob)) as b2,
    ):
        sid = (await a1.call("session.create"))["session_id"]
        key = (await a1.call("session.title", {"session_id": sid, "title": "alice's"}))["session_key"]
        # Worker 2 hands one published event to all its connections at once: when Alice's second
        # client has it, Bob would have it too.
        assert (await a2.event("sessions.changed", ""))["payload"]["session_id"] == key
        await a1.call("session.delete", {"session_id": key})
        await a2.wait_for(lambda: len(a2.find_events("sessions.changed")) >= 2)
        assert not b2.find_events("sessions.changed")
        assert key not in json.dumps(b2.frames) and sid not in json.dumps(b2.frames)


async def test_the_skin_is_changed_only_by_staff_when_auth_is_on(private_gateway):
    user, staff = make_user(private_gateway.env, "user"), make_user(private_gateway.env, "admin", staff=True)
    async with (
        GatewayClient.connect(private_gateway.url, **bearer(user)) as plain,
        GatewayClient.connect(private_gateway.url, **bearer(staff)) as admin,
    ):
        before = (await plain.call("config.get", {"key": "skin"}))["value"]
        target = "slate" if before != "slate" else "default"
        with pytest.raises(RpcFailure) as err:
            await plain.call("config.set", {"key": "skin", "value": target})
        assert err.value.code == 4002 and "staff" in err.value.message
        assert (await plain.call("config.get", {"key": "skin"}))["value"] == before
        assert await admin.call("config.set", {"key": "skin", "value": target}) == {
            "key": "skin",
            "value": target,
        }
        assert (await plain.event("skin.changed", ""))["payload"]["name"] == target
        await admin.call("config.set", {"key": "skin", "value": before})
