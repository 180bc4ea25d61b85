"""HTTP views: health check, the web console and its login."""

from __future__ import annotations

import asyncio

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.views import redirect_to_login
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from .conf import gateway_settings

# The console loads only its own files and talks only to its own origin; nothing inline runs,
# so model or user text that slipped through as markup still could not execute.
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def _check_layer() -> None:
    layer = get_channel_layer()

    async def roundtrip() -> None:
        channel = await layer.new_channel("healthz.")
        await layer.send(channel, {"type": "healthz"})
        await asyncio.wait_for(layer.receive(channel), 2.0)

    async_to_sync(roundtrip)()


def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the channel layer answer, else 503 with what failed."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        _check_layer()
        checks["channel_layer"] = "ok"
    except Exception as exc:
        checks["channel_layer"] = f"error: {exc.__class__.__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if healthy else "error", **checks}, status=200 if healthy else 503)


def console(request: HttpRequest) -> HttpResponse:
    """The web console: a static page whose ES modules speak the gateway protocol on this origin."""
    login_required = not gateway_settings.ALLOW_ANONYMOUS
    if login_required and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), reverse("ws_gateway_login"))
    response = render(
        request,
        "ws_gateway/console.html",
        {"ws_path": "/" + gateway_settings.PATH.strip("/"), "login_required": login_required},
    )
    response["Content-Security-Policy"] = CONSOLE_CSP
    response["Cache-Control"] = "no-store"
    return response
