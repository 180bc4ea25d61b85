"""The Host and Origin rules of a handshake (ws_gateway.origins), case by case; the real-daphne
behaviour (close 4503, the log line) is in test_socket_safety.py."""

from __future__ import annotations

from typing import Any

import pytest

from ws_gateway import origins


def scope(host: str | None, origin: str | None = None) -> dict[str, Any]:
    headers = []
    if host is not None:
        headers.append((b"host", host.encode("latin-1")))
    if origin is not None:
        headers.append((b"origin", origin.encode("latin-1")))
    return {"type": "websocket", "headers": headers}


@pytest.fixture(autouse=True)
def hosts(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", ".example.org"]
    settings.WS_GATEWAY = {**settings.WS_GATEWAY, "ALLOWED_ORIGINS": ["https://app.example/"]}


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("127.0.0.1:8000", None),  # not a browser
        ("127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("127.0.0.1:8000", "https://127.0.0.1:8000"),  # either scheme (TLS ends at a proxy)
        ("LOCALHOST:8000", "http://localhost:8000"),
        ("[::1]:8000", "http://[::1]:8000"),
        ("gw.example.org", "https://gw.example.org"),  # default ports on both sides
        ("gw.example.org:443", "https://gw.example.org"),
        ("gw.example.org", "http://gw.example.org:80"),
        ("127.0.0.1:8000", "https://app.example"),  # listed (trailing slash and case ignored)
        ("127.0.0.1:8000", "HTTPS://APP.EXAMPLE"),
    ],
)
def test_accepted(host: str, origin: str | None) -> None:
    assert origins.refusal(scope(host, origin)) is None


@pytest.mark.parametrize(
    ("host", "origin", "reason"),
    [
        (None, None, "no host header"),
        ("rebind.evil.example:8000", None, "host not in ALLOWED_HOSTS"),
        ("rebind.evil.example:8000", "http://rebind.evil.example:8000", "host not in ALLOWED_HOSTS"),
        ("not a host", None, "host not in ALLOWED_HOSTS"),
        ("127.0.0.1:8000", "null", "null origin"),
        ("127.0.0.1:8000", "http://evil.example", "foreign origin"),
        ("127.0.0.1:8000", "http://127.0.0.1:8001", "foreign origin"),  # another port
        ("127.0.0.1:8000", "http://localhost:8000", "foreign origin"),  # another name
        ("gw.example.org", "https://gw.example.org:8443", "foreign origin"),
        ("gw.example.org", "http://gw.example.org:443", "foreign origin"),
        ("127.0.0.1:8000", "ftp://127.0.0.1:8000", "foreign origin"),
        ("127.0.0.1:8000", "http://127.0.0.1:8000/path", "foreign origin"),
        ("127.0.0.1:8000", "http://user@127.0.0.1:8000", "foreign origin"),
        ("127.0.0.1:8000", "http://127.0.0.1:notaport", "foreign origin"),
        ("127.0.0.1:8000", "", "foreign origin"),
        ("127.0.0.1:8000", "https://app.example.evil", "foreign origin"),
    ],
)
def test_refused(host: str | None, origin: str | None, reason: str) -> None:
    assert origins.refusal(scope(host, origin)) == reason


def test_debug_with_no_allowed_hosts_allows_localhost_variants_only(settings: Any) -> None:
    settings.ALLOWED_HOSTS, settings.DEBUG = [], True
    assert origins.refusal(scope("app.localhost:8000")) is None
    assert origins.refusal(scope("evil.example:8000")) == "host not in ALLOWED_HOSTS"
