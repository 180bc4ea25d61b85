"""Benchmark of ws_gateway: issue 15's figures beside their goals, in one run (see bench/README.md).

    python bench/run.py                    # every row, one table: figure | measured | goal | met? (~7 min)
    python bench/run.py --quick            # fewer rounds, smaller sizes (under 2 minutes)
    python bench/run.py --only first       # one group of rows: ref rpc first connect pg idle cluster
    python bench/run.py detail [...]       # the side-by-side tables of harness.py (streams, round trips,
                                           # turns, cross-process) against the bare websockets server
    python bench/run.py --help             # every flag (detail --help: the detail flags)

Every server process is started on a free loopback port and stopped at the end, also on errors and
Ctrl-C. Exit status: 0 when every stream was exact with no lost event and no row failed (a goal not
met is reported, not an error), 1 otherwise, 130 on Ctrl-C.
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
    if sys.argv[1:2] == ["detail"]:  # harness.py: side-by-side tables (streams, round trips, turns)
        from harness import main

        sys.exit(main(sys.argv[2:]))
    from goals import main

    sys.exit(main())
