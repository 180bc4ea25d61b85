"""The gateway's settings: one object, documented defaults, overridden by
``settings.WS_GATEWAY`` (in the spirit of DRF's ``api_settings``).

    from ws_gateway.conf import gateway_settings
    gateway_settings.ORPHAN_GRACE_S

Changing ``settings.WS_GATEWAY`` (``override_settings`` in tests) resets it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

# Long default lists of DEFAULTS, documented there.
SAFE_COMMANDS = [
    "echo", "printf", "ls", "pwd", "date", "sleep", "true", "false", "exit", "wait", "seq",
    "wc", "head", "tail", "cat", "grep",
]  # fmt: skip
SECRET_FILE_PATTERNS = [
    ".env", ".env.*", "*.env", ".envrc", "*.sqlite", "*.sqlite3", "*.db", "*.db-journal",
    "*.db-wal", "*.sqlite3-wal", "*.sqlite3-shm", "*.pem", "*.key", "*.p12", "*.pfx",
    "*.keystore", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", ".ssh", ".gnupg",
    ".aws", ".azure", ".kube", ".docker", ".netrc", ".pgpass", ".my.cnf", ".npmrc",
    ".pypirc", ".git-credentials", "*secret*", "*credential*", "*password*",
    "settings.py", "settings_*.py", "*_settings.py", "local_settings.py",
]  # fmt: skip
COMMAND_ENV_PASSTHROUGH = [
    "PATH", "HOME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TERM", "TZ",
    "USER", "LOGNAME", "SHELL",
]  # fmt: skip
SANDBOX_RO_BINDS = [
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/alternatives",
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
    "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/hosts", "/etc/resolv.conf",
    "/etc/ssl/certs", "/etc/ca-certificates", "/etc/mime.types",
]  # fmt: skip

DEFAULTS: dict[str, Any] = {
    # WebSocket path (without leading slash) served by ws_gateway.routing.
    "PATH": "api/ws",
    # Threads running inline methods (each connection uses at most one at a time).
    "INLINE_WORKERS": 32,
    # Threads running pool methods (slow ones), shared by the process.
    "POOL_WORKERS": 8,
    # Threads building agents in the background.
    "BUILD_WORKERS": 4,
    # Seconds a clientless session is kept before it is reclaimed; 0 = never.
    "ORPHAN_GRACE_S": 20.0,
    # A parked running session with no activity for this long is interrupted.
    "STALE_TURN_S": 600.0,
    # Idle sessions older than this are reclaimed (idle_timeout).
    "IDLE_TTL_S": 6 * 3600.0,
    # How often the idle-TTL sweep runs.
    "SWEEP_INTERVAL_S": 60.0,
    # Caps on live sessions (0 = no cap), checked when a session is created or resumed (made
    # live): over a cap the call is answered 4090 with data.reason. Per process ("process"): the
    # least recently active clientless idle sessions are reclaimed first (lru_evict). Per user
    # ("user", counted in each process; all anonymous clients are one user): that user's
    # clientless idle sessions are reclaimed first. Per connection ("connection"): the sessions
    # the socket is attached to. Subagent children count for their user and the process.
    "MAX_LIVE_SESSIONS": 1000,
    "MAX_SESSIONS_PER_USER": 64,
    "MAX_SESSIONS_PER_CONNECTION": 32,
    # Streaming deltas of one session are merged and flushed this often.
    "DELTA_FLUSH_MS": 33.0,
    # Event log (replay): per-session caps, never below the protocol's floor.
    "EVENT_LOG_MAX_EVENTS": 4096,
    "EVENT_LOG_MAX_BYTES": 8 * 1024 * 1024,
    "EVENT_LOG_MIN_EVENTS": 512,
    "EVENT_LOG_MIN_BYTES": 4 * 1024 * 1024,
    # Process-wide cap over all in-memory logs.
    "EVENT_LOG_TOTAL_BYTES": 512 * 1024 * 1024,
    # Frames queued for one socket before it is closed as a slow consumer (4008).
    "OUTBOUND_MAX_FRAMES": 20000,
    # Largest transcript (rows) that session.resume will load (else 4130).
    "MAX_RESUME_MESSAGES": 20000,
    # Seconds session.close waits for a running turn.
    "CLOSE_WAIT_S": 5.0,
    # Allow connections without an authenticated user (cookie session or bearer token). Anonymous
    # mode is single-tenant: every anonymous client is the same person (sees and resumes the same
    # sessions). A server with several people sets it False and gives each a token or a login.
    "ALLOW_ANONYMOUS": True,
    # Browser origins (["https://app.example"]) allowed to open a socket besides the page's own
    # host (an Origin whose host:port is the handshake's Host, itself in ALLOWED_HOSTS). Any other
    # Origin, and "Origin: null", is closed with 4503; sockets without Origin are not affected.
    "ALLOWED_ORIGINS": [],
    # Requests per second a connection may make (a token bucket: "rate" per second, bursts of
    # "burst"); over it a request is answered 4290 with data.retry_after_ms and the socket stays
    # open. gateway.ping and replies to server requests are not counted. None = no limit.
    "RATE_LIMIT": {"rate": 50, "burst": 200},
    # Largest WebSocket message in either direction, in bytes of UTF-8. Inbound, a larger one
    # closes the socket with 4509 (the consumer sets daphne's/autobahn's own limits from this
    # on every accepted socket, so daphne's --websocket-max-* flags do not apply). Outbound,
    # nothing larger is sent: long results are paged, long streamed text is split into several
    # events, and a response that still cannot fit becomes error 4131 (docs/protocol.md).
    # 1 MiB is also the default receive limit of common clients (Python websockets). Keep it
    # at 64 KiB or more: every event and snapshot must fit with its envelope.
    "MAX_MESSAGE_BYTES": 1024 * 1024,
    # Largest prompt text (UTF-8 bytes) prompt.submit / session.steer accept; over it: 4002.
    # Below MAX_MESSAGE_BYTES, so a prompt that fits this limit also fits one frame.
    "MAX_PROMPT_BYTES": 1_000_000,
    # Skin sent in gateway.ready and served by config.get skin.
    "SKIN": "default",
    # Extra skins {name: {colors, branding, ...}} added to the built-in ones.
    "SKINS": {},
    # Agent backend: "demo", "openai", or a dotted path to a backend class.
    "AGENT": "demo",
    # Options handed to the backend (base_url, api_key, model, ...).
    "AGENT_OPTIONS": {},
    # Seconds an agent build may take before it fails (5032).
    "AGENT_BUILD_TIMEOUT_S": 60.0,
    # Name of this worker in gateway.ready (default: host:pid).
    "WORKER_ID": "",
    # Seconds an interactive request waits for a person before it is declined.
    "REQUEST_TIMEOUTS_S": {"approval": 300.0, "clarify": 300.0, "sudo": 120.0, "secret": 300.0},
    # Choices offered by approval.request (remove "session"/"always" to forbid them).
    "APPROVAL_CHOICES": ["once", "session", "always", "deny"],
    # -- terminal commands (docs/commands.md) --
    # The command policy (ws_gateway.agent.policy) lets a command run without asking only when
    # every simple command in it is one of these, used read-only on paths inside the session's
    # cwd; everything else asks. A name added here is trusted with any option; its operands
    # are still checked as paths.
    "SAFE_COMMANDS": SAFE_COMMANDS,
    # File names (fnmatch patterns, case-insensitive, matched against every component of a
    # path inside the cwd) that a command may not read, list or search without asking.
    "SECRET_FILE_PATTERNS": SECRET_FILE_PATTERNS,
    # [regex, description] pairs matched against the raw command text: a match always asks
    # (even a command the policy would let run, and in a sandbox with auto_approve), and gives
    # the approval's description. None = the built-in list (ws_gateway.agent.approvals.
    # DEFAULT_PATTERNS). EXTRA_ adds to whichever list is used.
    "DANGEROUS_PATTERNS": None,
    "EXTRA_DANGEROUS_PATTERNS": [],
    # May a client set approval_mode "off" (no approval asked at all)? Else config.set -> 4002.
    "ALLOW_APPROVAL_OFF": False,
    # shell.exec (the hermes client's "!command" line): runs what the command policy lets run
    # without asking (or what the session pre-approved); anything else is refused (4002), as the
    # call has no approval step. False turns the method off (4002 for every call).
    "SHELL_EXEC": True,
    # The environment of every command (foreground and background, every backend) is built
    # from nothing: these variables copied from the server's environment when set, then
    # COMMAND_ENV {name: value} from the deployment, then the session's own secrets (!secret).
    "COMMAND_ENV_PASSTHROUGH": COMMAND_ENV_PASSTHROUGH,
    "COMMAND_ENV": {},
    # Where commands run: "local" (a process group of the server's user in the session's cwd)
    # or "sandbox" (bubblewrap; see SANDBOX). A system check fails when the sandbox cannot run.
    "TERMINAL_BACKEND": "local",
    # The sandbox backend's options, merged key by key over these defaults:
    #   bwrap         the bubblewrap binary
    #   network       keep the host's network (default: a private network namespace, no network)
    #   auto_approve  run commands without asking (DANGEROUS_PATTERNS still ask)
    #   cpu_s memory_mb nproc file_mb   limits (RLIMIT_CPU, _AS, _NPROC, _FSIZE) of each command;
    #                 the kernel does not enforce nproc for a server running as root
    #   output_mb     a command printing more than this is killed
    #   uid gid       the user and group inside the sandbox
    #   ro_binds      host paths mounted read-only (missing ones are skipped); besides these the
    #                 sandbox sees only the session's cwd (read-write), a private /tmp, /dev, /proc
    "SANDBOX": {
        "bwrap": "bwrap",
        "network": False,
        "auto_approve": False,
        "cpu_s": 60,
        "memory_mb": 1024,
        "nproc": 256,
        "file_mb": 1024,
        "output_mb": 64,
        "uid": 65534,
        "gid": 65534,
        "ro_binds": SANDBOX_RO_BINDS,
    },
    # Terminal tool: seconds before a foreground command is killed, output kept (chars: the
    # first and last halves, with a marker between them when it is longer).
    "COMMAND_TIMEOUT_S": 120.0,
    "COMMAND_OUTPUT_CHARS": 16000,
    # Background processes: output tail kept per process (chars).
    "PROCESS_TAIL_CHARS": 4000,
    # Redis for the cluster (ownership, forwarding, durable replay); None = one process.
    "REDIS_URL": None,
    # Keyword arguments of the cluster's redis.asyncio client (retry, timeouts, ...); None = the
    # measured defaults of redis_options() below (reconnect and retry through a Redis restart).
    "REDIS_OPTIONS": None,
    # Seconds an owner's lease on a session lasts without renewal (renewed every third).
    "LEASE_S": 6.0,
    # Seconds a forwarded call may take before the caller gets an error. An owner that dies
    # meanwhile is noticed sooner: its heartbeat stops and, once its lease lapses, the call fails
    # over (the session is adopted), so a dead owner costs at most LEASE_S + LEASE_S / 3.
    "FORWARD_TIMEOUT_S": 30.0,
    # Graceful drain on SIGTERM: seconds running turns get to finish before they are interrupted.
    "DRAIN_S": 20.0,
    # Install a SIGTERM handler that drains (above) and then exits the process with os._exit:
    # opt-in, as it takes over the host's signal handling (on in hermes_site, whose workers
    # gateway_workers runs).
    "DRAIN_ON_SIGTERM": False,
    # SQLite (any host project's DATABASES): set WAL and a busy timeout on each new connection.
    # The app's own writes are immediate transactions, retried while the database is locked,
    # for up to SQLITE_BUSY_TIMEOUT_S; either way. Other databases are not touched.
    "SQLITE_TUNING": True,
    "SQLITE_BUSY_TIMEOUT_S": 30.0,
    # Bytes a socket may have unsent (server buffers) before it is closed as a slow consumer (4008).
    "OUTBOUND_MAX_BYTES": 8 * 1024 * 1024,
    # Client networks (CIDR) that may read /metrics; staff users may too. Loopback by default: a
    # Prometheus on the same host (or the container's network, e.g. "172.16.0.0/12") scrapes each
    # worker's own port. Behind a proxy that sets X-Forwarded-For (daphne --proxy-headers), the
    # address is the original client's, so the proxy should not pass /metrics on (deploy/nginx.conf).
    "METRICS_ALLOW": ["127.0.0.1/32", "::1/128"],
    # gateway_workers starts daphne with --proxy-headers: the client address and scheme come from
    # X-Forwarded-For / X-Forwarded-Proto. Only behind a proxy that sets them (deploy/nginx.conf);
    # a client that reaches a worker directly could claim any address.
    "PROXY_HEADERS": False,
}


@dataclass(frozen=True)
class Field:
    """The shape a ``WS_GATEWAY`` key must have (checked by ``manage.py check``, ws_gateway.checks)."""

    types: tuple[type, ...]
    #: None is allowed (besides ``types``).
    nullable: bool = False
    #: Numbers: the smallest allowed value (inclusive), and whether 0 is excluded.
    minimum: float | None = None
    positive: bool = False
    #: Lists: the type of every item; dicts: the type of every value (numbers: above 0 when
    #: ``positive_items``).
    items: tuple[type, ...] | None = None
    positive_items: bool = False
    #: Dicts: the keys allowed, and those required.
    keys: tuple[str, ...] | None = None
    required: tuple[str, ...] = ()
    #: Lists: the allowed items.
    choices: tuple[Any, ...] | None = None


NUMBER = (int, float)
_COUNT = Field((int,), minimum=1)
_CAP = Field((int,), minimum=0)  # 0 = no cap
_SECONDS = Field(NUMBER, minimum=0)
_POSITIVE_SECONDS = Field(NUMBER, positive=True)
_FLAG = Field((bool,))
_TEXT = Field((str,))
_TEXTS = Field((list, tuple), items=(str,))

# One entry per key of DEFAULTS (a test keeps them in step).
SCHEMA: dict[str, Field] = {
    "PATH": _TEXT,
    "INLINE_WORKERS": _COUNT,
    "POOL_WORKERS": _COUNT,
    "BUILD_WORKERS": _COUNT,
    "ORPHAN_GRACE_S": _SECONDS,
    "STALE_TURN_S": _POSITIVE_SECONDS,
    "IDLE_TTL_S": _POSITIVE_SECONDS,
    "SWEEP_INTERVAL_S": _POSITIVE_SECONDS,
    "MAX_LIVE_SESSIONS": _CAP,
    "MAX_SESSIONS_PER_USER": _CAP,
    "MAX_SESSIONS_PER_CONNECTION": _CAP,
    "DELTA_FLUSH_MS": _SECONDS,
    "EVENT_LOG_MAX_EVENTS": _COUNT,
    "EVENT_LOG_MAX_BYTES": _COUNT,
    "EVENT_LOG_MIN_EVENTS": _COUNT,
    "EVENT_LOG_MIN_BYTES": _COUNT,
    "EVENT_LOG_TOTAL_BYTES": _COUNT,
    "OUTBOUND_MAX_FRAMES": _COUNT,
    "MAX_RESUME_MESSAGES": _COUNT,
    "CLOSE_WAIT_S": _SECONDS,
    "ALLOW_ANONYMOUS": _FLAG,
    "ALLOWED_ORIGINS": _TEXTS,
    "RATE_LIMIT": Field(
        (dict,),
        nullable=True,
        items=NUMBER,
        positive_items=True,
        keys=("rate", "burst"),
        required=("rate", "burst"),
    ),
    "MAX_MESSAGE_BYTES": Field((int,), minimum=64 * 1024),
    "MAX_PROMPT_BYTES": _COUNT,
    "SKIN": _TEXT,
    "SKINS": Field((dict,), items=(dict,)),
    "AGENT": _TEXT,
    "AGENT_OPTIONS": Field((dict,)),
    "AGENT_BUILD_TIMEOUT_S": _POSITIVE_SECONDS,
    "WORKER_ID": _TEXT,
    "REQUEST_TIMEOUTS_S": Field(
        (dict,), items=NUMBER, positive_items=True, keys=("approval", "clarify", "sudo", "secret")
    ),
    "APPROVAL_CHOICES": Field((list, tuple), items=(str,), choices=("once", "session", "always", "deny")),
    "SAFE_COMMANDS": _TEXTS,
    "SECRET_FILE_PATTERNS": _TEXTS,
    "DANGEROUS_PATTERNS": Field((list, tuple), nullable=True, items=(list, tuple)),
    "EXTRA_DANGEROUS_PATTERNS": Field((list, tuple), items=(list, tuple)),
    "ALLOW_APPROVAL_OFF": _FLAG,
    "SHELL_EXEC": _FLAG,
    "COMMAND_ENV_PASSTHROUGH": _TEXTS,
    "COMMAND_ENV": Field((dict,), items=(str,)),
    "TERMINAL_BACKEND": _TEXT,
    "SANDBOX": Field((dict,), keys=tuple(DEFAULTS["SANDBOX"])),
    "COMMAND_TIMEOUT_S": _POSITIVE_SECONDS,
    "COMMAND_OUTPUT_CHARS": _COUNT,
    "PROCESS_TAIL_CHARS": _COUNT,
    "REDIS_URL": Field((str,), nullable=True),
    "REDIS_OPTIONS": Field((dict,), nullable=True),
    "LEASE_S": _POSITIVE_SECONDS,
    "FORWARD_TIMEOUT_S": _POSITIVE_SECONDS,
    "DRAIN_S": _SECONDS,
    "DRAIN_ON_SIGTERM": _FLAG,
    "SQLITE_TUNING": _FLAG,
    "SQLITE_BUSY_TIMEOUT_S": _SECONDS,
    "OUTBOUND_MAX_BYTES": _COUNT,
    "METRICS_ALLOW": _TEXTS,
    "PROXY_HEADERS": _FLAG,
}


def shape_problems(value: Any, field: Field) -> list[str]:
    """What is wrong with ``value`` for ``field``, in words (empty: nothing)."""
    if value is None:
        return [] if field.nullable else ["is None"]
    if not _is(value, field.types):
        return [f"is a {type(value).__name__}, expected {_names(field.types)}"]
    problems: list[str] = []
    if isinstance(value, NUMBER):
        if field.positive and value <= 0:
            problems.append(f"is {value!r}, expected a number above 0")
        if field.minimum is not None and value < field.minimum:
            problems.append(f"is {value!r}, expected at least {field.minimum:g}")
    if isinstance(value, dict):
        if field.keys is not None:
            unknown = sorted(str(k) for k in value if k not in field.keys)
            if unknown:
                problems.append(f"has unknown keys {unknown}, allowed: {list(field.keys)}")
        missing = [k for k in field.required if k not in value]
        if missing:
            problems.append(f"lacks the keys {missing}")
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, list | tuple):
        items = ((i, item) for i, item in enumerate(value))
        if field.choices is not None:
            bad = [item for item in value if item not in field.choices]
            if bad:
                problems.append(f"has {bad}, allowed: {list(field.choices)}")
    else:
        items = ()
    if field.items is not None:
        for key, item in items:
            if not _is(item, field.items):
                problems.append(f"[{key!r}] is a {type(item).__name__}, expected {_names(field.items)}")
            elif field.positive_items and item <= 0:
                problems.append(f"[{key!r}] is {item!r}, expected a number above 0")
    return problems


def _is(value: Any, types: tuple[type, ...]) -> bool:
    # A bool is an int to Python, never a count or a number of seconds here.
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def _names(types: tuple[type, ...]) -> str:
    return " or ".join(
        "number" if t is float else t.__name__ for t in types if not (t is int and float in types)
    )


def redis_options() -> dict[str, Any]:
    """Client options that ride out a Redis restart or blip: reconnect and retry, never fail the call.

    Used by the cluster's own client (``REDIS_OPTIONS`` None) and by :func:`channel_layers`.
    Needs the ``redis`` extra; it is imported here, not at the top, so a one-process
    deployment without Redis never needs the package.
    """
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return {
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), 8),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        "health_check_interval": 15,
    }


IN_MEMORY_LAYER = "channels.layers.InMemoryChannelLayer"
REDIS_LAYERS = {
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "core": "channels_redis.core.RedisChannelLayer",
}


def channel_layers(redis_url: str | None = None, layer: str = "pubsub") -> dict[str, Any]:
    """``CHANNEL_LAYERS`` for the gateway: in-memory for one process (``redis_url`` None or empty),
    else the ``pubsub`` (default: measured faster and cheaper, README) or ``core`` Redis layer, with
    the settings that avoid the measured traps.

        CHANNEL_LAYERS = channel_layers(os.environ.get("REDIS_URL"))
    """
    if not redis_url:
        # The default capacity (100) silently drops streamed events under load.
        return {"default": {"BACKEND": IN_MEMORY_LAYER, "CONFIG": {"capacity": 10000}}}
    if layer not in REDIS_LAYERS:
        raise ValueError(f"layer must be one of {', '.join(REDIS_LAYERS)}, not {layer!r}")
    host: dict[str, Any] = {"address": redis_url, **redis_options()}
    config: dict[str, Any] = {"hosts": [host]}
    if layer == "core":
        # No socket timeout on the blocking pop (idle consumers would die with 1011), a pool that
        # survives mass reconnects, and room for bursts of streamed events.
        host.update(socket_timeout=None, max_connections=1000)
        config.update(capacity=10000, expiry=60)
    return {"default": {"BACKEND": REDIS_LAYERS[layer], "CONFIG": config}}


# Old names still read (with a DeprecationWarning) when the new one is not set.
DEPRECATED = {"MAX_FRAME_CHARS": "MAX_MESSAGE_BYTES"}


class GatewaySettings:
    """Attribute access to WS_GATEWAY with DEFAULTS as the fallback."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in DEFAULTS:
            raise AttributeError(f"unknown ws_gateway setting: {name}")
        if name not in self._cache:
            user = getattr(settings, "WS_GATEWAY", {}) or {}
            value = user.get(name, DEFAULTS[name])
            for old, new in DEPRECATED.items():
                if new == name and name not in user and old in user:
                    warnings.warn(f"WS_GATEWAY[{old!r}] is deprecated: use {new!r}", DeprecationWarning, 2)
                    value = user[old]
            self._cache[name] = value
        return self._cache[name]

    def reload(self) -> None:
        self._cache.clear()


gateway_settings = GatewaySettings()


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "WS_GATEWAY":
        gateway_settings.reload()


setting_changed.connect(_reload)
