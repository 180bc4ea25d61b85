"""Django system checks of the gateway's configuration (``manage.py check``)."""

from __future__ import annotations

import os
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .conf import gateway_settings
from .terminal.backends import BACKENDS, SandboxBackend


@register(Tags.security)
def terminal_backend_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The chosen terminal backend can run commands: with ``sandbox``, bwrap creates a sandbox here."""
    name = gateway_settings.TERMINAL_BACKEND
    if name not in BACKENDS:
        return [
            Error(
                f"WS_GATEWAY['TERMINAL_BACKEND'] is {name!r}",
                hint=f"Choose one of: {', '.join(BACKENDS)}.",
                id="ws_gateway.E001",
            )
        ]
    if name != "sandbox":
        return []
    sandbox = SandboxBackend()
    problem = sandbox.probe()
    if problem is not None:
        return [
            Error(
                f"The sandbox terminal backend cannot run commands: {problem}",
                hint=(
                    "Install bubblewrap (Debian: apt-get install bubblewrap) and allow user namespaces "
                    "(sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0; in a "
                    "container, a seccomp profile that permits clone(CLONE_NEWUSER)), or set "
                    "TERMINAL_BACKEND to 'local'."
                ),
                id="ws_gateway.E002",
            )
        ]
    if os.geteuid() == 0:
        return [
            Warning(
                "The gateway runs as root: the kernel does not enforce SANDBOX['nproc'] (RLIMIT_NPROC) for "
                "root, so a sandboxed command may start any number of processes.",
                hint="Run the gateway as an unprivileged user.",
                id="ws_gateway.W001",
            )
        ]
    return []
