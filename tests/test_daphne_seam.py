"""The seam onto daphne's internals (ws_gateway/transport/daphne.py) against the real daphne.

If an upgrade of daphne, autobahn or Twisted removes a private attribute the seam relies
on, these tests fail and name it: the gateway would still work, but without the direct
write, the unsent-bytes probe (slow consumers) and the size limit at the frame header.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from autobahn import util as autobahn_util
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from ws_gateway.testing import GatewayClient
from ws_gateway.transport import daphne as seam


async def test_a_real_daphne_socket_has_every_private_attribute_the_seam_uses(gateways: Any) -> None:
    gateway = gateways.new("memory")
    async with GatewayClient.connect(gateway.url) as client:
        assert await client.call("gateway.ping") == {"ok": True}
    log = gateway.log_text()
    assert "daphne seam off" not in log, log[log.index("daphne seam off") :].splitlines()[0]
    assert "daphne seam on" in log


def test_the_installed_daphne_autobahn_and_twisted_are_versions_the_seam_was_tested_with() -> None:
    assert seam.untested_versions() == {}


def test_missing_names_each_absent_attribute() -> None:
    class Bare:
        pass

    absent = seam.missing(Bare(), Bare())
    assert absent == [f"protocol.{n}" for n in seam.PROTOCOL_NEEDS] + [
        f"transport.{n}" for n in seam.TRANSPORT_NEEDS
    ]


def test_text_frames_built_by_the_seam_parse_as_rfc_6455_frames_of_every_length_class() -> None:
    for size in (0, 1, 125, 126, 65535, 65536, 70000):
        payload = ("é" * size).encode("utf-8")[:size]
        reader = StreamReader()
        reader.feed_data(seam.text_frame(payload))
        parser = Frame.parse(reader.read_exact, mask=False)
        try:
            next(parser)
            raise AssertionError("frame incomplete")
        except StopIteration as done:
            frame = done.value
        assert frame.opcode is Opcode.TEXT and frame.fin and frame.data == payload


def test_autobahn_log_arguments_are_deferred_and_format_as_before() -> None:
    modules = [importlib.import_module(name) for name in seam.AUTOBAHN_LOGGING_MODULES]
    helpers = [(m, h) for m in modules for h in seam.AUTOBAHN_LOG_HELPERS]
    assert all(hasattr(m, h) for m, h in helpers) and hasattr(modules[0], "pformat")  # autobahn's names
    seam.defer_autobahn_log_arguments()
    assert all(isinstance(getattr(m, h), functools.partial) for m, h in helpers)
    assert modules[0].pformat([("a", 1)]) == "[('a', 1)]"
    assert seam.defer_autobahn_log_arguments() == 0  # once
    protocol = modules[0]
    deferred = protocol.hlval(1234)
    assert isinstance(deferred, seam._Formatted)
    assert f"{deferred}" == str(deferred) == autobahn_util.hlval(1234)
    assert f"{protocol.hltype(test_missing_names_each_absent_attribute)}" == autobahn_util.hltype(
        test_missing_names_each_absent_attribute
    )
