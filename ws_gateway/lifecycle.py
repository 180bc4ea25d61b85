"""Process start-up (on the first connection) and graceful drain (on SIGTERM).

Drain: stop accepting sockets, tell every client (``gateway.draining``), let
running turns finish within ``DRAIN_S`` (then interrupt them, so what was
said is stored), hand sessions over (their leases are released, so the next
call from any process adopts them from the database and the durable log),
close every socket with 4012 (reconnectable), and exit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from typing import Any

from . import backplane as backplanes
from . import workers
from .backplane import backplane
from .conf import gateway_settings
from .errors import CLOSE_DRAINING
from .events.outbox import outbox
from .sessions import reaper
from .transport.connection import connections

log = logging.getLogger(__name__)


_started: asyncio.Future[None] | None = None
_loop: asyncio.AbstractEventLoop | None = None
draining = False


async def start(layer: Any) -> None:
    """Bind the outbox to this loop and start the backplane, once per process (per loop in tests)."""
    global _started, _loop
    loop = asyncio.get_running_loop()
    if _started is not None and _loop is loop:
        await asyncio.shield(_started)
        return
    _loop, _started = loop, loop.create_future()
    try:
        outbox.bind(loop)
        await backplanes.start(loop, layer)
        epoch = await backplane.epoch()
        if epoch is not None:
            outbox.epoch = epoch
        reaper.start_sweeper()
        _install_sigterm(loop)
        _started.set_result(None)
    except Exception as exc:
        _started.set_exception(exc)
        _started = None
        raise


def _install_sigterm(loop: asyncio.AbstractEventLoop) -> None:
    if not gateway_settings.DRAIN_ON_SIGTERM:
        return
    try:
        loop.add_signal_handler(signal.SIGTERM, lambda: loop.create_task(drain_and_exit()))
    except (NotImplementedError, RuntimeError, ValueError):
        log.warning("could not install the SIGTERM drain handler")


async def drain_and_exit() -> None:
    global draining
    if draining:
        return
    draining = True
    started = time.monotonic()
    log.info("draining: window %.1fs", gateway_settings.DRAIN_S)
    for conn in list(connections.values()):
        conn.push_event("gateway.draining", {"reconnect": True, "drain_s": gateway_settings.DRAIN_S})
    loop = asyncio.get_running_loop()
    handed = await loop.run_in_executor(workers.background(), reaper.hand_over_all, gateway_settings.DRAIN_S)
    await outbox.flushed()
    for session_id, key in handed:
        try:
            await backplane.release(session_id, key, ended=False)
        except Exception:
            log.warning("could not release session=%s", session_id, exc_info=True)
    for conn in list(connections.values()):
        await conn.close(CLOSE_DRAINING)
    await asyncio.sleep(0.2)  # let the close frames reach the sockets
    log.info("drained in %.1fs; exiting", time.monotonic() - started)
    await backplane.shutdown()
    os._exit(0)
