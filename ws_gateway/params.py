"""Typed access to a JSON-RPC params object: wrong types answer -32602.

The getters are named after JSON's types (``string``, ``boolean``, ``integer``,
``array``) so they shadow no builtin in annotations; a default of the right
type narrows the return type (``p.string("x", "")`` is a ``str``).
"""

from __future__ import annotations

from typing import Any, overload

from .errors import SESSION_ID_REQUIRED, RpcError, invalid_params

_MISSING = object()


class Params:
    """Typed getters over a params object; wrong types answer -32602."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    @overload
    def string(self, key: str, default: str) -> str: ...
    @overload
    def string(self, key: str, default: None = None) -> str | None: ...
    def string(self, key: str, default: str | None = None) -> str | None:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise invalid_params(f"{key} must be a string")
        return value

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise invalid_params(f"{key} must be a boolean")
        return value

    @overload
    def integer(self, key: str, default: int, *, minimum: int | None = None) -> int: ...
    @overload
    def integer(self, key: str, default: None = None, *, minimum: int | None = None) -> int | None: ...
    def integer(self, key: str, default: int | None = None, *, minimum: int | None = None) -> int | None:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid_params(f"{key} must be an integer")
        if minimum is not None and value < minimum:
            raise invalid_params(f"{key} must be >= {minimum}")
        return value

    def array(self, key: str) -> list[Any] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise invalid_params(f"{key} must be an array")
        return value

    def session_id(self) -> str:
        """The required ``session_id`` (4006 when missing or empty)."""
        value = self.string("session_id")
        if not value:
            raise RpcError(SESSION_ID_REQUIRED, "session_id required")
        return value
