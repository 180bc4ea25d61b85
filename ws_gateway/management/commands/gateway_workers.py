"""``manage.py gateway_workers``: run N daphne workers on consecutive ports, as plain processes.

The same topology as docker-compose (one Redis, one database, N gateway
processes, any of which can serve any socket) without Docker:

    REDIS_URL=redis://127.0.0.1:6379/0 python manage.py gateway_workers --workers 3 --port 8001

Prints one line per worker (``worker NAME pid PID port PORT``), forwards
SIGTERM/SIGINT to every worker (each drains gracefully) and exits when they
have all stopped. Put any round-robin proxy in front (see deploy/nginx.conf).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run N daphne gateway workers on consecutive ports (plain processes, no Docker)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--workers", type=int, default=3)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001, help="port of the first worker")
        parser.add_argument("--migrate", action="store_true", help="apply migrations first")

    def handle(self, *args: Any, workers: int, host: str, port: int, migrate: bool, **options: Any) -> None:
        if workers < 1:
            raise SystemExit("--workers must be at least 1")
        if migrate:
            call_command("migrate", interactive=False, verbosity=0)
        app = settings.ASGI_APPLICATION.rsplit(".", 1)
        target = f"{app[0]}:{app[1]}"
        procs: list[subprocess.Popen] = []
        for i in range(workers):
            name = f"worker-{i + 1}"
            env = {**os.environ, "GATEWAY_WORKER_ID": name}
            cmd = [sys.executable, "-m", "daphne", "-b", host, "-p", str(port + i), target]
            # Workers log to stderr; stdout carries only this command's lines.
            proc = subprocess.Popen(cmd, env=env, stdout=sys.stderr.fileno())
            procs.append(proc)
            self.stdout.write(f"worker {name} pid {proc.pid} port {port + i}")
        self.stdout.flush()

        def forward(signum: int, frame: Any) -> None:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        while any(proc.poll() is None for proc in procs):
            time.sleep(0.2)
        codes = [proc.returncode for proc in procs]
        self.stdout.write(f"workers stopped: exit codes {codes}")
