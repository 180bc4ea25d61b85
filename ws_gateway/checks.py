"""System checks (``manage.py check``): settings of the host project that the app depends on."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register

from .conf import gateway_settings

SQLITE_ENGINE = "django.db.backends.sqlite3"


@register(Tags.database)
def check_sqlite_settings(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """SQLite without immediate transactions (or WAL) fails concurrent writes with 'database is locked'.

    ws_gateway's own writes are safe either way (see :mod:`ws_gateway.writes`);
    these warnings are about the rest of the host project's writes."""
    return sqlite_warnings(settings.DATABASES, tuning=gateway_settings.SQLITE_TUNING)


def sqlite_warnings(databases: dict[str, dict[str, Any]], *, tuning: bool) -> list[Warning]:
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
