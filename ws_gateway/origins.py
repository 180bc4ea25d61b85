"""Which handshakes a browser page may make: the ``Host`` and ``Origin`` checks (PROTOCOL.md 11).

A web page the user visits can open a WebSocket to any address, the gateway on
``127.0.0.1`` included, and the browser sends the page's ``Origin`` with it
(cross-site WebSocket hijacking). A name the attacker controls can also be made
to resolve to ``127.0.0.1`` (DNS rebinding): the browser then sends the
attacker's name as ``Host`` and the page counts as same-origin. So:

- the ``Host`` of every handshake must be one of Django's ``ALLOWED_HOSTS``
  (the same rule Django applies to HTTP requests, ``validate_host``);
- a socket with an ``Origin`` header (a browser) is accepted only when that
  origin is the page's own host (its host and port equal the handshake's
  ``Host``, either scheme) or is listed in ``WS_GATEWAY["ALLOWED_ORIGINS"]``;
  ``Origin: null`` (sandboxed frames, ``file:`` pages, some redirects) never is;
- a socket without ``Origin`` is not a browser page and is not affected.

Channels' ``AllowedHostsOriginValidator`` is not used: it refuses before the
handshake is accepted (the client sees an HTTP 403 instead of the close code
4503), does not check ``Host``, and matches origins against host patterns
rather than against the page's own host.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from .conf import gateway_settings

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def header(scope: dict[str, Any], name: bytes) -> str | None:
    """The first value of a handshake header (latin-1, as HTTP headers are), or None."""
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def allowed_hosts() -> list[str]:
    """``ALLOWED_HOSTS`` as Django applies it (localhost variants when DEBUG leaves it empty)."""
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def host_allowed(host: str) -> bool:
    domain, _ = split_domain_port(host)
    return bool(domain) and validate_host(domain, allowed_hosts())


def _host_port(netloc: str, default_port: int | None) -> tuple[str, int | None] | None:
    """(host, port) of ``host[:port]``; None when it does not parse."""
    try:
        parts = urlsplit("//" + netloc)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.rstrip("."), port if port is not None else default_port


def same_host(origin: str, host: str) -> bool:
    """Whether ``origin`` (``scheme://host[:port]``) names the host and port of ``host``.

    Scheme-agnostic (a TLS-terminating proxy forwards ``https`` pages to a plain
    server); a missing port means the default one of the origin's scheme."""
    parts = urlsplit(origin)
    if parts.scheme not in DEFAULT_PORTS or parts.path not in ("", "/") or parts.query or parts.username:
        return False
    default = DEFAULT_PORTS[parts.scheme]
    ours = _host_port(parts.netloc, default)
    theirs = _host_port(host, default)
    return ours is not None and ours == theirs


def listed(origin: str) -> bool:
    extra = gateway_settings.ALLOWED_ORIGINS or ()
    return origin.rstrip("/").lower() in {o.rstrip("/").lower() for o in extra}


def refusal(scope: dict[str, Any]) -> str | None:
    """Why this handshake may not go on (``forbidden host`` / ``... origin``), or None."""
    host = header(scope, b"host")
    if not host:
        return "no host header"
    if not host_allowed(host):
        return "host not in ALLOWED_HOSTS"
    origin = header(scope, b"origin")
    if origin is None:
        return None
    if origin.strip().lower() == "null":
        return "null origin"
    if same_host(origin, host) or listed(origin):
        return None
    return "foreign origin"


def is_browser(scope: dict[str, Any]) -> bool:
    """A socket opened by a web page (browsers always send ``Origin`` on WebSocket handshakes)."""
    return header(scope, b"origin") is not None
