"""HTTP routes of the app."""

from django.urls import path

from . import views

urlpatterns = [
    path("healthz", views.healthz, name="ws_gateway_healthz"),
]
