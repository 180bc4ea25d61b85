"""The shipped deploy/nginx.conf in front of ``manage.py gateway_workers`` (2 workers), as plain
processes: admin login (CSRF) and styles, a socket authenticated by ``?token=``, no token in any
log file, and the clients' real addresses in the workers' logs (X-Forwarded-For, --proxy-headers).

Needs Debian's nginx (``apt-get install nginx``): ``pytest -m nginx``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import eventually
from tests.ops_clients import Browser, create_superuser, scrape, value
from tests.services import ROOT, RedisServer, WorkerCluster, free_port, server_env, wait_port
from tests.test_auth import close_code
from ws_gateway.testing import GatewayClient

pytestmark = [pytest.mark.nginx, pytest.mark.db]

# The client is not the proxy: it connects from another loopback address than nginx's upstream side.
CLIENT_IP = "127.0.0.2"
PASSWORD = "nginx-admin-5d0b"


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if found is None:
        pytest.fail("the nginx tier needs nginx: apt-get install nginx (.ci/run installs it)")
    return found


def local_config(ports: list[int], listen: int, logs: Path) -> str:
    """deploy/nginx.conf with the workers' loopback ports, a loopback listener and logs in ``logs``."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    servers = "\n".join(f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;" for port in ports)
    text, count = re.subn(r"(upstream gateway \{\n)(?:\s*server [^\n]+\n)+", rf"\g<1>{servers}\n", text)
    assert count == 1, "no upstream block in deploy/nginx.conf"
    text, count = re.subn(r"listen 80;", f"listen 127.0.0.1:{listen};", text)
    assert count == 1
    return text.replace("/var/log/nginx/", f"{logs}/")


class Nginx:
    """nginx as a plain foreground process (no master, no privilege drop) with everything in ``root``."""

    def __init__(self, root: Path, site: str) -> None:
        self.root = root
        self.port = int(re.search(r"listen 127\.0\.0\.1:(\d+);", site).group(1))
        (root / "gateway.conf").write_text(site)
        temp = " ".join(
            f"{kind}_temp_path {root}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (root / "nginx.conf").write_text(
            f"daemon off; master_process off; pid {root}/nginx.pid;\n"
            f"error_log {root}/error.log info;\n"
            "events { worker_connections 256; }\n"
            f"http {{ {temp} include {root}/gateway.conf; }}\n"
        )
        binary = nginx_binary()
        test = subprocess.run(
            [binary, "-t", "-p", str(root), "-e", str(root / "stderr.log"), "-c", str(root / "nginx.conf")],
            capture_output=True,
            text=True,
        )
        assert test.returncode == 0, test.stderr
        self.proc = subprocess.Popen(
            [binary, "-p", str(root), "-e", str(root / "stderr.log"), "-c", str(root / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=open(root / "stderr.log", "ab"),  # noqa: SIM115 (kept open by the child)
        )
        wait_port(self.port, proc=self.proc)

    def logs(self) -> dict[str, str]:
        return {p.name: p.read_text(errors="replace") for p in self.root.glob("*.log")}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def deployment(server_database_url, logdir, tmp_path) -> Iterator[tuple[Nginx, WorkerCluster, dict]]:
    redis = RedisServer(tmp_path / "redis")
    env = server_env(
        server_database_url,
        redis.url,
        {"GATEWAY_PROXY_HEADERS": "1", "GATEWAY_ALLOW_ANONYMOUS": "0", "REDIS_LAYER": "pubsub"},
    )
    cluster = WorkerCluster(env, logdir, workers=2)
    root = tmp_path / "nginx"
    root.mkdir()
    nginx = Nginx(root, local_config([w.port for w in cluster.workers], free_port(), root))
    try:
        yield nginx, cluster, env
    finally:
        nginx.stop()
        cluster.stop()
        redis.stop()


async def test_through_the_shipped_nginx_config(deployment):
    nginx, cluster, env = deployment
    base = f"http://127.0.0.1:{nginx.port}"
    # The admin: login with CSRF (a browser sends Origin and Referer), styled.
    username = f"nginx-{uuid.uuid4().hex[:8]}"
    create_superuser(env, username, PASSWORD)
    browser = Browser(base, source_ip=CLIENT_IP)
    page = browser.login(username, PASSWORD)
    assert "Site administration" in page
    status, headers, css = browser.request("/static/admin/css/base.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css") and "--primary" in css
    assert browser.request("/metrics")[0] == 404  # each worker is scraped on its own port instead
    # A socket with ?token= (anonymous access is off: the token is what lets it in).
    token = subprocess.run(
        [sys.executable, "manage.py", "gateway_token", f"ws-{uuid.uuid4().hex[:8]}", "--create-user"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ws = f"ws://127.0.0.1:{nginx.port}/api/ws"
    async with GatewayClient.connect(f"{ws}?token={token}", local_addr=(CLIENT_IP, 0)) as client:
        sid = (await client.call("session.create"))["session_id"]
        await client.event("session.info", sid)
        await client.call("prompt.submit", {"session_id": sid, "text": "through nginx"})
        done = await client.event("message.complete", sid)
        assert done["payload"]["text"] == "You said: through nginx"
    wrong = f"gwt_wrong-{uuid.uuid4().hex}"
    assert await close_code(f"{ws}?token={wrong}", local_addr=(CLIENT_IP, 0)) == 4501
    # The workers saw the client's address, not nginx's.
    await eventually(lambda: f"ws closed peer={CLIENT_IP}:" in cluster.log_text())
    await eventually(lambda: f"ws refused peer={CLIENT_IP}:" in cluster.log_text())
    assert "ws closed peer=127.0.0.1:" not in cluster.log_text()
    # Metrics per worker, on the worker's own port (loopback may scrape).
    counts = [value(scrape(f"http://127.0.0.1:{w.port}"), "ws_gateway_events_total") for w in cluster.workers]
    assert sum(counts) >= 5
    nginx.stop()
    logs = {**nginx.logs(), "workers": cluster.log_text()}
    assert "/api/ws" in logs["access.log"] and "/admin/login/" in logs["access.log"]
    for name, text in logs.items():
        assert token not in text, f"the token is in {name}"
        assert wrong not in text, f"the refused token is in {name}"
        assert not re.search(r"token=[^\s&]", text), f"a query string is in {name}"
    assert logs["access.log"].startswith(CLIENT_IP + " ")  # nginx logs the client, too
