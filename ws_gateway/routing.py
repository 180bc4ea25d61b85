"""WebSocket routes of the app, to mount in the host project's ASGI router."""

from django.urls import path

from .conf import gateway_settings
from .transport.consumer import GatewayConsumer

websocket_urlpatterns = [
    path(gateway_settings.PATH.strip("/"), GatewayConsumer.as_asgi()),
]
