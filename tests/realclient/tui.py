"""Drive the real terminal UI like a person: a private tmux server, keys in, screen out.

Each client runs in its own tmux server (``-S`` socket in a private temporary directory) so
nothing touches anyone's tmux. ``pipe-pane`` copies every byte the client writes to a log: the
UI is a full-screen app that scrolls its own transcript, so the log, not tmux's history, is
where a line that scrolled away can still be found.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# What the client prints for a failure: `sys("error: ...")` in the transcript, the same text in
# picker overlays, and "invalid response: METHOD" when a result has the wrong shape.
ERROR_LINE = re.compile(r"error: [^\n]{0,120}")
ANSI = re.compile(r"\x1b(?:\[([0-?]*)[ -/]*([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


GAP = "\x00"


def _plain(match: re.Match[str]) -> str:
    """Text for an escape sequence: cursor-forward is a gap of as many cells (spaces, or cells the
    client left as they were), other cursor moves end the line."""
    params, final = match.group(1), match.group(2)
    if final == "C":
        return GAP * (int(params) if params and params.isdigit() else 1)
    return "\n" if final and final in "ABEFGHdf" else ""


TMUX_CONF = "set -g remain-on-exit on\nset -g status off\nset -g history-limit 10000\n"


class Tui:
    """One ``node entry.js`` in a tmux pane of ``cols`` x ``rows``."""

    def __init__(
        self,
        entry: Path,
        gateway_url: str,
        workdir: Path,
        name: str = "tui",
        cols: int = 120,
        rows: int = 40,
    ) -> None:
        self.name = name
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        home = workdir / "home"
        home.mkdir(exist_ok=True)
        # A unix socket path must stay short (108 bytes): not under a deep pytest directory.
        self._socket_dir = Path(tempfile.mkdtemp(prefix="rc-tmux-"))
        self.socket = self._socket_dir / "sock"
        self.output_log = workdir / "output.log"
        conf = workdir / "tmux.conf"
        conf.write_text(TMUX_CONF)
        # A clean environment: no hermes config, no inherited TMUX/TERM quirks.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "HERMES_HOME": str(home / ".hermes"),
            "TERM": "xterm-256color",
            "LANG": "C.UTF-8",
            "HERMES_TUI_GATEWAY_URL": gateway_url,
        }
        command = shlex.join(["env", "-i", *(f"{k}={v}" for k, v in env.items()), "node", str(entry)])
        self._tmux(
            "-f",
            str(conf),
            "new-session",
            "-d",
            "-x",
            str(cols),
            "-y",
            str(rows),
            "-s",
            name,
            "-c",
            str(workdir),
            f"exec {command}",
        )
        self._tmux("pipe-pane", "-t", name, "-o", f"cat >> {shlex.quote(str(self.output_log))}")
        self.pid = int(self._tmux("display-message", "-p", "-t", name, "#{pane_pid}").strip())

    def _tmux(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-S", str(self.socket), *args], capture_output=True, text=True, timeout=10
        )
        if result.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args[:2])}: {result.stderr.strip()}")
        return result.stdout

    # -- reading -------------------------------------------------------------------------------

    def screen(self) -> str:
        """The visible screen as text."""
        return self._tmux("capture-pane", "-p", "-t", self.name)

    def output(self) -> str:
        """Everything the client has written, escape sequences removed."""
        try:
            raw = self.output_log.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""
        return ANSI.sub(_plain, raw)

    def error_lines(self) -> list[str]:
        """Distinct ``error: ...`` texts the client has shown so far, on screen or scrolled away.

        From the output log a line may have gaps (cursor moved forward over spaces, or over cells
        that did not change); such a line is reported (gaps as spaces) unless it is a gapped copy
        of a complete one.
        """
        whole: list[str] = []
        gapped: list[str] = []
        for text in (self.screen(), self.output()):
            for match in ERROR_LINE.finditer(text):
                line = re.split(r"\s{2,}|[│║┃]|\x00{2,}", match.group(0))[0].strip().strip(GAP)
                (gapped if GAP in line else whole).append(line)
        seen = list(dict.fromkeys(whole))
        for line in dict.fromkeys(gapped):
            pattern = re.compile(".".join(re.escape(part) for part in line.split(GAP)))
            plain = line.replace(GAP, " ")
            if not any(pattern.fullmatch(full) for full in seen):
                seen.append(plain)
        return list(dict.fromkeys(" ".join(line.split()) for line in seen))

    def composer(self) -> str | None:
        """The input line's text, or None while an overlay (picker, prompt, pager) replaces it.

        The prompt is ``>``, or ``$`` once the line starts with ``!`` (the shell escape)."""
        lines = [line for line in self.screen().splitlines() if line.strip()]
        last = lines[-1].strip() if lines else ""
        return last[1:].strip() if last[:1] in (">", "$") else None

    def idle_prompt(self) -> bool:
        """The composer is shown: no overlay is open."""
        return self.composer() is not None

    def close_overlays(self, timeout: float = 10.0) -> None:
        """Press Escape until the composer is back (an overlay may need one Escape per level)."""
        for _ in range(4):
            if self.idle_prompt():
                return
            self.keys("Escape")
            try:
                self.wait(self.idle_prompt, timeout / 4, "the composer back")
            except AssertionError:
                continue
        self.wait(self.idle_prompt, 0, "the composer back after Escape")

    def alive(self) -> bool:
        return self._tmux("display-message", "-p", "-t", self.name, "#{pane_dead}").strip() == "0"

    def wait_screen(self, pattern: str | re.Pattern[str], timeout: float = 15.0) -> re.Match[str]:
        """Wait until the screen matches ``pattern`` (a regex); fail with the screen."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        return self.wait(lambda: regex.search(self.screen()), timeout, f"screen /{regex.pattern}/")

    def wait(self, predicate: Callable[[], object], timeout: float, what: str) -> object:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if not self.alive():
                raise AssertionError(f"{self.name}: the client exited waiting for {what}\n{self.screen()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: {what} not seen in {timeout}s; screen:\n{self.screen()}")
            time.sleep(0.1)

    # -- typing --------------------------------------------------------------------------------

    def keys(self, *keys: str) -> None:
        """tmux key names (``Enter``, ``Escape``, ``Down``, ``C-x``, ``y``...)."""
        self._tmux("send-keys", "-t", self.name, *keys)

    def type(self, text: str, timeout: float = 10.0) -> None:
        """Type ``text`` into the composer and wait until it shows there."""
        self._tmux("send-keys", "-t", self.name, "-l", text)
        self.wait(lambda: text.strip() in (self.composer() or ""), timeout, f"composer text {text!r}")

    def submit(self, text: str, timeout: float = 10.0) -> None:
        """Type ``text`` and press Enter; wait until the composer has taken it."""
        self.type(text, timeout)
        self.keys("Enter")
        self.wait(lambda: text.strip() not in (self.composer() or ""), timeout, f"composer to take {text!r}")

    def resize(self, cols: int, rows: int) -> None:
        self._tmux("resize-window", "-t", self.name, "-x", str(cols), "-y", str(rows))

    # -- ending --------------------------------------------------------------------------------

    def close(self) -> None:
        """End the client (node may outlive its tmux server, so signal it by pid) and tmux."""
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _running(self.pid):
                time.sleep(0.05)
            if not _running(self.pid):
                break
        subprocess.run(["tmux", "-S", str(self.socket), "kill-server"], capture_output=True, timeout=10)
        shutil.rmtree(self._socket_dir, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by tmux) counts as ended.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
