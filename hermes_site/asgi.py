"""ASGI entry point: HTTP to Django, /api/ws to the gateway consumer (cookie or bearer auth)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hermes_site.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from ws_gateway.auth import GatewayAuthMiddleware  # noqa: E402
from ws_gateway.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": GatewayAuthMiddleware(URLRouter(websocket_urlpatterns)),
    }
)
