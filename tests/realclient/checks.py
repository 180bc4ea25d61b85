"""The tier's verdict: no error line on the client's screen, no error answer in the frames."""

from __future__ import annotations

from collections.abc import Iterable

from tests.realclient.proxy import Exchange, RecordingProxy
from tests.realclient.tui import Tui


def settled(proxy: RecordingProxy, timeout: float = 10.0) -> list[Exchange]:
    """The exchanges once every request sent so far has its response (polls may be in flight)."""

    def answered(p: RecordingProxy) -> list[Exchange] | None:
        found = p.exchanges()
        return found if all(x.response is not None for x in found) else None

    return proxy.wait(answered, timeout, "a response to every request")


def error_summary(exchanges: Iterable[Exchange]) -> list[str]:
    """One line per distinct (method, error): count and the first request's params."""
    groups: dict[tuple[str, str], list[Exchange]] = {}
    for exchange in exchanges:
        if exchange.error is not None:
            key = (exchange.method, f"{exchange.error.get('code')}: {exchange.error.get('message')}")
            groups.setdefault(key, []).append(exchange)
    return [f"{len(found)}x {found[0]}" for found in groups.values()]


def problems(proxy: RecordingProxy, *tuis: Tui, allowed: Iterable[str] = ()) -> list[str]:
    """What is wrong: requests answered with an error (``allowed``: methods excused), and the
    ``error:`` lines the clients show."""
    allowed = set(allowed)
    exchanges = settled(proxy)
    errors = error_summary(x for x in exchanges if x.method not in allowed)
    lines = [f"{tui.name}: {line}" for tui in tuis for line in tui.error_lines()]
    found = []
    if errors:
        found.append("requests answered with an error:\n  " + "\n  ".join(errors))
    if lines:
        found.append("error lines on the client's screen:\n  " + "\n  ".join(lines))
    return found


def assert_clean(proxy: RecordingProxy, *tuis: Tui, allowed: Iterable[str] = ()) -> None:
    """Every request got a non-error response and no client shows an ``error:`` line."""
    found = problems(proxy, *tuis, allowed=allowed)
    assert not found, "\n".join(found)
