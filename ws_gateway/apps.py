"""Django app config: the one place that wires the layers together at start-up."""

from django.apps import AppConfig
from django.db.backends.signals import connection_created


class WsGatewayConfig(AppConfig):
    name = "ws_gateway"
    verbose_name = "WebSocket gateway"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at module level: models may not be imported before apps are ready.
        # Importing registers the built-in RPC methods, the system checks and the receivers.
        from . import checks, live_sessions, methods, metrics, processes  # noqa: F401
        from .agent import base, turns
        from .agent.pending import pending
        from .cluster import forwarding
        from .rpc import dispatch, forwarded
        from .rpc.registry import client_reply, on_client_reply
        from .sessions import work
        from .sessions.registry import registry
        from .signals import session_stopping
        from .writes import tune_connection

        connection_created.connect(tune_connection, dispatch_uid="ws_gateway.writes.tune_connection")
        # Lower layers ask the higher ones only through what is registered here.
        session_stopping.connect(turns.stop_session_work, dispatch_uid="ws_gateway.agent.turns")
        session_stopping.connect(processes.stop_session_work, dispatch_uid="ws_gateway.processes")
        work.register(requests=pending.for_session, running=processes.processes.running)
        work.install_builder(base.build)
        forwarding.install(forwarded.serve, client_reply)
        dispatch.install_router(forwarding.route)
        # After the methods' own handler (imported above): replies it does not know go to the owners.
        on_client_reply(forwarding.forward_reply)
        metrics.watch_gauges(registry.__len__, registry.running_count, pending.__len__)
