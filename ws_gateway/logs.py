"""Log context and the JSON log format.

The consumer and the dispatcher set which connection, session and request a
line belongs to (context variables: asyncio tasks inherit them, worker threads
get them from :func:`bound`); :class:`ContextFilter` copies them onto every
record, and :class:`JsonFormatter` writes one JSON object a line. Enable with
``LOG_FORMAT=json`` (hermes_site/settings.py) or in your own ``LOGGING``::

    "filters": {"gateway": {"()": "ws_gateway.logs.ContextFilter"}},
    "formatters": {"json": {"()": "ws_gateway.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json",
                             "filters": ["gateway"]}},

Nothing here adds content to a line: secrets stay out of logs because no code
logs them (tests/test_operations.py greps every server log for them).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

conn_id: ContextVar[str | None] = ContextVar("ws_gateway_conn_id", default=None)
session_id: ContextVar[str | None] = ContextVar("ws_gateway_session_id", default=None)
request_id: ContextVar[str | None] = ContextVar("ws_gateway_request_id", default=None)


@contextmanager
def bound(*, conn: str | None = None, session: str | None = None, request: object = None) -> Iterator[None]:
    """Within the block, log lines of this thread or task name these ids (None: keep the outer one)."""
    tokens = []
    for var, value in ((conn_id, conn), (session_id, session), (request_id, request)):
        if value is not None:
            tokens.append((var, var.set(str(value))))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Adds ``conn_id``, ``session_id`` and ``request_id`` (or None) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.conn_id = conn_id.get()
        record.session_id = session_id.get()
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the ids, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "conn_id": getattr(record, "conn_id", None),
            "session_id": getattr(record, "session_id", None),
            "request_id": getattr(record, "request_id", None),
            "process": record.process,
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
