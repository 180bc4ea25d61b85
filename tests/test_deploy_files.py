"""The shipped deployment files: the image holds only what runs (and that is enough to run), as a
non-root user; compose builds one named image once; nginx logs no query string.

No Docker daemon is needed: the image's file layout is rebuilt from the Dockerfile's COPY lines
in a temporary directory and served from its working directory, as the container would."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.helpers import Session
from tests.services import ROOT, free_port, server_env, wait_port

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def copied_paths() -> list[str]:
    """What the Dockerfile copies into the image (COPY SRC... DEST)."""
    paths = []
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY "):
            paths.extend(line.split()[1:-1])
    return paths


def test_the_image_copies_only_what_runs_and_runs_as_a_user():
    assert sorted(copied_paths()) == ["hermes_site", "manage.py", "requirements.txt", "ws_gateway"]
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert users and users[-1] not in ("root", "0")
    assert DOCKERFILE.index("USER ") < DOCKERFILE.index("CMD ")
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignored[0] == "*"  # everything is excluded from the build context but:
    assert {line for line in ignored if line.startswith("!")} == {
        "!requirements.txt",
        "!manage.py",
        "!hermes_site",
        "!ws_gateway",
    }


def test_compose_builds_one_named_image_once_and_trusts_only_nginx():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    built = [name for name, svc in services.items() if "build" in svc]
    assert built == ["migrate"] and services["migrate"]["image"] == "ws-gateway:local"
    gateways = [svc for name, svc in services.items() if name.startswith("gateway-")]
    assert len(gateways) == 3
    for svc in gateways:
        assert svc["image"] == "ws-gateway:local" and svc["pull_policy"] == "never"
        assert "--proxy-headers" in svc["command"]
        assert "ports" not in svc  # reachable only through nginx, which sets the forwarded headers
        assert svc["environment"]["CSRF_TRUSTED_ORIGINS"]
    assert services["nginx"]["ports"] == ["8080:80"]
    example = (ROOT / ".env.example").read_text()
    for name in ("DJANGO_SECRET_KEY", "DJANGO_DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS"):
        assert re.search(rf"^{name}=", example, re.M)


def test_nginx_logs_no_query_string():
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    log_format = re.search(r"log_format gateway (.*?);", conf, re.S).group(1)
    assert "$uri" in log_format
    for leaky in ("$request ", '$request"', "$request_uri", "$args", "$query_string", "$http_referer"):
        assert leaky not in log_format
    assert re.search(r"access_log \S+ gateway;", conf)
    assert "proxy_set_header Host $http_host;" in conf


@pytest.mark.db
async def test_the_image_layout_serves_from_its_workspace(tmp_path: Path, logdir: Path):
    """The image's files only, PYTHONPATH=/app, cwd /workspace: migrate, serve, style, a turn."""
    app, workspace = tmp_path / "app", tmp_path / "workspace"
    app.mkdir()
    workspace.mkdir()
    for name in copied_paths():
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, app / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, app / name)
    env = server_env(f"sqlite:///{tmp_path / 'db.sqlite3'}", None)
    env.update(PYTHONPATH=str(app), DJANGO_SETTINGS_MODULE="hermes_site.settings")
    subprocess.run(
        [sys.executable, str(app / "manage.py"), "migrate", "-v0"], cwd=workspace, env=env, check=True
    )
    port = free_port()
    with open(logdir / f"image-{port}.log", "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "hermes_site.asgi:application",
            ],
            cwd=workspace,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_port(port, proc=proc)
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(base + "/healthz", timeout=10) as response:
            assert response.status == 200
        with urllib.request.urlopen(base + "/static/admin/css/base.css", timeout=10) as response:
            assert response.status == 200 and response.headers["Content-Type"].startswith("text/css")

        class Target:
            url = f"ws://127.0.0.1:{port}/api/ws"

        async with Session.open(Target) as s:
            events = await s.turn("!run pwd")
            complete = next(e for e in events if e["type"] == "message.complete")
            # The agent's commands start in the workspace, not among the code.
            assert str(workspace) in complete["payload"]["text"]
    finally:
        proc.terminate()
        proc.wait(15)


HTTPS_ONLY = {"security.W004", "security.W008", "security.W012", "security.W016"}


def test_check_deploy_passes_for_the_compose_settings_but_for_https(server_database_url, redis_url):
    """``manage.py check --deploy`` with the environment docker-compose.yml gives a gateway: only the
    items that need HTTPS (HSTS, SSL redirect, secure cookies) remain."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = {k: str(v) for k, v in compose["x-env"].items() if "${" not in str(v)}
    env.update(
        DJANGO_SECRET_KEY="a-long-random-secret-for-the-check-" + "x" * 40,
        DJANGO_DEBUG="0",
        ALLOWED_HOSTS="localhost,127.0.0.1",
        CSRF_TRUSTED_ORIGINS="http://localhost:8080",
        GATEWAY_ALLOW_ANONYMOUS="0",
        GATEWAY_WORKER_ID="gateway-1",
        DATABASE_URL=server_database_url,
        REDIS_URL=redis_url,
        PATH="/usr/bin:/bin",
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    found = set(re.findall(r"\((\w+\.[EW]\d+)\)", output))
    assert found and found <= HTTPS_ONLY, output  # the checks ran, and only the HTTPS ones remain
