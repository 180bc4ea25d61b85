"""The reference peer: hermes-agent 0.19.0's own gateway, in a virtualenv the bench creates and caches.

The virtualenv lives outside the repository (``~/.cache/ws-gateway-bench/refvenv`` unless
``--ref-venv`` says otherwise) and is built once with ``pip install hermes-agent==0.19.0 uvicorn``.
``bench/ref_server.py`` runs inside it; nothing of hermes-agent is imported by the bench itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from procs import BENCH, free_port, stop_process, wait_port

REF_VERSION = "0.19.0"
DEFAULT_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ws-gateway-bench" / "refvenv"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path, say: Callable[[str], None]) -> Path:
    """The reference virtualenv's interpreter, creating the virtualenv first when it is missing."""
    python = venv_python(venv)
    probe = [str(python), "-c", "import tui_gateway.ws, uvicorn, starlette"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    tmp = venv.with_name(venv.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    say(f"creating the reference virtualenv {venv} (pip install hermes-agent=={REF_VERSION} uvicorn; once)")
    subprocess.run([sys.executable, "-m", "venv", str(tmp)], check=True)
    subprocess.run(
        [str(venv_python(tmp)), "-m", "pip", "install", "-q", f"hermes-agent=={REF_VERSION}", "uvicorn"],
        check=True,
    )
    shutil.rmtree(venv, ignore_errors=True)
    tmp.rename(venv)  # bin/python is a symlink and pyvenv.cfg is found beside it: the move is safe
    return python


class RefServer:
    """``bench/ref_server.py`` under the reference virtualenv, with a scratch ``HERMES_HOME``."""

    def __init__(self, python: Path, workdir: Path) -> None:
        self.port = free_port()
        home = workdir / "hermes-home"
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "HERMES_"))}
        env.update(HERMES_HOME=str(home), PYTHONUNBUFFERED="1")
        self.log_path = workdir / f"reference-{self.port}.log"
        argv = [str(python), str(BENCH / "ref_server.py"), "--port", str(self.port)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port, timeout=120, proc=self.proc)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/ws"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.proc)
