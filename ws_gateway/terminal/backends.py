"""Terminal backends: how a command is started (``TERMINAL_BACKEND``).

Both give the same thing: a process running ``bash -c COMMAND`` in the
session's cwd, in a process group of its own (so a timeout or interrupt ends
everything it started), with the clean environment of :mod:`.env`, its stdout
and stderr merged into one pipe.

- ``local``: a child of the server, as the server's user.
- ``sandbox``: the same command under bubblewrap: a private mount namespace
  where only ``SANDBOX["ro_binds"]`` (system directories) are visible,
  read-only, plus the session's cwd (read-write), a private ``/tmp``, a
  minimal ``/dev`` and the sandbox's own ``/proc``; no network unless
  ``SANDBOX["network"]``; its own user namespace with an unprivileged uid, no
  capabilities, a new session (no terminal injection); killed with the server
  (``--die-with-parent``); resource limits set by ``prlimit`` before bwrap
  starts (CPU seconds, address space, processes, file size). The environment
  reaches bwrap through ``execve`` (never on its command line, where other
  users could read it).
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from ..conf import DEFAULTS, gateway_settings
from .env import DEFAULT_PATH, command_env

BASH = "/bin/bash"
_spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gw-spawn")


class BackendUnavailable(Exception):
    """The configured backend cannot run this command (sandbox missing, cwd refused, ...)."""


def _shell_argv(command: str) -> list[str]:
    # bash, not /bin/sh: the command policy reads the command with a bash grammar.
    if os.path.exists(BASH):
        return [BASH, "--noprofile", "--norc", "-c", command]
    return ["/bin/sh", "-c", command]


class Backend:
    """The local backend; the base of the others."""

    name = "local"
    auto_approve = False  # run commands without asking (the sandbox may)
    output_limit = 0  # bytes a command may print before it is killed; 0 = no limit

    def spawn(
        self, command: str, cwd: str, secrets: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``command``; stdout and stderr merged into ``stdout``, stdin closed."""
        popen = functools.partial(
            subprocess.Popen,
            self.argv(command, cwd),
            cwd=cwd,
            env=self.env(secrets),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        # Started from one long-lived thread: a "parent death" signal (bwrap --die-with-parent)
        # fires when the *thread* that forked the child ends, and a background process must
        # outlive the turn thread that asked for it (it still dies with the server).
        return cast("subprocess.Popen[bytes]", _spawner.submit(popen).result())

    def argv(self, command: str, cwd: str) -> list[str]:
        return _shell_argv(command)

    def env(self, secrets: Mapping[str, str] | None) -> dict[str, str]:
        return command_env(secrets)

    def explain(self, returncode: int) -> str | None:
        """A note for an exit caused by the backend's own limits (None: nothing to say)."""
        return None


def sandbox_options() -> dict[str, Any]:
    """``SANDBOX`` merged key by key over its defaults."""
    return {**DEFAULTS["SANDBOX"], **(gateway_settings.SANDBOX or {})}


class SandboxBackend(Backend):
    """Each command in a bubblewrap sandbox (see the module docstring)."""

    name = "sandbox"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or sandbox_options())
        self.auto_approve = bool(self.options["auto_approve"])
        self.output_limit = int(float(self.options["output_mb"]) * 1024 * 1024)

    def tools(self) -> tuple[str, str]:
        """The bwrap and prlimit binaries; :class:`BackendUnavailable` when one is missing."""
        bwrap = shutil.which(str(self.options["bwrap"]))
        if bwrap is None:
            raise BackendUnavailable(
                f"bubblewrap not found ({self.options['bwrap']!r}): "
                "install it (Debian: apt-get install bubblewrap)"
            )
        prlimit = shutil.which("prlimit")
        if prlimit is None:
            raise BackendUnavailable("prlimit not found (Debian package util-linux)")
        return bwrap, prlimit

    def check_cwd(self, cwd: str) -> str:
        """The real path of ``cwd``, refused when binding it read-write would expose the system."""
        real = os.path.realpath(cwd)
        if not os.path.isdir(real):
            raise BackendUnavailable(f"the session's cwd is not a directory: {cwd}")
        for system in ["/", "/tmp", "/dev", "/proc", "/sys", "/etc", *self.options["ro_binds"]]:
            system_real = os.path.realpath(system)
            if real == system_real or system_real.startswith(real.rstrip("/") + "/"):
                raise BackendUnavailable(f"the sandbox does not run commands with {cwd} as working directory")
        return real

    def argv(self, command: str, cwd: str) -> list[str]:
        bwrap, prlimit = self.tools()
        cwd = self.check_cwd(cwd)
        opts = self.options
        cpu = int(opts["cpu_s"])
        mb = 1024 * 1024
        limits = [
            prlimit,
            # SIGXCPU at the soft limit (reported), SIGKILL a second later.
            f"--cpu={cpu}:{cpu + 1}",
            f"--as={int(opts['memory_mb']) * mb}",
            f"--nproc={int(opts['nproc'])}",
            f"--fsize={int(opts['file_mb']) * mb}",
            "--",
        ]
        args = [bwrap]
        for path in opts["ro_binds"]:
            if os.path.islink(path) and not os.readlink(path).startswith(("/", "..")):
                args += ["--symlink", os.readlink(path), path]  # /bin -> usr/bin
            else:
                args += ["--ro-bind-try", path, path]
        args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--bind", cwd, cwd, "--chdir", cwd]
        args += ["--unshare-all", "--unshare-user"]
        if opts["network"]:
            args.append("--share-net")
        args += [
            "--uid", str(int(opts["uid"])), "--gid", str(int(opts["gid"])), "--hostname", "sandbox",
            "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--",
        ]  # fmt: skip
        return [*limits, *args, *_shell_argv(command)]

    def env(self, secrets: Mapping[str, str] | None) -> dict[str, str]:
        base = {"PATH": DEFAULT_PATH, "HOME": "/tmp", "TMPDIR": "/tmp", "SHELL": BASH, "USER": "nobody"}
        base["LOGNAME"] = base["USER"]
        return command_env(secrets, base)

    def explain(self, returncode: int) -> str | None:
        # bash execs the last command: a signal shows as -N, or as 128+N when bwrap reports it.
        signals = {-returncode, returncode - 128}
        if signal.SIGXCPU in signals:
            return f"CPU time limit reached ({self.options['cpu_s']} s)"
        if signal.SIGXFSZ in signals:
            return f"file size limit reached ({self.options['file_mb']} MB)"
        return None

    def probe(self) -> str | None:
        """Run ``true`` in a sandbox; None when it works, else why not."""
        try:
            with tempfile.TemporaryDirectory(prefix="ws-gateway-probe-") as tmp:
                done = subprocess.run(
                    self.argv("true", tmp),
                    env=self.env(None),
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=30,
                )
        except BackendUnavailable as exc:
            return str(exc)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"cannot start the sandbox: {exc}"
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).decode(errors="replace").strip()
            return f"bwrap cannot create the sandbox (exit {done.returncode}): {detail or 'no message'}"
        return None


BACKENDS: dict[str, type[Backend]] = {"local": Backend, "sandbox": SandboxBackend}


def backend() -> Backend:
    """The configured backend (``TERMINAL_BACKEND``)."""
    name = gateway_settings.TERMINAL_BACKEND
    cls = BACKENDS.get(name)
    if cls is None:
        raise BackendUnavailable(f"unknown TERMINAL_BACKEND {name!r} (choose one of {', '.join(BACKENDS)})")
    return cls()
