"""Benchmark of ws_gateway against a bare ``websockets`` server, side by side, in one run.

    python bench/run.py                              # gateway (daphne, memory) vs bare; cluster (~1.5 min)
    python bench/run.py --quick                      # shorter runs (~40 s)
    python bench/run.py --only turns                 # 50 concurrent turns, gateway vs bare
    python bench/run.py --only cross --redis-layer both   # cross-process streams, pubsub vs core
    python bench/run.py --server both --layer both   # daphne and uvicorn, memory and Redis (~3-4 min)
    python bench/run.py --help                       # every flag

See bench/README.md for what every figure means. Every server process is
started on a free loopback port and stopped at the end, also on errors and
Ctrl-C. Exit status: 0 when every stream was exact and no workload failed
(goals not met are reported, not an error), 1 otherwise, 130 on Ctrl-C.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent

try:  # Re-run inside the project's venv when started with another interpreter.
    import django  # noqa: F401
    import websockets  # noqa: F401
except ImportError:
    venv = ROOT / ".venv"
    if (venv / "bin" / "python").exists() and Path(sys.prefix).resolve() != venv.resolve():
        os.execv(str(venv / "bin" / "python"), [str(venv / "bin" / "python"), *sys.argv])
    raise

sys.path[:0] = [str(ROOT), str(BENCH)]

if __name__ == "__main__":
    if sys.argv[1:2] == ["detail"]:  # the side-by-side tables of harness.py (streams, round trips, turns, cross)
        from harness import main

        sys.exit(main(sys.argv[2:]))
    from goals import main

    sys.exit(main())
