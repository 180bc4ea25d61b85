"""Many idle client connections in one process, driven by the bench over stdin/stdout (one JSON a line).

    python bench/swarm.py --count 5000 URL [URL ...]    # connections spread round-robin over the URLs

Prints ``{"opened": n}`` once every connection got its ``gateway.ready``. Then reads commands:
``ping RATE`` sends one ``gateway.ping`` on every connection, RATE per second in all (without
waiting for answers), and prints ``{"answered": n, "failed": n, "ms": [sorted latencies],
"errors": [a few distinct reasons]}``;
``close`` closes everything and exits. The bench runs several of these when one process cannot
drive all the sockets it wants.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time

from client import Conn, close_many

WAVE = 50  # handshakes in flight at once


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def ping_one(conn: Conn, at: float) -> float | str:
    """Latency in ms, or why the ping failed."""
    await asyncio.sleep(max(0.0, at - time.perf_counter()))
    t0 = time.perf_counter()
    try:
        await conn.call("gateway.ping")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:200]
    return (time.perf_counter() - t0) * 1000


async def main(urls: list[str], count: int) -> None:
    raise_fd_limit()
    conns: list[Conn] = []
    failed = 0
    for start in range(0, count, WAVE):
        wave = await asyncio.gather(
            *(Conn.open(urls[(start + i) % len(urls)]) for i in range(min(WAVE, count - start))),
            return_exceptions=True,
        )
        conns += [c for c in wave if isinstance(c, Conn)]
        failed += sum(1 for c in wave if not isinstance(c, Conn))
    print(json.dumps({"opened": len(conns), "failed": failed}), flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not line or line[0] == "close":
            break
        if line[0] == "ping":
            rate = float(line[1])
            t0 = time.perf_counter()
            results = await asyncio.gather(*(ping_one(c, t0 + i / rate) for i, c in enumerate(conns)))
            ms = sorted(r for r in results if isinstance(r, float))
            errors = sorted({r for r in results if isinstance(r, str)})[:5]
            print(
                json.dumps(
                    {"answered": len(ms), "failed": len(results) - len(ms), "ms": ms, "errors": errors}
                ),
                flush=True,
            )
    await close_many(conns)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args()
    asyncio.run(main(args.urls, args.count))
