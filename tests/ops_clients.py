"""Clients of the operator's side of a gateway: the admin (login, forms) and /metrics."""

from __future__ import annotations

import functools
import http.client
import http.cookiejar
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.services import ROOT


def create_superuser(env: dict[str, str], username: str, password: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", username, "--email", ""],
        cwd=ROOT,
        env={**env, "DJANGO_SUPERUSER_PASSWORD": password},
        check=True,
        capture_output=True,
    )


class _SourceHandler(urllib.request.HTTPHandler):
    """Connects from a given local address (e.g. 127.0.0.2: a client that is not the proxy)."""

    def __init__(self, source_ip: str) -> None:
        super().__init__()
        self.source_ip = source_ip

    def http_open(self, req: Any) -> Any:
        return self.do_open(
            functools.partial(http.client.HTTPConnection, source_address=(self.source_ip, 0)), req
        )


class Browser:
    """A cookie-keeping HTTP client (optionally from a given source address), like a browser."""

    def __init__(self, base: str, source_ip: str | None = None) -> None:
        self.base = base.rstrip("/")
        self.cookies = http.cookiejar.CookieJar()
        handlers: list[Any] = [urllib.request.HTTPCookieProcessor(self.cookies)]
        if source_ip:
            handlers.append(_SourceHandler(source_ip))
        self.opener = urllib.request.build_opener(*handlers)

    def request(
        self, path: str, data: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body, headers=headers or {})
        try:
            with self.opener.open(req, timeout=20) as response:
                return response.status, dict(response.headers), response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read().decode(errors="replace")

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.cookies if c.name == name), None)

    def post_form(self, path: str, page: str, fields: dict[str, str]) -> tuple[int, dict[str, str], str]:
        """POST ``fields`` with the CSRF token of ``page`` (the form it came from), as a browser would."""
        token = csrf_token(page)
        headers = {"Origin": self.base, "Referer": self.base + path}
        return self.request(path, {"csrfmiddlewaretoken": token, **fields}, headers=headers)

    def login(self, username: str, password: str) -> str:
        status, _, page = self.request("/admin/login/")
        assert status == 200, page[:500]
        status, _, page = self.post_form(
            "/admin/login/?next=/admin/",
            page,
            {"username": username, "password": password, "next": "/admin/"},
        )
        assert status == 200 and "Log out" in page, (status, page[:2000])
        return page


def csrf_token(page: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert found, "no CSRF token in the page"
    return found.group(1)


def scrape(base: str, browser: Browser | None = None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics as {(sample name, sorted labels): value}."""
    if browser is not None:
        status, _, text = browser.request("/metrics")
    else:
        with urllib.request.urlopen(base.rstrip("/") + "/metrics", timeout=10) as response:
            status, text = response.status, response.read().decode()
    assert status == 200, text[:300]
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    """A sample's value (0 when absent: a labelled counter not incremented yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
