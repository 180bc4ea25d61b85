"""Django system checks of the gateway's configuration (``manage.py check``; ``--deploy`` adds
the checks that only matter on a server).

    ws_gateway.W010  unknown WS_GATEWAY key (a typo: the setting would be ignored)
    ws_gateway.E010  a WS_GATEWAY value of the wrong type or shape (conf.SCHEMA)
    ws_gateway.E011  RATE_LIMIT is not {"rate": N, "burst": N} with positive numbers
    ws_gateway.E012  AGENT cannot be loaded or rejects AGENT_OPTIONS
    ws_gateway.W012  AGENT has no model configured: every turn fails until a client picks one
    ws_gateway.E013  no channel layer (CHANNEL_LAYERS["default"])
    ws_gateway.E014  REDIS_URL set, but the channel layer is in-memory
    ws_gateway.W014  a Redis channel layer, but no REDIS_URL: processes do not share sessions
    ws_gateway.W015  (deploy) in-memory layer on a named worker of several
    ws_gateway.W020  (deploy) anonymous access open to any Host
    ws_gateway.E001/E002/W001  terminal backend; W101/W102  SQLite
"""

from __future__ import annotations

import difflib
import ipaddress
import os
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from .agent.base import BACKENDS as AGENT_BACKENDS
from .conf import DEFAULTS, DEPRECATED, IN_MEMORY_LAYER, SCHEMA, gateway_settings, shape_problems
from .terminal.backends import BACKENDS, SandboxBackend

SQLITE_ENGINE = "django.db.backends.sqlite3"


