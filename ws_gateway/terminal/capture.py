"""Run a foreground command to its end: drain its output while it runs, keep head and tail, kill its group.

The pipe is read on a thread of its own from the first byte, so a command that
prints megabytes never blocks on a full pipe. Only the first and last
``cap`` characters are kept, with a marker saying how much was left out
between them. On timeout, interrupt or the backend's output limit the whole
process group is killed; it is also killed when the command ends, so nothing a
foreground command started in the background outlives it (holding the pipe).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO

from .backends import Backend

POLL_S = 0.02
READ_BYTES = 65536
DRAIN_WAIT_S = 5.0


@dataclass
class CommandResult:
    exit_code: int
    output: str
    interrupted: bool = False
    timed_out: bool = False

    def first_line(self) -> str:
        return next((line for line in self.output.splitlines() if line.strip()), "")


class Capture:
    """Reads a pipe to its end on a daemon thread, keeping its first and last ``keep`` bytes."""

    def __init__(self, stream: IO[bytes], keep: int, limit: int = 0) -> None:
        self.stream = stream
        self.keep = max(1, keep)
        self.limit = limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.over_limit = threading.Event()
        self._thread = threading.Thread(target=self._read, name="gw-cmd-output", daemon=True)

    def start(self) -> Capture:
        self._thread.start()
        return self

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _read(self) -> None:
        fd = self.stream.fileno()
        while True:
            try:
                chunk = os.read(fd, READ_BYTES)
            except OSError:
                break
            if not chunk:
                break
            self.total += len(chunk)
            room = self.keep - len(self.head)
            if room > 0:
                self.head += chunk[:room]
            self.tail += chunk
            if len(self.tail) > 2 * self.keep:
                del self.tail[: len(self.tail) - self.keep]
            if self.limit and self.total > self.limit:
                self.over_limit.set()
        with contextlib.suppress(OSError):
            self.stream.close()

    def text(self, cap: int) -> str:
        """The output, or its first and last ``cap // 2`` characters around a marker."""
        if self.total <= len(self.head):
            whole = self.head.decode(errors="replace")
            if len(whole) <= cap:
                return whole
            head_text, tail_text = whole, whole
        else:
            head_text = self.head.decode(errors="replace")
            tail_text = self.tail[-self.keep :].decode(errors="replace")
        half = cap // 2
        head_text = head_text[:half]
        tail_text = tail_text[len(tail_text) - (cap - half) :] if cap - half else ""
        omitted = self.total - len(head_text.encode()) - len(tail_text.encode())
        gap = "" if head_text.endswith("\n") else "\n"
        return f"{head_text}{gap}[... {max(omitted, 0)} bytes of output omitted ...]\n{tail_text}"


def run(
    backend: Backend,
    command: str,
    cwd: str,
    secrets: Mapping[str, str] | None,
    timeout_s: float,
    cap: int,
    interrupted: Callable[[float], bool],
) -> CommandResult:
    """Run ``command`` to its end; ``interrupted(seconds)`` waits and says whether to stop."""
    proc = backend.spawn(command, cwd, secrets)
    assert proc.stdout is not None
    capture = Capture(proc.stdout, keep=cap * 4, limit=backend.output_limit).start()
    deadline = time.monotonic() + timeout_s
    stopped = None
    while not _exited(proc):
        if interrupted(POLL_S):
            stopped = "interrupted"
            break
        if time.monotonic() > deadline:
            stopped = f"timed out after {timeout_s:g} s: killed"
            break
        if capture.over_limit.is_set():
            stopped = f"printed more than {backend.output_limit} bytes: killed"
            break
    kill_group(proc)
    code = proc.wait()
    capture.join(DRAIN_WAIT_S)
    notes = [note for note in (stopped, backend.explain(code)) if note]
    text = capture.text(cap)
    if notes:
        text = f"{text}{'' if not text or text.endswith(chr(10)) else chr(10)}[{'; '.join(notes)}]"
    return CommandResult(
        code, text, interrupted=stopped == "interrupted", timed_out=bool(stopped and "timed" in stopped)
    )


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """Has the child ended? Not reaped yet (WNOWAIT), so its process group id cannot be reused."""
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's whole process group (it is the leader: ``start_new_session``)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
