"""Django system checks of the gateway's configuration (``manage.py check``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .conf import gateway_settings
from .terminal.backends import BACKENDS, SandboxBackend

SQLITE_ENGINE = "django.db.backends.sqlite3"


@register(Tags.database)
def check_sqlite_settings(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """SQLite without immediate transactions (or WAL) fails concurrent writes with 'database is locked'.

    ws_gateway's own writes are safe either way (see :mod:`ws_gateway.writes`);
    these warnings are about the rest of the host project's writes."""
    return sqlite_warnings(settings.DATABASES, tuning=gateway_settings.SQLITE_TUNING)


def sqlite_warnings(databases: Mapping[str, Mapping[str, Any]], *, tuning: bool) -> list[Warning]:
    """W101 (no IMMEDIATE transactions) and W102 (no WAL, and the app does not set it) per SQLite alias."""
    warnings: list[Warning] = []
    for alias, db in databases.items():
        if db.get("ENGINE") != SQLITE_ENGINE:
            continue
        options = db.get("OPTIONS") or {}
        if str(options.get("transaction_mode") or "").upper() != "IMMEDIATE":
            warnings.append(
                Warning(
                    f"SQLite database '{alias}' begins transactions DEFERRED: under concurrent "
                    "sessions a transaction that reads and then writes fails with 'database is locked'.",
                    hint=f"Set DATABASES['{alias}']['OPTIONS']['transaction_mode'] = 'IMMEDIATE' "
                    "(and a 'timeout' of some seconds).",
                    id="ws_gateway.W101",
                )
            )
        wal = "journal_mode=wal" in str(options.get("init_command") or "").lower().replace(" ", "")
        if not wal and not tuning:
            warnings.append(
                Warning(
                    f"SQLite database '{alias}' does not use WAL: readers and the writer block each other.",
                    hint="Add 'PRAGMA journal_mode=WAL;' to "
                    f"DATABASES['{alias}']['OPTIONS']['init_command'], "
                    "or leave WS_GATEWAY['SQLITE_TUNING'] on.",
                    id="ws_gateway.W102",
                )
            )
    return warnings


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