@register(Tags.database)
def check_sqlite_settings(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """SQLite without immediate transactions (or WAL) fails concurrent writes with 'database is locked'.

    ws_gateway's own writes are safe either way (see :mod:`ws_gateway.writes`);
    these warnings are about the rest of the host project's writes."""
    return sqlite_warnings(settings.DATABASES, tuning=gateway_settings.SQLITE_TUNING)


def sqlite_warnings(databases: Mapping[str, Mapping[str, Any]], *, tuning: bool) -> list[Warning]:
    """W101 (no IMMEDIATE transactions) and W102 (no WAL, and the app does not set it) per SQLite alias."""
    warnings: list[Warning] = []
    for alias, db in databases.items():
        if db.get("ENGINE") != SQLITE_ENGINE:
            continue
        options = db.get("OPTIONS") or {}
        if str(options.get("transaction_mode") or "").upper() != "IMMEDIATE":
            warnings.append(
                Warning(
                    f"SQLite database '{alias}' begins transactions DEFERRED: under concurrent "
                    "sessions a transaction that reads and then writes fails with 'database is locked'.",
                    hint=f"Set DATABASES['{alias}']['OPTIONS']['transaction_mode'] = 'IMMEDIATE' "
                    "(and a 'timeout' of some seconds).",
                    id="ws_gateway.W101",
                )
            )
        wal = "journal_mode=wal" in str(options.get("init_command") or "").lower().replace(" ", "")
        if not wal and not tuning:
            warnings.append(
                Warning(
                    f"SQLite database '{alias}' does not use WAL: readers and the writer block each other.",
                    hint="Add 'PRAGMA journal_mode=WAL;' to "
                    f"DATABASES['{alias}']['OPTIONS']['init_command'], "
                    "or leave WS_GATEWAY['SQLITE_TUNING'] on.",
                    id="ws_gateway.W102",
                )
            )
    return warnings


@register(Tags.security)
def terminal_backend_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The chosen terminal backend can run commands: with ``sandbox``, bwrap creates a sandbox here."""
    name = gateway_settings.TERMINAL_BACKEND
    if name not in BACKENDS:
        return [
            Error(
                f"WS_GATEWAY['TERMINAL_BACKEND'] is {name!r}",
                hint=f"Choose one of: {', '.join(BACKENDS)}.",
                id="ws_gateway.E001",
            )
        ]
    if name != "sandbox":
        return []
    sandbox = SandboxBackend()
    problem = sandbox.probe()
    if problem is not None:
        return [
            Error(
                f"The sandbox terminal backend cannot run commands: {problem}",
                hint=(
                    "Install bubblewrap (Debian: apt-get install bubblewrap) and allow user namespaces "
                    "(sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0; in a "
                    "container, a seccomp profile that permits clone(CLONE_NEWUSER)), or set "
                    "TERMINAL_BACKEND to 'local'."
                ),
                id="ws_gateway.E002",
            )
        ]
    if os.geteuid() == 0:
        return [
            Warning(
                "The gateway runs as root: the kernel does not enforce SANDBOX['nproc'] (RLIMIT_NPROC) for "
                "root, so a sandboxed command may start any number of processes.",
                hint="Run the gateway as an unprivileged user.",
                id="ws_gateway.W001",
            )
        ]
    return []


def _user_settings() -> dict[str, Any]:
    return getattr(settings, "WS_GATEWAY", None) or {}


@register()
def settings_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every WS_GATEWAY key is known and has the type and shape of conf.SCHEMA."""
    user = getattr(settings, "WS_GATEWAY", None)
    if user is None:
        return []
    if not isinstance(user, dict):
        return [Error(f"WS_GATEWAY is a {type(user).__name__}, expected a dict", id="ws_gateway.E010")]
    messages: list[CheckMessage] = []
    known = [*DEFAULTS, *DEPRECATED]
    for key in user:
        if key in DEPRECATED:
            continue
        if key not in DEFAULTS:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = (
                f"Did you mean {close[0]!r}?" if close else "See ws_gateway/conf.py DEFAULTS for every key."
            )
            messages.append(
                Warning(
                    f"WS_GATEWAY[{key!r}] is not a ws_gateway setting: it is ignored.",
                    hint=hint,
                    id="ws_gateway.W010",
                )
            )
            continue
        if key == "RATE_LIMIT":
            continue  # its own check, E011
        for problem in shape_problems(user[key], SCHEMA[key]):
            messages.append(
                Error(
                    f"WS_GATEWAY[{key!r}] {problem}.",
                    hint=f"Default: {DEFAULTS[key]!r}.",
                    id="ws_gateway.E010",
                )
            )
    return messages


@register()
def rate_limit_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """RATE_LIMIT is None or {"rate": N, "burst": N} (else every connection would fail)."""
    value = _user_settings().get("RATE_LIMIT", DEFAULTS["RATE_LIMIT"])
    problems = shape_problems(value, SCHEMA["RATE_LIMIT"])
    if not problems:
        return []
    return [
        Error(
            f"WS_GATEWAY['RATE_LIMIT'] {'; '.join(problems)}.",
            hint='Use {"rate": REQUESTS_PER_SECOND, "burst": MAX_BURST} (numbers above 0), or None for '
            "no limit.",
            id="ws_gateway.E011",
        )
    ]


@register(Tags.security)
def metrics_allow_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """METRICS_ALLOW holds networks ("127.0.0.1/32"): a bad one would fail every /metrics request."""
    value = _user_settings().get("METRICS_ALLOW", DEFAULTS["METRICS_ALLOW"])
    if shape_problems(value, SCHEMA["METRICS_ALLOW"]):
        return []  # settings_check reports the shape
    bad = []
    for network in value:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            bad.append(network)
    if not bad:
        return []
    return [
        Error(
            f"WS_GATEWAY['METRICS_ALLOW'] has entries that are not networks: {', '.join(map(repr, bad))}.",
            hint='Use addresses or CIDR networks, e.g. ["127.0.0.1/32", "10.0.0.0/8"].',
            id="ws_gateway.E016",
        )
    ]


@register()
def agent_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """AGENT names a backend that can be imported and accepts AGENT_OPTIONS."""
    user = _user_settings()
    spec = user.get("AGENT", DEFAULTS["AGENT"])
    options = user.get("AGENT_OPTIONS", DEFAULTS["AGENT_OPTIONS"])
    if not isinstance(spec, str) or not isinstance(options, dict):
        return []  # E010 says so
    path = AGENT_BACKENDS.get(spec, spec)
    extra = ' (pip install "ws-gateway[openai]")' if spec == "openai" else ""
    try:
        cls = import_string(path)
    except ImportError as exc:
        return [
            Error(
                f"WS_GATEWAY['AGENT'] {spec!r} cannot be imported: {exc}",
                hint=f"Use 'demo', 'openai'{extra} or the dotted path of a backend class.",
                id="ws_gateway.E012",
            )
        ]
    try:
        backend = cls(**options)
    except (TypeError, ValueError) as exc:
        return [
            Error(
                f"WS_GATEWAY['AGENT'] {spec!r} does not accept WS_GATEWAY['AGENT_OPTIONS']: {exc}",
                id="ws_gateway.E012",
            )
        ]
    configured = getattr(backend, "configured", None)
    if callable(configured) and not configured():
        return [
            Warning(
                f"WS_GATEWAY['AGENT'] {spec!r} has no model configured: every turn fails until a "
                "client chooses one (config.set model).",
                hint="Set WS_GATEWAY['AGENT_OPTIONS']['model'] (the hermes_site project: OPENAI_MODEL).",
                id="ws_gateway.W012",
            )
        ]
    return []


def _layer_backend() -> str | None:
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    default = layers.get("default") if isinstance(layers, dict) else None
    return default.get("BACKEND") if isinstance(default, dict) else None


@register()
def channel_layer_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A channel layer is configured, and it agrees with REDIS_URL (one process, or a Redis cluster)."""
    backend = _layer_backend()
    redis_url = _user_settings().get("REDIS_URL")
    hint = (
        "CHANNEL_LAYERS = ws_gateway.conf.channel_layers(REDIS_URL) and WS_GATEWAY['REDIS_URL'] = REDIS_URL."
    )
    if backend is None:
        return [
            Error(
                "No channel layer: CHANNEL_LAYERS['default'] is not set, so no socket can be served "
                "and /healthz answers 503.",
                hint=hint,
                id="ws_gateway.E013",
            )
        ]
    if redis_url and backend == IN_MEMORY_LAYER:
        return [
            Error(
                "WS_GATEWAY['REDIS_URL'] is set but the channel layer is in-memory: the processes "
                "would share session ownership in Redis but could not reach each other.",
                hint=hint,
                id="ws_gateway.E014",
            )
        ]
    if not redis_url and backend.startswith("channels_redis."):
        return [
            Warning(
                "The channel layer is Redis but WS_GATEWAY['REDIS_URL'] is not set: each process "
                "keeps its own sessions, so a client that reconnects to another process loses them.",
                hint=hint,
                id="ws_gateway.W014",
            )
        ]
    return []


@register(Tags.compatibility, deploy=True)
def workers_layer_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A named worker (WORKER_ID: one of gateway_workers' or docker compose's) on the in-memory layer."""
    return in_memory_workers_warnings(2 if gateway_settings.WORKER_ID else 1)


def in_memory_workers_warnings(workers: int) -> list[CheckMessage]:
    """W015 when ``workers`` processes would run on the in-memory layer (also used by gateway_workers)."""
    if workers < 2 or _layer_backend() != IN_MEMORY_LAYER:
        return []
    return [
        Warning(
            "Several gateway workers on the in-memory channel layer: each process is alone, so a "
            "session lives only on the worker that created it and a client sent to another one "
            "loses it (4001/4007).",
            hint="Run one process, or set REDIS_URL: CHANNEL_LAYERS = ws_gateway.conf.channel_layers"
            "(REDIS_URL) and WS_GATEWAY['REDIS_URL'] = REDIS_URL.",
            id="ws_gateway.W015",
        )
    ]


@register(Tags.security, deploy=True)
def anonymous_any_host_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Anonymous access (single-tenant) with ALLOWED_HOSTS '*': anyone who reaches the port is the owner."""
    if not gateway_settings.ALLOW_ANONYMOUS or "*" not in settings.ALLOWED_HOSTS:
        return []
    return [
        Warning(
            "ALLOW_ANONYMOUS is on and ALLOWED_HOSTS contains '*': anyone who can reach the server, "
            "under any host name, is the one anonymous user and can read and drive every session "
            "(and run commands).",
            hint="Set WS_GATEWAY['ALLOW_ANONYMOUS'] = False and give people tokens "
            "(manage.py gateway_token) or logins, or bind to 127.0.0.1 and list the real host names.",
            id="ws_gateway.W020",
        )
    ]
