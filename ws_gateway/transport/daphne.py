"""The one seam onto daphne's internals: how much a socket has not yet sent, a direct
write (frames built here, sent to the socket at once), and the server's own message-size limit.

daphne never makes ``send`` wait: what the kernel does not take piles up in
the Twisted transport's buffer, unseen by the application. This looks into
that buffer (through the ``send`` callable daphne hands the app) so a client
that stops reading can be closed (4008) before it grows server memory. With
servers whose ``send`` applies backpressure (uvicorn), the connection's own
bounded queue does the job and there is nothing to look into.

Everything here relies on private attributes of autobahn's protocol and
Twisted's transport (:data:`PROTOCOL_NEEDS`, :data:`TRANSPORT_NEEDS`), and on
Channels' middleware keeping daphne's ``send`` as ``real_send`` (:func:`server_send`). When one
is missing the view is not used (the safe path: ASGI ``send``, no unsent-bytes
probe) and that is logged as an error naming it; versions outside the ones this
was written against (:data:`TESTED_MAJORS`) are logged once as a warning.
``tests/test_daphne_seam.py`` fails loudly when either happens.
"""

from __future__ import annotations

import functools
import logging
import struct
import sys
from collections.abc import Callable
from importlib import metadata
from typing import Any

log = logging.getLogger(__name__)

# Private attributes the view uses, on autobahn's protocol and on Twisted's TCP transport.
PROTOCOL_NEEDS = (
    "maxMessagePayloadSize",
    "maxFramePayloadSize",
    "failByDrop",
    "_fail_connection",
    "closeHandshakeTimeout",
    "state",
    "STATE_OPEN",
    "sendMessage",
    "_perMessageCompress",
    "send_queue",
)
TRANSPORT_NEEDS = (
    "dataBuffer",
    "offset",
    "_tempDataLen",
    "abortConnection",
    "socket",
    "connected",
    "disconnecting",
    "write",
)
# Major versions this seam was written and tested against (requirements.txt allows daphne 4).
TESTED_MAJORS = {"daphne": (4,), "autobahn": (24, 25, 26), "twisted": (24, 25, 26), "channels": (4,)}

_reported: set[str] = set()


def missing(protocol: Any, transport: Any) -> list[str]:
    """The attributes the view needs that ``protocol`` or ``transport`` lacks (empty: all there)."""
    absent = [f"protocol.{name}" for name in PROTOCOL_NEEDS if not hasattr(protocol, name)]
    return absent + [f"transport.{name}" for name in TRANSPORT_NEEDS if not hasattr(transport, name)]


@functools.cache  # read once: importlib.metadata parses package files (~1 ms a connect)
def untested_versions() -> dict[str, str]:
    """Installed versions of daphne, autobahn, Twisted and Channels outside :data:`TESTED_MAJORS`."""
    out = {}
    for package, majors in TESTED_MAJORS.items():
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
        major = version.split(".", 1)[0]
        if not major.isdigit() or int(major) not in majors:
            out[package] = version
    return out


def _report_once(key: str, level: int, message: str, *args: Any) -> None:
    if key not in _reported:
        _reported.add(key)
        log.log(level, message, *args)


class TransportView:
    """The Twisted transport (and autobahn protocol) under one daphne WebSocket."""

    def __init__(self, protocol: Any, transport: Any) -> None:
        self._protocol = protocol
        self._transport = transport
        self.refused_too_large = False  # an inbound message over the limit closed the socket

    def limit_messages(self, max_bytes: int, close_code: int) -> None:
        """Refuse inbound messages over ``max_bytes`` with a close frame carrying ``close_code``.

        Set before the handshake completes, so it covers the first frame. autobahn enforces the
        limit as it reads (a 20 MB frame is refused at its header, never buffered); by default it
        drops the TCP connection (the client sees 1006) or sends 1009, so here its failure path
        sends a proper close instead and names the app's code."""
        protocol = self._protocol
        if not hasattr(protocol, "maxMessagePayloadSize"):
            return
        protocol.maxMessagePayloadSize = max_bytes
        protocol.maxFramePayloadSize = max_bytes
        protocol.failByDrop = False
        fail = getattr(protocol, "_fail_connection", None)
        too_big = getattr(protocol, "CLOSE_STATUS_CODE_MESSAGE_TOO_BIG", 1009)
        if fail is None:
            return

        def fail_connection(code: int = 1001, reason: str = "going away") -> None:
            if code == too_big:
                self.refused_too_large = True
                code, reason = close_code, "message too large"
            fail(code, reason)

        protocol._fail_connection = fail_connection

    def allow_slow_close(self, seconds: float) -> None:
        """Give the peer ``seconds`` to read up to our close frame before the connection drops.

        The close frame waits behind everything the peer has not read yet; autobahn's default
        handshake timeout would reset the connection before a slow reader ever sees it."""
        if hasattr(self._protocol, "closeHandshakeTimeout"):
            self._protocol.closeHandshakeTimeout = seconds

    def send_now(self, text: str) -> None:
        """Write a text frame at once, skipping the coroutine and task hops of ASGI ``send``.
        Dropped when the socket is no longer open.

        A server's text frame is a small header and the UTF-8 text (unmasked, RFC 6455 5.2),
        so it is built here rather than by autobahn's ``sendMessage``, which formats debug
        lines for every frame whatever the log level; and when nothing is queued on the
        transport it goes to the socket at once, where Twisted would first register the
        socket for writing and send on the next turn of the loop (two ``epoll_ctl`` calls a
        frame). Compression (never negotiated by daphne) keeps autobahn's path."""
        protocol = self._protocol
        if protocol.state != protocol.STATE_OPEN:
            return
        payload = text.encode("utf-8")
        if protocol._perMessageCompress is not None or protocol.send_queue:
            protocol.sendMessage(payload, False)
            return
        self._write(text_frame(payload))

    def _write(self, data: bytes) -> None:
        t = self._transport
        if not self.unsent_bytes() and t.connected and not t.disconnecting:
            try:
                sent = t.socket.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                sent = 0  # Twisted's own write finds the error and closes the connection
            if sent == len(data):
                return
            data = data[sent:]
        t.write(data)

    def unsent_bytes(self) -> int:
        t = self._transport
        return int(len(t.dataBuffer) - t.offset + t._tempDataLen)

    def abort(self) -> None:
        """Drop the connection without waiting for the buffer to drain."""
        self._transport.abortConnection()


