"""Identifiers on the wire: runtime session ids, stored session keys, request ids."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

STORED_ID_RE = re.compile(r"^\d{8}_\d{6}_[0-9a-f]{6}$")


def runtime_id() -> str:
    """8 hex chars naming a live session."""
    return secrets.token_hex(4)


def stored_id(now: datetime | None = None) -> str:
    """``YYYYMMDD_HHMMSS_<6 hex>``: the stored session's key."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d_%H%M%S}_{secrets.token_hex(3)}"


def request_id() -> str:
    """8 hex chars naming a pending interactive request."""
    return secrets.token_hex(4)


def server_request_id() -> str:
    """``srq-<12 hex>``: the id of a server-to-client JSON-RPC request."""
    return f"srq-{secrets.token_hex(6)}"


def epoch() -> str:
    """32 hex chars naming one lifetime of an event log."""
    return secrets.token_hex(16)
