"""Prometheus metrics of this process (``prometheus-client``), served at ``/metrics``.

Every daphne worker keeps its own: scrape each worker's port (docs/operations.md).
Counters are incremented on the hot path (one lock-free-ish ``inc`` each, the
client library's own cost); gauges of state that already exists elsewhere (live
sessions, running turns, pending requests) are read only when scraped.

Names:

- ``ws_gateway_connections``: open WebSocket connections (gauge)
- ``ws_gateway_live_sessions``, ``ws_gateway_running_turns``, ``ws_gateway_pending_requests`` (gauges)
- ``ws_gateway_events_total``: session events stamped with a ``seq`` (counter)
- ``ws_gateway_frames_sent_total``: frames written to sockets (counter)
- ``ws_gateway_closes_total{code}``: closed sockets by close code (counter)
- ``ws_gateway_forwarded_calls_total{outcome}``: calls forwarded to another worker (counter)
- ``ws_gateway_redis_errors_total{op}``: failed Redis operations of the cluster (counter)
- ``ws_gateway_turn_duration_seconds{status}``, ``ws_gateway_first_token_seconds`` (histograms)
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "render"]

# The default registry: the process collectors (memory, CPU, open fds) come with it.
registry: CollectorRegistry = DEFAULT_REGISTRY

connections = Gauge("ws_gateway_connections", "Open WebSocket connections of this process")
live_sessions = Gauge("ws_gateway_live_sessions", "Live sessions owned by this process")
running_turns = Gauge("ws_gateway_running_turns", "Turns running in this process")
pending_requests = Gauge("ws_gateway_pending_requests", "Requests waiting for a person in this process")
events = Counter("ws_gateway_events", "Session events stamped with a seq by this process")
frames_sent = Counter("ws_gateway_frames_sent", "Frames written to sockets by this process")
closes = Counter("ws_gateway_closes", "Closed WebSocket connections, by close code", ["code"])
forwarded_calls = Counter(
    "ws_gateway_forwarded_calls", "Calls forwarded to the session's owner, by outcome", ["outcome"]
)
# Resolved once: a labelled child costs ~1.5 µs to look up, its inc ~0.3 µs.
forwarded = {outcome: forwarded_calls.labels(outcome) for outcome in ("ok", "error", "owner_silent")}
redis_errors = Counter("ws_gateway_redis_errors", "Failed Redis operations of the cluster, by kind", ["op"])
turn_duration = Histogram(
    "ws_gateway_turn_duration_seconds",
    "Turn duration from start to message.complete, by status",
    ["status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
first_token = Histogram(
    "ws_gateway_first_token_seconds",
    "Time from a turn's start to its first message.delta",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)


def watch_gauges(
    sessions: Callable[[], float], turns: Callable[[], float], requests: Callable[[], float]
) -> None:
    """Gauges read at scrape time from the state that holds them (no bookkeeping per change)."""
    live_sessions.set_function(sessions)
    running_turns.set_function(turns)
    pending_requests.set_function(requests)


def render() -> bytes:
    """The text exposition of this process's metrics."""
    return generate_latest(registry)