def text_frame(payload: bytes) -> bytes:
    """One unfragmented, unmasked WebSocket text frame (RFC 6455 5.2) carrying ``payload``."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + payload


def server_send(send: Callable[..., Any]) -> Callable[..., Any]:
    """The server's own ``send`` under Channels' session middleware wrappers.

    The wrappers only act on HTTP responses; a WebSocket frame can skip them."""
    for _ in range(8):
        inner = getattr(getattr(send, "__self__", None), "real_send", None)
        if inner is None:
            break
        send = inner
    return send


# autobahn's modules whose debug lines style their arguments before the logger drops them.
AUTOBAHN_LOGGING_MODULES = ("autobahn.websocket.protocol", "autobahn.twisted.websocket")
AUTOBAHN_LOG_HELPERS = ("hltype", "hlval")


class _Formatted:
    """A log argument formatted only when its line is written."""

    __slots__ = ("_args", "_fn")

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._fn, self._args = fn, args

    def __format__(self, spec: str) -> str:
        return format(self._fn(*self._args), spec)

    def __str__(self) -> str:
        return str(self._fn(*self._args))


def _one_line(obj: Any, *args: Any, **kwargs: Any) -> str:
    return repr(obj)


def defer_autobahn_log_arguments() -> int:
    """autobahn computes the (``click``-styled) arguments of a debug line on every frame it
    receives and sends, and at every connect, before its logger drops the line: ~10 % of a
    small call's CPU. In the modules that use them only as log arguments, its two helpers are
    replaced by deferred ones; and its protocol module, which pretty-prints its whole
    configuration for such a line at every connect (~18 % of a connect's CPU), prints it on
    one line (``repr``: the same text, unindented). Returns how many names were replaced (0
    once done, or when gone)."""
    done = 0
    for name in AUTOBAHN_LOGGING_MODULES:
        module = sys.modules.get(name)
        for helper in AUTOBAHN_LOG_HELPERS:
            fn = getattr(module, helper, None)
            if fn is not None and not isinstance(fn, functools.partial):
                setattr(module, helper, functools.partial(_Formatted, fn))
                done += 1
    protocol = sys.modules.get(AUTOBAHN_LOGGING_MODULES[0])
    if getattr(protocol, "pformat", _one_line) is not _one_line:
        protocol.pformat = _one_line  # type: ignore[union-attr]
        done += 1
    return done


def transport_view(send: Callable[..., Any]) -> TransportView | None:
    """A view of the transport behind daphne's ``send``, or None for other servers (and for a
    daphne whose internals moved: logged as an error, the safe path is used)."""
    send = server_send(send)
    protocol = send.args[0] if isinstance(send, functools.partial) and send.args else None
    transport = getattr(protocol, "transport", None)
    if transport is None or not hasattr(protocol, "sendMessage"):
        return None  # not daphne's WebSocket protocol: another server
    untested = untested_versions()
    if untested:
        _report_once("versions", logging.WARNING, "daphne seam: untested versions %s", untested)
    absent = missing(protocol, transport)
    if absent:
        _report_once(
            "missing", logging.ERROR, "daphne seam off: private attributes gone: %s", ", ".join(absent)
        )
        return None
    if "on" not in _reported:
        defer_autobahn_log_arguments()
    _report_once("on", logging.INFO, "daphne seam on: direct writes, unsent-bytes probe, size limit")
    return TransportView(protocol, transport)
