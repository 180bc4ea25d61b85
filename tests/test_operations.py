"""Operating a gateway: the admin (styled, read-only transcripts, tokens, live sessions), /metrics,
health checks that leave nothing behind, JSON logs with ids, and no secret in any log line.

Everything runs against real daphne processes (and a real Redis where named)."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import uuid

import pytest
import redis

from tests.helpers import Session, eventually
from tests.ops_clients import Browser, create_superuser, scrape, value
from tests.services import ROOT, Gateway, RedisServer, server_env
from tests.test_auth import close_code
from ws_gateway import logs
from ws_gateway.testing import GatewayClient

pytestmark = pytest.mark.db

PASSWORD = "admin-pass-7c1e"


@pytest.fixture(scope="module")
def admin_gateway(gateways):
    """A gateway of this module's own (its metrics and live sessions are only this module's)."""
    gateway = gateways.new("memory")
    return gateway


@pytest.fixture(scope="module")
def staff(admin_gateway) -> str:
    username = f"ops-{uuid.uuid4().hex[:8]}"
    create_superuser(admin_gateway.env, username, PASSWORD)
    return username


def logged_in(gateway, username: str) -> Browser:
    browser = Browser(gateway.http)
    browser.login(username, PASSWORD)
    return browser


# -- health checks ------------------------------------------------------------


def test_healthz_on_the_pubsub_layer_leaves_no_subscription_behind(server_database_url, logdir, tmp_path):
    server = RedisServer(tmp_path / "redis")
    gateway = Gateway(server_env(server_database_url, server.url, {"REDIS_LAYER": "pubsub"}), logdir, "hz")
    try:
        probe = redis.Redis.from_url(server.url)
        assert gateway.healthz() == 200
        channels, clients = len(probe.pubsub_channels()), len(probe.client_list())
        for _ in range(50):
            assert gateway.healthz() == 200
        assert len(probe.pubsub_channels()) == channels
        assert len(probe.client_list()) == clients
    finally:
        gateway.stop()
        server.stop()


# -- the admin ----------------------------------------------------------------


def test_admin_is_styled_under_daphne(admin_gateway, staff):
    browser = logged_in(admin_gateway, staff)
    status, _, page = browser.request("/admin/")
    assert status == 200 and "/static/admin/css/base.css" in page
    status, headers, css = browser.request("/static/admin/css/base.css")
    assert status == 200
    assert headers["Content-Type"].startswith("text/css")
    assert "--primary" in css  # the admin's own stylesheet, not an error page


async def test_transcripts_are_read_only_in_the_admin(admin_gateway, staff):
    async with Session.open(admin_gateway) as s:
        await s.turn("hello admin")
        key = s.key
    browser = logged_in(admin_gateway, staff)
    status, _, page = browser.request(f"/admin/ws_gateway/storedsession/{key}/change/")
    assert status == 200 and "You said: hello admin" in page
    # No row can be added (the inline's script shows "Add another" only below its maximum),
    # deleted or edited.
    assert 'name="messages-MAX_NUM_FORMS" value="0"' in page
    assert "messages-0-DELETE" not in page and 'name="messages-0-text"' not in page
    status, _, listing = browser.request(f"/admin/ws_gateway/transcriptmessage/?q={key}")
    assert status == 200
    assert "/admin/ws_gateway/transcriptmessage/add/" not in listing
    row = re.search(r"/admin/ws_gateway/transcriptmessage/(\d+)/change/", listing).group(1)
    status, _, form = browser.request(f"/admin/ws_gateway/transcriptmessage/{row}/change/")
    assert status == 200
    assert "<textarea" not in form and 'type="submit"' not in form.split('id="content-main"', 1)[1]
    status, _, _ = browser.request(f"/admin/ws_gateway/transcriptmessage/{row}/delete/")
    assert status == 403


async def test_access_tokens_in_the_admin_shown_once_used_and_revoked(admin_gateway, staff):
    browser = logged_in(admin_gateway, staff)
    status, _, form = browser.request("/admin/ws_gateway/accesstoken/add/")
    assert status == 200
    status, headers, page = browser.post_form(
        "/admin/ws_gateway/accesstoken/add/", form, {"user": "1", "name": "laptop"}
    )
    assert status == 200, page[:2000]
    token = page.split('id="gateway-token"', 1)[0].rsplit('value="', 1)[1].split('"', 1)[0]
    assert token.startswith("gwt_") and len(token) > 40
    assert "no-store" in headers.get("Cache-Control", "")
    assert all(token not in cookie.value for cookie in browser.cookies)
    # The listing never shows it again; it works on a socket and its use is recorded.
    status, _, listing = browser.request("/admin/ws_gateway/accesstoken/")
    assert "laptop" in listing and token not in listing
    async with GatewayClient.connect(
        admin_gateway.url, additional_headers={"Authorization": f"Bearer {token}"}
    ):
        pass
    token_id = re.search(r"/admin/ws_gateway/accesstoken/(\d+)/change/", listing).group(1)
    status, _, detail = browser.request(f"/admin/ws_gateway/accesstoken/{token_id}/change/")
    assert "Last used at" in detail and "-</div>" not in detail.split("Last used at", 1)[1][:300]
    # Revoke (the list action): the socket is refused from then on.
    status, _, page = browser.post_form(
        "/admin/ws_gateway/accesstoken/",
        listing,
        {"action": "revoke", "_selected_action": token_id, "index": "0"},
    )
    assert status == 200 and "Revoked 1 token(s)." in page
    private = admin_gateway.url + f"?token={token}"
    async with GatewayClient.connect(private) as anonymous:  # anonymous mode: an unknown ?token= is ignored
        assert anonymous is not None


def test_approval_rules_are_in_the_admin(admin_gateway, staff):
    browser = logged_in(admin_gateway, staff)
    status, _, page = browser.request("/admin/ws_gateway/approvalrule/")
    assert status == 200 and "approval rule" in page.lower()
    status, _, index = browser.request("/admin/")
    for name in ("Access tokens", "Approval rules", "Live sessions", "Stored sessions"):
        assert name in index


async def test_live_sessions_page_lists_and_closes_a_session(admin_gateway, staff):
    browser = logged_in(admin_gateway, staff)
    async with Session.open(admin_gateway) as s:
        await s.call("session.title", {"title": "watched by ops"})
        mark = len(s.client.events)
        await s.call("prompt.submit", {"text": "!sleep 60000"})
        await s.client.event("message.start", s.sid, after=mark)
        status, _, page = browser.request("/admin/ws_gateway/livesessionpage/")
        assert status == 200
        row = page.split(f'data-session="{s.sid}"', 1)[1].split("</tr>", 1)[0]
        assert 'class="status">working' in row
        assert 'class="clients">1<' in row
        assert "!sleep 60000" in row and "watched by ops" in row and "demo" in row
        status, _, page = browser.post_form(
            "/admin/ws_gateway/livesessionpage/close/", page, {"session_id": s.sid, "channel": ""}
        )
        assert status == 200 and f"Closed session {s.sid}." in page
        reclaimed = await s.client.event("session.reclaimed")
        assert reclaimed["payload"]["reason"] == "admin_close"
        assert f'data-session="{s.sid}"' not in page
        stopped = await s.client.event("message.complete", s.sid, after=mark)
        assert stopped["payload"]["status"] == "interrupted"


async def test_live_sessions_need_their_permissions(admin_gateway):
    """Staff without the live-session permissions neither see nor close sessions."""
    username = f"staff-{uuid.uuid4().hex[:8]}"
    script = (
        "from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.create_user({username!r}, password={PASSWORD!r}, is_staff=True)"
    )
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=admin_gateway.env, check=True
    )
    browser = Browser(admin_gateway.http)
    browser.login(username, PASSWORD)
    assert browser.request("/admin/ws_gateway/livesessionpage/")[0] == 403
    async with Session.open(admin_gateway) as s:
        _, _, form = browser.request("/admin/")
        status, _, _ = browser.post_form(
            "/admin/ws_gateway/livesessionpage/close/", form, {"session_id": s.sid, "channel": ""}
        )
        assert status == 403
        assert (await s.call("session.usage")) is not None  # still live
    status, _, page = Browser(admin_gateway.http).request("/admin/ws_gateway/livesessionpage/")
    assert status == 200 and 'name="username"' in page  # anonymous: the login form


def test_gateway_token_list_and_revoke(admin_gateway):
    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", "gateway_token", *args],
            cwd=ROOT,
            env=admin_gateway.env,
            check=check,
            capture_output=True,
            text=True,
        )

    user = f"cli-{uuid.uuid4().hex[:8]}"
    missing = run(user, check=False)
    assert (
        missing.returncode != 0 and "--create-user" in missing.stderr and "createsuperuser" in missing.stderr
    )
    first = run(user, "--create-user", "--name", "first").stdout.strip()
    second = run("create", user, "--name", "second").stdout.strip()
    assert first.startswith("gwt_") and second.startswith("gwt_") and first != second
    listing = run("list", user).stdout
    assert "first" in listing and "second" in listing and "never" in listing
    assert first not in listing and second not in listing
    ids = [line.split()[0] for line in listing.splitlines()[1:]]
    assert run("revoke", ids[0]).stdout.strip() == "revoked 1 token(s)"
    assert "first" not in run("list", user).stdout
    unknown = run("revoke", "999999", check=False)
    assert unknown.returncode != 0 and "nothing revoked" in unknown.stderr
    assert run("revoke", "--user", user).stdout.strip() == "revoked 1 token(s)"
    assert run("list", user).stdout.count("\n") == 1


# -- metrics ------------------------------------------------------------------


async def test_metrics_after_a_turn(admin_gateway, staff):
    before = scrape(admin_gateway.http)
    async with Session.open(admin_gateway) as s:
        events = await s.turn("!stream 5 20")
        during = scrape(admin_gateway.http)
        assert value(during, "ws_gateway_connections") >= 1
        assert value(during, "ws_gateway_live_sessions") >= 1
        mark = len(s.client.events)
        await s.call("prompt.submit", {"text": "!sudo"})
        await s.client.event("sudo.request", s.sid, after=mark)
        waiting = scrape(admin_gateway.http)
        assert value(waiting, "ws_gateway_running_turns") >= 1
        assert value(waiting, "ws_gateway_pending_requests") >= 1
        await s.call("session.interrupt")
        await s.completes(1, mark)
        port = s.client.ws.local_address[1]
    await eventually(lambda: f"ws closed peer=127.0.0.1:{port} " in admin_gateway.log_text())
    after = scrape(admin_gateway.http)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("ws_gateway_events_total") >= len(events)
    assert grew("ws_gateway_frames_sent_total") >= len(events)
    assert grew("ws_gateway_turn_duration_seconds_count", status="complete") >= 1
    assert grew("ws_gateway_turn_duration_seconds_count", status="interrupted") >= 1
    assert grew("ws_gateway_turn_duration_seconds_sum", status="complete") > 0.08  # 5 tokens 20 ms apart
    assert grew("ws_gateway_first_token_seconds_count") >= 1
    assert grew("ws_gateway_closes_total", code="1000") >= 1
    assert value(after, "ws_gateway_running_turns") == 0
    assert value(after, "ws_gateway_pending_requests") == 0
    assert value(after, "ws_gateway_connections") <= value(during, "ws_gateway_connections") - 1
    # One process, no Redis: nothing forwarded, no Redis error (counted in the cluster test).
    assert value(after, "ws_gateway_forwarded_calls_total", outcome="ok") == 0
    assert value(after, "ws_gateway_redis_errors_total", op="heartbeat") == 0


def test_metrics_are_refused_to_other_networks_but_not_to_staff(gateways, staff, admin_gateway):
    # Only 127.0.0.2 is allowed: a scrape from 127.0.0.1 is another network's.
    narrow = gateways.new("memory", METRICS_ALLOW=["127.0.0.2/32"])
    status, _, body = Browser(narrow.http).request("/metrics")
    assert status == 403 and "ws_gateway" not in body
    status, _, body = Browser(narrow.http, source_ip="127.0.0.2").request("/metrics")
    assert status == 200 and "ws_gateway_connections" in body
    browser = logged_in(narrow, staff)
    status, _, body = browser.request("/metrics")
    assert status == 200 and "ws_gateway_events_total" in body


async def test_cluster_metrics_and_live_sessions_across_workers(clusters, server_database_url):
    cluster, redis_server = clusters(workers=2)
    first, second = cluster.workers
    username = f"ops-{uuid.uuid4().hex[:8]}"
    env = server_env(server_database_url, redis_server.url)
    create_superuser(env, username, PASSWORD)
    async with GatewayClient.connect(first.url) as owner, GatewayClient.connect(second.url) as other:
        created = await owner.call("session.create")
        sid = created["session_id"]
        await owner.event("session.info", sid)
        await other.call("session.resume", {"session_id": created["stored_session_id"]})
        await other.call("prompt.submit", {"session_id": sid, "text": "hello from the other worker"})
        await owner.event("message.complete", sid)
        forwarded = scrape(f"http://127.0.0.1:{second.port}")
        assert value(forwarded, "ws_gateway_forwarded_calls_total", outcome="ok") >= 2
        # The admin page, served by the worker that does not own the session, lists and closes it.
        browser = Browser(f"http://127.0.0.1:{second.port}")
        browser.login(username, PASSWORD)
        status, _, page = browser.request("/admin/ws_gateway/livesessionpage/")
        assert status == 200 and "Not answering" not in page
        row = page.split(f'data-session="{sid}"', 1)[1].split("</tr>", 1)[0]
        assert f'class="worker">{first.name}<' in row and 'class="clients">2<' in row
        status, _, page = browser.post_form(
            "/admin/ws_gateway/livesessionpage/close/", page, {"session_id": sid, "channel": ""}
        )
        assert status == 200 and f"Closed session {sid}." in page
        for client in (owner, other):
            assert (await client.event("session.reclaimed"))["payload"]["reason"] == "admin_close"
    # Redis goes away: the workers count the failures of their heartbeats.
    redis_server.stop()
    await eventually(
        lambda: (
            value(scrape(f"http://127.0.0.1:{first.port}"), "ws_gateway_redis_errors_total", op="heartbeat")
            >= 1
        ),
        timeout=30,
        interval=0.5,
    )


# -- logs ---------------------------------------------------------------------

SECRET_VALUE = "s3cr3t-value-9d2f41"
SUDO_PASSWORD = "sudo-pass-4b7a2e"
OPENAI_KEY = "sk-proj-AbCdEf0123456789xyzSECRET"


async def test_no_secret_in_any_log_line_and_json_logs_carry_ids(gateways, logdir):
    gateway = gateways.new("memory")
    env = {
        **gateway.env,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "DEBUG",
        "OPENAI_API_KEY": OPENAI_KEY,
        "GATEWAY_ALLOW_ANONYMOUS": "0",
    }
    gateway.stop()
    gateway = Gateway(env, logdir, "secrets")
    try:
        token = subprocess.run(
            [sys.executable, "manage.py", "gateway_token", f"sec-{uuid.uuid4().hex[:8]}", "--create-user"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        async with GatewayClient.connect(f"{gateway.url}?token={token}") as client:
            sid = (await client.call("session.create"))["session_id"]
            await client.event("session.info", sid)
            mark = len(client.events)
            await client.call(
                "prompt.submit", {"session_id": sid, "text": "!sudo\n!secret API_TOKEN paste\n!run env"}
            )
            sudo = await client.event("sudo.request", sid, after=mark)
            await client.call(
                "sudo.respond", {"request_id": sudo["payload"]["request_id"], "password": SUDO_PASSWORD}
            )
            secret = await client.event("secret.request", sid, after=mark)
            await client.call(
                "secret.respond", {"request_id": secret["payload"]["request_id"], "value": SECRET_VALUE}
            )
            approval = await client.event("approval.request", sid, after=mark)
            assert approval["payload"]["command"] == "env"
            await client.call("approval.respond", {"session_id": sid, "choice": "once"})
            done = await client.event("message.complete", sid, after=mark)
            assert done["payload"]["status"] == "complete"
        bad = f"{gateway.url}?token=gwt_wrong-{uuid.uuid4().hex}"
        assert await close_code(bad) == 4501
        assert await close_code(gateway.url, additional_headers={"Authorization": f"Bearer {token}x"}) == 4501
        await eventually(lambda: gateway.log_text().count("ws refused") >= 2)
        await eventually(lambda: "ws closed" in gateway.log_text())
    finally:
        gateway.stop()
    text = gateway.log_text()
    for secret_text in (token, token[4:], SUDO_PASSWORD, SECRET_VALUE, OPENAI_KEY, bad.split("=", 1)[1]):
        assert secret_text not in text
    # Every line is JSON but daphne's own access log (NCSA lines on stdout, paths without queries).
    access = re.compile(r'^\S+ - - \[[^\]]+\] "(GET|POST|WS[A-Z]+) ')
    lines = [json.loads(line) for line in text.splitlines() if line.strip() and not access.match(line)]
    refused_lines = [line for line in lines if line["message"].startswith("ws refused")]
    assert any("unrecognised ?token=" in line["message"] for line in refused_lines)
    assert any("unrecognised bearer token" in line["message"] for line in refused_lines)
    closed = [line for line in lines if line["message"].startswith("ws closed")]
    assert closed and all(line["conn_id"] for line in closed)
    # The turn's lines name the session; lines of a call name its connection and request.
    assert any(line["session_id"] == sid and "kind=sudo" in line["message"] for line in lines)
    ended = [line for line in lines if "request ended" in line["message"]]
    assert ended and all(line["conn_id"] and line["request_id"] for line in ended)


def test_json_formatter_names_the_ids():
    record = logging.LogRecord("ws_gateway.x", logging.INFO, __file__, 1, "hello %s", ("there",), None)
    with logs.bound(conn="c1", session="s1", request=7):
        logs.ContextFilter().filter(record)
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["message"] == "hello there"
    assert (line["conn_id"], line["session_id"], line["request_id"]) == ("c1", "s1", "7")
    logs.ContextFilter().filter(record)
    assert record.conn_id is None
