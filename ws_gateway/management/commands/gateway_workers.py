"""``manage.py gateway_workers``: run N daphne workers on consecutive ports, as plain processes.

The same topology as docker-compose (one Redis, one database, N gateway
processes, any of which can serve any socket) without Docker:

    REDIS_URL=redis://127.0.0.1:6379/0 python manage.py gateway_workers --workers 3 --port 8001

Prints one line per worker start (``worker NAME pid PID port PORT``, again with
the new pid when a worker is restarted). A worker that dies (a crash, ``kill
-9``; anything but a clean exit) is restarted on its port after a backoff that
doubles while it keeps dying within 10 s of starting (``--restart-backoff`` up to
``--restart-backoff-max`` seconds). SIGTERM/SIGINT go to every worker (each
drains gracefully); then nothing is restarted and the command exits when they
have all stopped. Put any round-robin proxy in front (see deploy/nginx.conf).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from ...checks import in_memory_workers_warnings
from ...conf import gateway_settings

log = logging.getLogger(__name__)

POLL_S = 0.1
# A worker that ran this long before dying was healthy: its next restart starts from the first backoff.
STABLE_S = 10.0


@dataclass
class Worker:
    """One daphne process slot: its name, port, current process and restart state."""

    name: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = 0.0
    restart_at: float | None = None
    terminated: bool = False

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The worker's process (started before anyone asks)."""
        assert self.proc is not None
        return self.proc

    def terminate(self) -> None:
        """Ask the running process to drain and stop (once)."""
        if not self.terminated and self.process.poll() is None:
            self.terminated = True
            self.process.send_signal(signal.SIGTERM)


class Command(BaseCommand):
    help = "Run N daphne gateway workers on consecutive ports (plain processes, no Docker)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--workers", type=int, default=3)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001, help="port of the first worker")
        parser.add_argument("--migrate", action="store_true", help="apply migrations first")
        parser.add_argument(
            "--proxy-headers",
            action="store_true",
            default=None,
            help="client address and scheme from X-Forwarded-For/-Proto (default: WS_GATEWAY PROXY_HEADERS)",
        )
        parser.add_argument(
            "--restart-backoff", type=float, default=0.5, help="seconds before restarting a dead worker"
        )
        parser.add_argument(
            "--restart-backoff-max", type=float, default=30.0, help="cap of the doubling restart backoff"
        )

    def handle(
        self,
        *args: Any,
        workers: int,
        host: str,
        port: int,
        migrate: bool,
        proxy_headers: bool | None,
        restart_backoff: float,
        restart_backoff_max: float,
        **options: Any,
    ) -> None:
        if workers < 1:
            raise SystemExit("--workers must be at least 1")
        for warning in in_memory_workers_warnings(workers):
            self.stderr.write(f"{warning.id}: {warning.msg}\nHINT: {warning.hint}")
        if migrate:
            call_command("migrate", interactive=False, verbosity=0)
        if not gateway_settings.DRAIN_ON_SIGTERM:
            # The workers stop on SIGTERM at once (turns cut, sockets dropped) unless the host opts in.
            self.stderr.write("note: WS_GATEWAY['DRAIN_ON_SIGTERM'] is off: workers will not drain on stop")
        app = settings.ASGI_APPLICATION.rsplit(".", 1)
        self.target = f"{app[0]}:{app[1]}"
        self.host = host
        self.proxy_headers = gateway_settings.PROXY_HEADERS if proxy_headers is None else proxy_headers
        slots = [Worker(f"worker-{i + 1}", port + i) for i in range(workers)]
        for slot in slots:
            self._start(slot)
        stopping = False

        def forward(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True
            for slot in slots:
                slot.terminate()

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        while True:
            if stopping:
                for slot in slots:  # also one restarted while the signal arrived
                    slot.terminate()
                if all(slot.process.poll() is not None for slot in slots):
                    break
            else:
                for slot in slots:
                    self._supervise(slot, restart_backoff, restart_backoff_max)
            time.sleep(POLL_S)
        codes = [slot.process.returncode for slot in slots]
        self.stdout.write(f"workers stopped: exit codes {codes}")

    def _start(self, slot: Worker) -> None:
        env = {**os.environ, "GATEWAY_WORKER_ID": slot.name}
        cmd = [sys.executable, "-m", "daphne", "-b", self.host, "-p", str(slot.port)]
        if self.proxy_headers:
            cmd.append("--proxy-headers")
        cmd.append(self.target)
        # Workers log to stderr; stdout carries only this command's lines.
        slot.proc = subprocess.Popen(cmd, env=env, stdout=sys.stderr.fileno())
        slot.started = time.monotonic()
        slot.restart_at = None
        slot.terminated = False
        self.stdout.write(f"worker {slot.name} pid {slot.process.pid} port {slot.port}")
        self.stdout.flush()

    def _supervise(self, slot: Worker, first_backoff: float, max_backoff: float) -> None:
        """Restart ``slot``'s worker when it has died and its backoff has passed."""
        code = slot.process.poll()
        if code is None or code == 0:  # running, or stopped on purpose (a clean drain)
            return
        now = time.monotonic()
        if slot.restart_at is None:
            ran = now - slot.started
            slot.backoff = next_backoff(slot.backoff, ran, first_backoff, max_backoff)
            slot.restart_at = now + slot.backoff
            log.warning(
                "worker %s (pid %d, port %d) died with %s after %.1fs; restarting in %.1fs",
                slot.name,
                slot.process.pid,
                slot.port,
                _exit_status(code),
                ran,
                slot.backoff,
            )
        elif now >= slot.restart_at:
            self._start(slot)
            log.warning("worker %s restarted (pid %d, port %d)", slot.name, slot.process.pid, slot.port)


def next_backoff(previous: float, ran: float, first: float, cap: float) -> float:
    """Seconds before restarting a worker that died after running ``ran`` seconds.

    ``first`` after a healthy run (``STABLE_S`` or more), else double the previous one, up to ``cap``."""
    if ran >= STABLE_S:
        return first
    return min(max(previous * 2, first), cap)


def _exit_status(code: int) -> str:
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"
