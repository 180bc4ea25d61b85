"""Background processes started by the terminal tool (PROTOCOL.md section 9).

Each process runs with the configured terminal backend (local or sandbox) and
the clean command environment, in its own process group, registered under the
session that started it. A reader thread streams its output as ``agent.terminal.output``
events and keeps the tail; ``terminal.close`` follows its exit. Closing or
reclaiming a session kills its processes, so nothing is left orphaned.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import ids, terminal
from .conf import gateway_settings
from .events.outbox import emit
from .sessions.live import LiveSession

log = logging.getLogger(__name__)

KILL_WAIT_S = 3.0


@dataclass(eq=False)
class Process:
    id: str
    session: LiveSession
    command: str
    cwd: str
    popen: subprocess.Popen[bytes]
    started_at: float = field(default_factory=time.time)
    output_limit: int = 0  # bytes; more kills it (the sandbox's output_mb)
    tail: str = ""
    exit_code: int | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    @property
    def running(self) -> bool:
        return self.exit_code is None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "process_id": self.id,
            "command": self.command,
            "cwd": self.cwd,
            "pid": self.popen.pid,
            "started_at": self.started_at,
            "uptime_seconds": round(time.time() - self.started_at, 3),
            "status": "running" if self.running else "exited",
            "output_preview": self.tail[-200:],
            "output_tail": self.tail,
        }
        if not self.running:
            out["exit_code"] = self.exit_code
        return out


class ProcessRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: dict[str, Process] = {}

    def start(self, session: LiveSession, command: str, secrets: Mapping[str, str] | None = None) -> Process:
        """Start ``command`` with the configured backend and the clean environment (plus ``secrets``)."""
        runner = terminal.backend()
        cwd = session.cwd or os.getcwd()
        popen = runner.spawn(command, cwd, dict(secrets or {}))
        proc_id = f"proc_{ids.request_id()}"
        proc = Process(proc_id, session, command, cwd, popen, output_limit=runner.output_limit)
        with self._lock:
            self._procs[proc.id] = proc
        threading.Thread(target=self._read, args=(proc,), name=f"gw-proc-{proc.id}", daemon=True).start()
        log.info("process started session=%s process_id=%s pid=%s", session.id, proc.id, popen.pid)
        emit(session.id, "status.update", {"kind": "process", "text": f"started {proc.id}: {command}"})
        return proc

    def _read(self, proc: Process) -> None:
        cap = gateway_settings.PROCESS_TAIL_CHARS
        stream = proc.popen.stdout
        total = 0
        over_limit = False
        while stream is not None:
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                break
            total += len(chunk)
            text = chunk.decode(errors="replace")
            if proc.output_limit and total > proc.output_limit and not over_limit:
                over_limit = True
                # The backend's output limit: end the whole group, say why in the output.
                text += f"\n[printed more than {proc.output_limit} bytes: killed]\n"
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
            proc.tail = (proc.tail + text)[-cap:]
            emit(proc.session.id, "agent.terminal.output", {"process_id": proc.id, "chunk": text})
        proc.exit_code = proc.popen.wait()
        proc.finished.set()
        emit(proc.session.id, "terminal.close", {"process_id": proc.id, "exit_code": proc.exit_code})
        emit(
            proc.session.id,
            "status.update",
            {"kind": "process", "text": f"{proc.id} exited with {proc.exit_code}"},
        )

    def get(self, process_id: str) -> Process | None:
        return self._procs.get(process_id)

    def of_session(self, session: LiveSession) -> list[Process]:
        with self._lock:
            return [p for p in self._procs.values() if p.session is session]

    def running(self, session: LiveSession) -> bool:
        return any(p.running for p in self.of_session(session))

    def kill(self, proc: Process) -> str:
        """Kill a process group; ``killed`` or ``already_exited``."""
        if not proc.running:
            return "already_exited"
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, sig)
            if proc.finished.wait(KILL_WAIT_S):
                break
        return "killed"

    def kill_session(self, session: LiveSession) -> int:
        """Kill every running process of a session and forget them all."""
        procs = self.of_session(session)
        killed = sum(1 for p in procs if p.running and self.kill(p) == "killed")
        with self._lock:
            for p in procs:
                self._procs.pop(p.id, None)
        return killed


processes = ProcessRegistry()


def stop_session_work(sender: Any, live: LiveSession, **kwargs: Any) -> None:
    """``session_stopping``: kill the session's background processes."""
    processes.kill_session(live)
