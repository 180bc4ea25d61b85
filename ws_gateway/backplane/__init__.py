"""What crosses processes: ``backplane``, this process's :class:`~.base.Backplane`.

It is the :class:`~.base.LocalBackplane` (one process, no I/O) until
:func:`start` finds ``REDIS_URL`` set, then the :class:`~.redis.RedisBackplane`.
Code above asks it questions (``backplane.locate(...)``) and never learns which
one answers; only :func:`start` names Redis.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from ..conf import gateway_settings
from .base import (
    CLIENT_REPLY,
    DETACH,
    Backplane,
    LocalBackplane,
    Message,
    Owned,
    Owner,
    OwnerGone,
    Receivers,
    connection_id,
    worker_of,
)
from .redis import RedisBackplane

__all__ = [
    "CLIENT_REPLY",
    "DETACH",
    "Backplane",
    "LocalBackplane",
    "Message",
    "Owned",
    "Owner",
    "OwnerGone",
    "Receivers",
    "RedisBackplane",
    "backplane",
    "configured",
    "connection_id",
    "receivers",
    "start",
    "worker_of",
]


class _Current:
    """Forwards to the backplane in use, so ``from ..backplane import backplane`` never goes stale."""

    def __init__(self) -> None:
        self.impl: Backplane = LocalBackplane()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.impl, name)


_current = _Current()
backplane = cast("Backplane", _current)
# Registered once by the layers above; kept across the switch to Redis.
receivers: Receivers = _current.impl.receivers


def configured() -> bool:
    """Whether this deployment has several processes (``REDIS_URL``), started here yet or not."""
    return bool(gateway_settings.REDIS_URL)


async def start(loop: asyncio.AbstractEventLoop, layer: Any) -> None:
    """Start this process's backplane: Redis when ``REDIS_URL`` is set (idempotent)."""
    if gateway_settings.REDIS_URL and type(_current.impl) is LocalBackplane:
        _current.impl = RedisBackplane(receivers)
    await _current.impl.start(loop, layer)
