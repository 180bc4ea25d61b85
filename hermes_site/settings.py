"""Settings of the host project. The environment is read here and nowhere else.

Environment variables:
    DJANGO_SECRET_KEY   secret key (a development key when unset)
    DJANGO_DEBUG        "1" for debug
    ALLOWED_HOSTS       comma-separated (default: localhost,127.0.0.1,[::1]); also the Host names a
                        WebSocket handshake may carry (other ones: 4503, DNS rebinding)
    DATABASE_URL        e.g. postgres://user@host:5432/db (default: SQLite file db.sqlite3)
    DATABASE_CONN_MAX_AGE  seconds a worker thread keeps its DB connection (default 0)
    DATABASE_POOL       "0" turns PostgreSQL's connection pool off (default on)
    DATABASE_POOL_MAX   connections the pool opens at most per process (default 20)
    REDIS_URL           e.g. redis://127.0.0.1:6379/0; unset = in-memory channel layer
    REDIS_LAYER         "pubsub" (default) or "core": which channels_redis layer
    GATEWAY_AGENT       agent backend: "demo" (default), "openai" or a dotted path
    OPENAI_BASE_URL, OPENAI_API_KEY, OPENAI_MODEL   options of the "openai" backend
    GATEWAY_ORPHAN_GRACE_S   seconds before a clientless session is reclaimed
    GATEWAY_ALLOW_ANONYMOUS  "0" to require an authenticated user (default "1": single-tenant,
                        every anonymous client is the same person)
    GATEWAY_ALLOWED_ORIGINS  comma-separated browser origins allowed to connect besides the page's
                        own host, e.g. https://app.example (default: none; other origins get 4503)
    GATEWAY_WORKER_ID   name of this process in gateway.ready
    GATEWAY_SETTINGS    JSON object merged over WS_GATEWAY (any key of ws_gateway.conf.DEFAULTS;
                        AGENT_OPTIONS are merged key by key), e.g. the limits:
                        {"RATE_LIMIT": {"rate": 100, "burst": 400}, "MAX_SESSIONS_PER_USER": 200}
    LOG_LEVEL           root log level (default INFO)
    LOG_FORMAT          "plain" (default) or "json": one JSON object a line with the connection,
                        session and request ids (ws_gateway.logs)
    CSRF_TRUSTED_ORIGINS  comma-separated origins of form posts through a proxy or over HTTPS,
                        e.g. https://gateway.example,http://localhost:8080 (the admin's login)
    METRICS_ALLOW       comma-separated networks (CIDR) that may read /metrics besides staff users
                        (default: loopback)
    GATEWAY_PROXY_HEADERS  "1": gateway_workers runs daphne with --proxy-headers (client address and
                        scheme from X-Forwarded-For/-Proto); only behind a proxy that sets them
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import dj_database_url

from ws_gateway.conf import channel_layers

BASE_DIR = Path(__file__).resolve().parent.parent


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


SECRET_KEY = _env("DJANGO_SECRET_KEY", "dev-only-insecure-key-change-me")
DEBUG = _env("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = [
    h.strip() for h in _env("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h.strip()
]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in _env("CSRF_TRUSTED_ORIGINS").split(",") if o.strip()]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "ws_gateway",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves the console's static files (and the admin's) from daphne itself.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "hermes_site.urls"
ASGI_APPLICATION = "hermes_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# Several threads (and in tests several processes) share a SQLite file.
_SQLITE_OPTIONS = {
    "timeout": 30,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
_database_url = _env("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
# Every worker thread holds its own connection; 0 keeps PostgreSQL's connection count bounded.
DATABASES = {
    "default": dj_database_url.parse(
        _database_url, conn_max_age=int(_env("DATABASE_CONN_MAX_AGE", "0")), conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and _env("DATABASE_POOL", "1") == "1":
    # Django's connection pool (psycopg_pool): a call borrows a connection instead of opening one
    # (session.list p50 5.4 -> 1.05 ms measured). ws_gateway hands it back after each unit of work.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2,
        "max_size": int(_env("DATABASE_POOL_MAX", "20")),
        "timeout": 30,
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Closed after each unit of work: a kept connection whose cursor was left unfinished holds
    # an old WAL snapshot and would not see other processes' writes.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = dict(_SQLITE_OPTIONS)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_redis_url = _env("REDIS_URL")
# In-memory for one process; with REDIS_URL the Redis layer with the measured settings.
CHANNEL_LAYERS = channel_layers(_redis_url or None, _env("REDIS_LAYER", "pubsub"))

WS_GATEWAY: dict[str, Any] = {
    "AGENT": _env("GATEWAY_AGENT", "demo"),
    "AGENT_OPTIONS": {
        key: value
        for key, value in {
            "base_url": _env("OPENAI_BASE_URL"),
            "api_key": _env("OPENAI_API_KEY"),
            "model": _env("OPENAI_MODEL"),
        }.items()
        if value
    },
    "ORPHAN_GRACE_S": float(_env("GATEWAY_ORPHAN_GRACE_S", "20")),
    "ALLOW_ANONYMOUS": _env("GATEWAY_ALLOW_ANONYMOUS", "1") == "1",
    "ALLOWED_ORIGINS": [o.strip() for o in _env("GATEWAY_ALLOWED_ORIGINS").split(",") if o.strip()],
    "WORKER_ID": _env("GATEWAY_WORKER_ID"),
    "REDIS_URL": _redis_url or None,
    # SIGTERM drains (a deploy or gateway_workers stopping a worker): this project owns its processes.
    "DRAIN_ON_SIGTERM": True,
    "PROXY_HEADERS": _env("GATEWAY_PROXY_HEADERS") == "1",
}
if _env("METRICS_ALLOW"):
    WS_GATEWAY["METRICS_ALLOW"] = [n.strip() for n in _env("METRICS_ALLOW").split(",") if n.strip()]
_overrides = json.loads(_env("GATEWAY_SETTINGS", "{}"))
# AGENT_OPTIONS merge key by key, so GATEWAY_SETTINGS can add e.g. timeout_s to the OPENAI_* ones.
WS_GATEWAY["AGENT_OPTIONS"] = {**WS_GATEWAY["AGENT_OPTIONS"], **_overrides.pop("AGENT_OPTIONS", {})}
WS_GATEWAY.update(_overrides)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
# Serve straight from the apps' static folders, so the README's run command needs no collectstatic.
WHITENOISE_USE_FINDERS = True
# Without collectstatic there is no STATIC_ROOT yet; the finders serve everything then.
# (Raised from whitenoise, attributed to the Django handler that built the middleware.)
warnings.filterwarnings("ignore", message="No directory at: .*static")

# The console's login (ws_gateway.urls); after it, and after logout, back to the console.
LOGIN_URL = "ws_gateway_login"
LOGIN_REDIRECT_URL = "ws_gateway_console"
LOGOUT_REDIRECT_URL = "ws_gateway_console"

_LOG_FORMAT = "json" if _env("LOG_FORMAT") == "json" else "plain"
if _LOG_FORMAT == "json":
    # Python warnings become log records too, so every line on stderr is JSON.
    logging.captureWarnings(True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"gateway": {"()": "ws_gateway.logs.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "ws_gateway.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": _LOG_FORMAT,
            "filters": ["gateway"],
        }
    },
    "root": {"handlers": ["console"], "level": _env("LOG_LEVEL", "INFO")},
    # daphne.server says where it listens ("Listening on TCP address ..."); the rest of daphne is noisy.
    "loggers": {"daphne": {"level": "WARNING"}, "daphne.server": {"level": "INFO"}},
}
