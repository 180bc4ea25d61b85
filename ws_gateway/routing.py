"""WebSocket routes of the app, and the ASGI application a host project mounts in one call:

# asgi.py of the host project
django_asgi_app = get_asgi_application()   # first: it sets Django up
from ws_gateway.routing import gateway_application
application = gateway_application(django_asgi_app)
"""

from typing import Any

from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path

from .auth import GatewayAuthMiddleware
from .conf import gateway_settings
from .transport.consumer import GatewayConsumer

websocket_urlpatterns = [
    path(gateway_settings.PATH.strip("/"), GatewayConsumer.as_asgi()),
]


def gateway_application(http_app: Any) -> ProtocolTypeRouter:
    """HTTP to ``http_app`` (Django's), WebSocket to the gateway behind its auth middleware (the
    session cookie or a bearer token; without it tokens would be silently ignored)."""
    return ProtocolTypeRouter(
        {"http": http_app, "websocket": GatewayAuthMiddleware(URLRouter(websocket_urlpatterns))}
    )
