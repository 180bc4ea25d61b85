"""Who is on the other end of a socket: Django session cookie (browsers) or bearer token.

``GatewayAuthMiddleware`` wraps Channels' ``AuthMiddlewareStack``: a request
with ``Authorization: Bearer <token>`` (or ``?token=`` for clients that cannot
set headers) is authenticated by :class:`~ws_gateway.models.AccessToken`;
otherwise the session cookie decides. Tokens are stored hashed and never logged.
Create one with ``manage.py gateway_token USERNAME``.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.utils import timezone

from .writes import write_unit

TOKEN_PREFIX = "gwt_"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user: Any, name: str = "") -> str:
    """Create a token for ``user``; the plain token is returned once and not kept."""
    from .models import AccessToken

    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    AccessToken.objects.create(user=user, name=name, digest=digest(token))
    return token


def bearer_token(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            kind, _, token = value.decode("latin-1").partition(" ")
            if kind.lower() == "bearer" and token.strip():
                return token.strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return (query.get("token") or [None])[0]


@database_sync_to_async
def user_for_token(token: str) -> Any:
    from .models import AccessToken

    row = AccessToken.objects.select_related("user").filter(digest=digest(token)).first()
    if row is None or not row.user.is_active:
        return None
    _mark_used(AccessToken, row.pk)
    return row.user


@write_unit
def _mark_used(model: Any, pk: int) -> None:
    model.objects.filter(pk=pk).update(last_used_at=timezone.now())


class TokenAuthMiddleware:
    """Sets ``scope["user"]`` from a bearer token; ``scope["auth_failed"]`` for a bad one."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        token = bearer_token(scope)
        if token is not None:
            user = await user_for_token(token)
            scope = dict(scope, user=user) if user is not None else dict(scope, auth_failed=True)
        return await self.inner(scope, receive, send)


def GatewayAuthMiddleware(inner: Any) -> Any:
    """Session cookie auth, then bearer tokens on top."""
    return AuthMiddlewareStack(TokenAuthMiddleware(inner))
