"""Django app config."""

from django.apps import AppConfig
from django.db.backends.signals import connection_created


class WsGatewayConfig(AppConfig):
    name = "ws_gateway"
    verbose_name = "WebSocket gateway"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing registers the built-in RPC methods, the system checks, the cluster's router and
        # the live-session requests every worker answers.
        from . import checks, forwarding, live_sessions, methods  # noqa: F401
        from .writes import tune_connection

        connection_created.connect(tune_connection, dispatch_uid="ws_gateway.writes.tune_connection")
        _watch_gauges()


def _watch_gauges() -> None:
    from . import metrics
    from .agent.pending import pending
    from .sessions.registry import registry

    metrics.watch_gauges(registry.__len__, registry.running_count, pending.__len__)
