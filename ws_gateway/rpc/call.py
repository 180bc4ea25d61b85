"""What a handler receives: the caller's connection and typed access to params."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..caller import Caller, RemoteCaller, Subscription
from ..params import Params

__all__ = ["Call", "Caller", "Params", "RemoteCaller", "Subscription"]


@dataclass
class Call:
    """One request being handled."""

    conn: Caller
    method: str
    params: Params
    request_id: Any = None
    # Set on the owner when the call came from another process (never forwarded again).
    forwarded: bool = False
    subscriptions: list[Subscription] = field(default_factory=list)

    def follow(self, *subscriptions: Subscription) -> None:
        """Join these sessions' events before the response is sent; replay from each baseline."""
        self.subscriptions.extend(subscriptions)
