"""Signals by which a lower layer tells the layers above (they connect receivers; it imports none).

``connection_closed`` is sent on the event loop (``asend``) by the transport when a
socket's connection is gone, with ``conn_id`` and ``sessions`` (the ids it had
attached). Receivers are coroutines; a receiver that detached sessions returns
``(reaped, detached)`` counts for the connection's log line.

``session_stopping`` is sent on a worker thread when a live session ends (or is
handed over on drain), with ``live``: receivers stop its work (release waiting
requests, interrupt a running turn, kill its processes) before it is stored.
"""

from __future__ import annotations

from django.dispatch import Signal

connection_closed = Signal()
session_stopping = Signal()
