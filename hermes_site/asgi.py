"""ASGI entry point: HTTP to Django, /api/ws to the gateway consumer (cookie or bearer auth)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hermes_site.settings")
django_asgi_app = get_asgi_application()

from ws_gateway.routing import gateway_application  # noqa: E402

application = gateway_application(django_asgi_app)
