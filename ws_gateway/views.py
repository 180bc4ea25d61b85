"""HTTP views: health check, the web console and its login."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
import weakref
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.views import redirect_to_login
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from . import metrics
from .conf import gateway_settings

# The console loads only its own files and talks only to its own origin; nothing inline runs,
# so model or user text that slipped through as markup still could not execute.
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


class _LayerProbe:
    """One health-check channel per event loop, reused by every check.

    A new channel per check would leak: the pub/sub layer subscribes to each new
    channel and unsubscribes only when a receive is cancelled, so every check left
    one Redis subscription behind. Checks on one loop take turns on its channel."""

    def __init__(self) -> None:
        self._probes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[str, asyncio.Lock]] = (
            weakref.WeakKeyDictionary()
        )

    async def roundtrip(self, layer: Any, timeout: float = 2.0) -> None:
        loop = asyncio.get_running_loop()
        probe = self._probes.get(loop)
        if probe is None:
            probe = self._probes[loop] = (await layer.new_channel("healthz."), asyncio.Lock())
        channel, lock = probe
        async with lock:
            nonce = uuid.uuid4().hex
            await layer.send(channel, {"type": "healthz", "nonce": nonce})
            # A reply of an earlier check that timed out may still arrive first: skip it.
            async with asyncio.timeout(timeout):
                while (await layer.receive(channel)).get("nonce") != nonce:
                    pass


_probe = _LayerProbe()


def _check_layer() -> None:
    async_to_sync(_probe.roundtrip)(get_channel_layer())


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


def _metrics_allowed(request: HttpRequest) -> bool:
    """Staff users, and clients from ``METRICS_ALLOW`` (loopback by default)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in gateway_settings.METRICS_ALLOW)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """This process's metrics in the Prometheus text format (each worker serves its own)."""
    if not _metrics_allowed(request):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(metrics.render(), content_type=metrics.CONTENT_TYPE)


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
