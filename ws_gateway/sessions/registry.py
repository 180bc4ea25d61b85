"""The registry of live sessions in this process, and which connections attach them."""

from __future__ import annotations

import threading

from .live import LiveSession


class SessionRegistry:
    """Thread-safe maps: runtime id -> session, stored key -> runtime id, connection -> sessions."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._by_id: dict[str, LiveSession] = {}
        self._by_key: dict[str, str] = {}
        self._by_conn: dict[str, set[str]] = {}

    def add(self, live: LiveSession) -> None:
        with self._lock:
            self._by_id[live.id] = live
            self._by_key[live.key] = live.id

    def remove(self, live: LiveSession) -> None:
        with self._lock:
            self._by_id.pop(live.id, None)
            if self._by_key.get(live.key) == live.id:
                del self._by_key[live.key]
            for conn_id in live.clients:
                self._by_conn.get(conn_id, set()).discard(live.id)

    def get(self, session_id: str) -> LiveSession | None:
        return self._by_id.get(session_id)

    def by_key(self, key: str) -> LiveSession | None:
        with self._lock:
            session_id = self._by_key.get(key)
            return self._by_id.get(session_id) if session_id else None

    def all(self) -> list[LiveSession]:
        with self._lock:
            return list(self._by_id.values())

    def owned_by(self, owner_id: int | None) -> list[LiveSession]:
        """The live sessions of one user (anonymous: ``None``)."""
        with self._lock:
            return [s for s in self._by_id.values() if s.owner_id == owner_id]

    def count_linked(self, conn_id: str) -> int:
        """How many live sessions a connection is attached to."""
        with self._lock:
            return len(self._by_conn.get(conn_id, ()))

    def __len__(self) -> int:
        return len(self._by_id)

    def running_count(self) -> int:
        """How many live sessions have a turn running (read when metrics are scraped)."""
        with self._lock:
            return sum(1 for s in self._by_id.values() if s.running)

    def link(self, conn_id: str, live: LiveSession) -> None:
        with self._lock:
            self._by_conn.setdefault(conn_id, set()).add(live.id)

    def unlink(self, conn_id: str, live: LiveSession) -> None:
        with self._lock:
            self._by_conn.get(conn_id, set()).discard(live.id)

    def of_connection(self, conn_id: str) -> list[LiveSession]:
        """The live sessions a connection is attached to, most recently active first."""
        with self._lock:
            found = [self._by_id[i] for i in self._by_conn.get(conn_id, ()) if i in self._by_id]
        return sorted(found, key=lambda s: s.last_active, reverse=True)

    def unlink_connection(self, conn_id: str) -> list[LiveSession]:
        """Forget a connection; returns the sessions it was attached to."""
        with self._lock:
            ids = self._by_conn.pop(conn_id, set())
            return [self._by_id[i] for i in ids if i in self._by_id]


registry = SessionRegistry()
