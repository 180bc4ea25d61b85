"""HTTP views: health check."""

from __future__ import annotations

import asyncio

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse


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
