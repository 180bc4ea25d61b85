"""HTTP routes of the app: the console at the mount point, its login, ``healthz`` and ``metrics``."""

from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("", views.console, name="ws_gateway_console"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="ws_gateway/login.html", redirect_authenticated_user=True),
        name="ws_gateway_login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="ws_gateway_logout"),
    path("healthz", views.healthz, name="ws_gateway_healthz"),
    path("metrics", views.metrics_view, name="ws_gateway_metrics"),
]
