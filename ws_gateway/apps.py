"""Django app config."""

from django.apps import AppConfig


class WsGatewayConfig(AppConfig):
    name = "ws_gateway"
    verbose_name = "WebSocket gateway"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing registers the built-in RPC methods and the system checks.
        from . import checks, methods  # noqa: F401
