"""Print the coverage report of ws_gateway and enforce the floors on lines and on branches.

`coverage report --fail-under` checks one combined figure; the floors are separate: >= 95 %
of lines and >= 90 % of branches (issue 11), measured over the default, sandbox and browser
tiers, the daphne processes under test included. Run after `coverage combine`.
"""

from __future__ import annotations

import json
import subprocess
import sys

LINES, BRANCHES = 95.0, 90.0


def main() -> int:
    subprocess.run([sys.executable, "-m", "coverage", "report"], check=True)
    raw = subprocess.run(
        [sys.executable, "-m", "coverage", "json", "-q", "-o", "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    totals = json.loads(raw)["totals"]
    lines = 100.0 * totals["covered_lines"] / max(1, totals["num_statements"])
    branches = 100.0 * totals["covered_branches"] / max(1, totals["num_branches"])
    print(
        f"ws_gateway coverage: lines {lines:.1f} % (floor {LINES}),"
        f" branches {branches:.1f} % (floor {BRANCHES})"
    )
    return 0 if lines >= LINES and branches >= BRANCHES else 1


if __name__ == "__main__":
    sys.exit(main())
