"""The app in a host project it does not control: a stock ``startproject`` with its default SQLite.

The project's ``DATABASES`` stays exactly as ``startproject`` writes it (a plain
sqlite3 file, no OPTIONS): the app must make its own writes safe under
concurrent sessions.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Session
from tests.services import ROOT, Gateway, server_env, wait_port
from ws_gateway.testing import GatewayClient

SESSIONS = 20
TURNS = 5

# What a host project adds to a stock startproject settings.py to mount the app.
SETTINGS_TAIL = """
INSTALLED_APPS = ["daphne", *INSTALLED_APPS, "channels", "ws_gateway"]
ASGI_APPLICATION = "hostproj.asgi.application"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
"""

ASGI = """
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hostproj.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from ws_gateway.auth import GatewayAuthMiddleware  # noqa: E402
from ws_gateway.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {"http": django_asgi_app, "websocket": GatewayAuthMiddleware(URLRouter(websocket_urlpatterns))}
)
"""


class HostGateway(Gateway):
    """daphne serving the host project from its own directory."""

    def __init__(self, project: Path, env: dict[str, str], logdir: Path) -> None:
        self.project = project
        super().__init__(env, logdir, "hostproj")

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "hostproj.asgi:application",
                ],
                cwd=self.project,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_port(self.port, proc=self.proc)


@pytest.fixture
def host_project(tmp_path: Path, logdir: Path) -> Iterator[tuple[HostGateway, Path]]:
    project = tmp_path / "site"
    project.mkdir()
    env = server_env("", None)
    for name in ("DATABASE_URL", "GATEWAY_SETTINGS"):
        env.pop(name, None)
    env["DJANGO_SETTINGS_MODULE"] = "hostproj.settings"
    env["PYTHONPATH"] = f"{project}:{ROOT}"
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "hostproj", str(project)], env=env, check=True
    )
    settings = project / "hostproj" / "settings.py"
    stock = settings.read_text()
    assert "'ENGINE': 'django.db.backends.sqlite3'" in stock and "OPTIONS" not in stock.split("DATABASES")[1]
    settings.write_text(stock + SETTINGS_TAIL)
    (project / "hostproj" / "asgi.py").write_text(ASGI)
    migrated = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    # The system check recommends immediate transactions for this stock configuration.
    assert "ws_gateway.W101" in migrated.stderr
    gateway = HostGateway(project, env, logdir)
    yield gateway, project / "db.sqlite3"
    gateway.stop()


def transcript(database: Path, key: str) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as conn:
        return conn.execute(
            "SELECT role, text FROM ws_gateway_transcriptmessage WHERE session_id = ? ORDER BY ordinal",
            (key,),
        ).fetchall()


def titles(database: Path) -> dict[str, str]:
    with sqlite3.connect(database) as conn:
        return dict(conn.execute("SELECT id, title FROM ws_gateway_storedsession").fetchall())


async def test_concurrent_sessions_on_a_stock_sqlite_lose_nothing(host_project):
    gateway, database = host_project
    expected: dict[str, list[tuple[str, str]]] = {}
    named: dict[str, str] = {}

    async def user(n: int) -> None:
        async with Session.open(gateway) as session:
            rows = []
            for turn in range(TURNS):
                # Every other turn also stores a title (a write outside the transcript).
                text = f"user {n} turn {turn}" + (f"\n!title s{n} t{turn}" if turn % 2 else "")
                events = await session.turn(text)
                complete = next(e for e in events if e["type"] == "message.complete")["payload"]
                assert complete["status"] == "complete", complete
                assert complete["text"] == f"You said: user {n} turn {turn}"
                rows += [("user", text), ("assistant", complete["text"])]
            expected[session.key] = rows
            named[session.key] = f"s{n} t{max(t for t in range(TURNS) if t % 2)}"

    async with GatewayClient.connect(gateway.url) as probe:
        assert await probe.call("gateway.ping") == {"ok": True}
    await asyncio.gather(*(user(n) for n in range(SESSIONS)))

    assert len(expected) == SESSIONS
    for key, rows in expected.items():
        assert transcript(database, key) == rows
    stored_titles = titles(database)
    assert {key: stored_titles[key] for key in named} == named
    assert "database is locked" not in gateway.log_text()
    with sqlite3.connect(database) as conn:  # the app switched the host's file to WAL
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
