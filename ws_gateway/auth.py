"""Who is on the other end of a socket: Django session cookie (browsers) or bearer token.

``GatewayAuthMiddleware`` authenticates the handshake in one layer: a request
with ``Authorization: Bearer <token>`` (or ``?token=`` for clients that cannot
set headers) is authenticated by :class:`~ws_gateway.models.AccessToken`;
otherwise the session cookie decides. Tokens are stored hashed and never logged.
Create one with ``manage.py gateway_token USERNAME``.

:func:`identify` decides what the consumer makes of that (PROTOCOL.md 11, 13):

- a bad ``Authorization: Bearer`` header is always refused;
- a ``?token=`` that is not a token of this gateway is refused when anonymous
  access is off, and ignored when it is on (dashboard-style URLs carry a token
  of another server: the socket connects anonymously);
- the session cookie authenticates only a browser socket, one with an
  ``Origin`` header (which :mod:`~ws_gateway.origins` has already accepted).
  Browsers always send ``Origin`` on WebSocket handshakes, so a cookie without
  one comes from a program replaying it, not from the user's browser: it is
  ignored, and such a client authenticates with a token.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from importlib import import_module
from typing import Any
from urllib.parse import parse_qs

from channels.auth import get_user
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.cookie import parse_cookie
from django.utils import timezone

from .conf import gateway_settings
from .models import AccessToken
from .origins import is_browser
from .writes import write_unit

TOKEN_PREFIX = "gwt_"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh plain token (``gwt_`` and 43 URL-safe characters)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def issue_token(user: Any, name: str = "") -> str:
    """Create a token for ``user``; the plain token is returned once and not kept."""
    token = new_token()
    AccessToken.objects.create(user=user, name=name, digest=digest(token))
    return token


HEADER = "header"
QUERY = "query"


def bearer_token(scope: dict[str, Any]) -> tuple[str, str] | None:
    """(token, where: ``header`` | ``query``) of the handshake, or None."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            kind, _, token = value.decode("latin-1").partition(" ")
            if kind.lower() == "bearer" and token.strip():
                return token.strip(), HEADER
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    token = (query.get("token") or [None])[0]
    return (token, QUERY) if token else None


@database_sync_to_async  # type: ignore[untyped-decorator]  # channels has no types
def user_for_token(token: str) -> Any:
    row = AccessToken.objects.select_related("user").filter(digest=digest(token)).first()
    if row is None or not row.user.is_active:
        return None
    _mark_used(AccessToken, row.pk)
    return row.user


@write_unit
def _mark_used(model: Any, pk: int) -> None:
    model.objects.filter(pk=pk).update(last_used_at=timezone.now())


class GatewayAuthMiddleware:
    """Who the socket is, in one layer: ``scope["user"]`` from a bearer token (with
    ``scope["token_user"]``), else from the Django session cookie of a browser socket, else
    ``AnonymousUser``; ``scope["auth_failed"]`` names where a bad token was (``header`` |
    ``query``).

    Channels' ``AuthMiddlewareStack`` would do the cookie part in three layers, each copying
    the scope and each a coroutine alive for the whole connection (~6 KB a socket), and look
    the user up even where :func:`identify` ignores it: the cookie counts only for a browser
    socket (one with an ``Origin``), and a socket without the cookie has no user to look up.
    The session's user is resolved by Channels' own ``get_user``.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        scope = dict(scope, user=AnonymousUser())
        found = bearer_token(scope)
        if found is not None:
            token, where = found
            user = await user_for_token(token)
            if user is not None:
                scope.update(user=user, token_user=True)
            else:
                scope["auth_failed"] = where
        if not scope.get("token_user") and is_browser(scope):
            session_key = _cookies(scope).get(settings.SESSION_COOKIE_NAME)
            if session_key:
                scope["session"] = _session_store()(session_key)
                scope["user"] = await get_user(scope)
        return await self.inner(scope, receive, send)


def _cookies(scope: dict[str, Any]) -> dict[str, str]:
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            return parse_cookie(value.decode("latin-1"))
    return {}


@functools.cache
def _session_store() -> Any:
    return import_module(settings.SESSION_ENGINE).SessionStore


@dataclass(frozen=True)
class Identity:
    """Who a socket acts as: a user (by token or cookie) or nobody (anonymous)."""

    user_id: int | None
    is_staff: bool = False
    via: str = "anonymous"  # "token" | "cookie" | "anonymous"


def identify(scope: dict[str, Any]) -> Identity | str:
    """The socket's identity, or why it is refused (a reason for the log, never the token)."""
    failed = scope.get("auth_failed")
    anonymous_ok = gateway_settings.ALLOW_ANONYMOUS
    if failed == HEADER:
        return "unrecognised bearer token"
    if failed == QUERY and not anonymous_ok:
        return "unrecognised ?token="
    user = scope.get("user")
    if user is not None and getattr(user, "is_authenticated", False):
        if scope.get("token_user"):
            return Identity(user.pk, bool(user.is_staff), "token")
        if is_browser(scope):
            return Identity(user.pk, bool(user.is_staff), "cookie")
    if not anonymous_ok:
        return "not authenticated"
    return Identity(None)
