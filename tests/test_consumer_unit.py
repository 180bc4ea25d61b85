"""GatewayConsumer in-process (WebsocketCommunicator, in-memory layer): PROTOCOL.md sections 1-4.

"No reply" is asserted by order, never by waiting: frames are handled in arrival
order, so when a ping sent afterwards is the next frame out, nothing was
answered before it.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from tests.protocol_cases import (
    ERROR_CASES,
    HANDLER_ERROR,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    SILENT_FRAMES,
    UNICODE_TEXT,
    check_case,
    check_error,
    check_ready,
    check_result,
    ping,
    req,
)
from ws_gateway import __version__, skins
from ws_gateway.events.outbox import outbox
from ws_gateway.rpc import dispatch
from ws_gateway.transport.consumer import GatewayConsumer

TIMEOUT = 5


@pytest.fixture(autouse=True)
def memory_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture(autouse=True)
def configured_skin(monkeypatch: pytest.MonkeyPatch) -> None:
    """The skin is the configured one, whatever a ``config.set skin`` elsewhere in this process chose."""
    monkeypatch.setattr(skins, "_current", None)


class Socket:
    """One in-process connection, frame by frame."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.comm = communicator
        self.ready: dict[str, Any] | None = None

    async def send(self, frame: str | bytes) -> None:
        key = "bytes" if isinstance(frame, bytes) else "text"
        await self.comm.send_input({"type": "websocket.receive", key: frame})

    async def recv_text(self) -> str:
        return await self.comm.receive_from(TIMEOUT)

    async def recv(self) -> Any:
        return json.loads(await self.recv_text())

    async def exchange(self, frame: str | bytes) -> Any:
        await self.send(frame)
        return await self.recv()

    async def assert_silent(self) -> None:
        """Nothing was sent before the answer to a ping sent now."""
        check_result(await self.exchange(ping("barrier")), "barrier", {"ok": True})


@asynccontextmanager
async def connect(consumer: type[GatewayConsumer] = GatewayConsumer) -> AsyncIterator[Socket]:
    """An accepted connection whose gateway.ready has not been read yet."""
    # A Host in ALLOWED_HOSTS, as every real handshake carries (a missing one is refused).
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/api/ws", headers=[(b"host", b"localhost")])
    connected, _ = await communicator.connect(TIMEOUT)
    assert connected
    try:
        yield Socket(communicator)
    finally:
        if not communicator.future.done():  # a timed-out receive cancels it; a crash ends it
            await communicator.disconnect(timeout=TIMEOUT)


@pytest.fixture
async def sock() -> AsyncIterator[Socket]:
    """A connection past its gateway.ready (kept as ``sock.ready``)."""
    async with connect() as s:
        s.ready = await s.recv()
        yield s


async def ready_payload() -> dict[str, Any]:
    async with connect() as s:
        return check_ready(await s.recv())


# -- gateway.ready (sections 1 and 3) ------------------------------------------


async def test_ready_is_the_first_frame_even_if_the_client_speaks_first() -> None:
    async with connect() as s:
        await s.send(ping(1))
        check_ready(await s.recv())
        check_result(await s.recv(), 1, {"ok": True})


async def test_ready_payload_with_default_settings(settings: Any) -> None:
    settings.WS_GATEWAY = {**settings.WS_GATEWAY, "SKIN": "default", "WORKER_ID": ""}
    payload = await ready_payload()
    assert payload["skin"] == skins.get("default") and payload["skin"]["name"] == "default"
    assert payload["replay_epoch"] == outbox.epoch
    assert payload["server"] == {
        "name": "ws_gateway",
        "version": __version__,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }


async def test_ready_payload_follows_settings(settings: Any) -> None:
    settings.WS_GATEWAY = {**settings.WS_GATEWAY, "SKIN": "slate", "WORKER_ID": "unit-worker-7"}
    payload = await ready_payload()
    assert payload["skin"] == skins.get("slate") and payload["skin"]["tool_prefix"] == ":"
    assert payload["server"]["worker"] == "unit-worker-7"


async def test_ready_skin_is_an_empty_object_without_a_skin(settings: Any) -> None:
    settings.WS_GATEWAY = {**settings.WS_GATEWAY, "SKIN": "no-such-skin"}
    assert (await ready_payload())["skin"] == {}


class ReadySendFails(GatewayConsumer):
    async def send(self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False):
        if text_data and '"gateway.ready"' in text_data:
            raise ConnectionError("socket gone")
        await super().send(text_data, bytes_data, close)


async def test_failed_ready_send_closes_the_connection_and_nothing_else_happens() -> None:
    communicator = WebsocketCommunicator(ReadySendFails.as_asgi(), "/api/ws")
    assert (await communicator.connect(TIMEOUT))[0]
    assert (await communicator.receive_output(TIMEOUT))["type"] == "websocket.close"
    await communicator.send_to(text_data=ping(1))
    await communicator.send_input({"type": "websocket.disconnect", "code": 1006})
    await communicator.wait(TIMEOUT)  # the consumer handled both messages, in order, and ended
    assert communicator.output_queue.empty(), "the ping after a failed ready was answered"


# -- framing (section 1) -------------------------------------------------------


@pytest.mark.parametrize("frame", SILENT_FRAMES.values(), ids=SILENT_FRAMES.keys())
async def test_frames_that_get_no_reply(sock: Socket, frame: str) -> None:
    await sock.send(frame)
    await sock.assert_silent()


@pytest.mark.parametrize("padding", ["\n", "\r\n", " \t\n", "\n\n"])
async def test_surrounding_whitespace_and_trailing_newline_are_tolerated(sock: Socket, padding: str) -> None:
    check_result(await sock.exchange(padding + ping("p") + padding), "p", {"ok": True})
    check_result(await sock.exchange(req("e", "test.echo", {"a": 1}) + padding), "e", {"params": {"a": 1}})


async def test_non_ascii_is_sent_unescaped(sock: Socket) -> None:
    await sock.send(req("u", "test.echo", {"text": UNICODE_TEXT}))
    text = await sock.recv_text()
    assert UNICODE_TEXT in text and "\\u" not in text
    check_result(json.loads(text), "u", {"params": {"text": UNICODE_TEXT}})


@pytest.mark.parametrize("data", [ping(1).encode(), b"\x00\xff"], ids=["json bytes", "junk bytes"])
async def test_binary_frame_is_refused_and_the_connection_stays_open(sock: Socket, data: bytes) -> None:
    check_error(await sock.exchange(data), INVALID_REQUEST, None)
    check_result(await sock.exchange(ping(2)), 2, {"ok": True})


# -- envelopes and errors (section 2) ------------------------------------------


@pytest.mark.parametrize("case", ERROR_CASES.values(), ids=ERROR_CASES.keys())
async def test_error_codes(sock: Socket, case: Any) -> None:
    check_case(await sock.exchange(case.frame), case)
    check_result(await sock.exchange(ping("alive")), "alive", {"ok": True})


async def test_unknown_method_message_names_the_method(sock: Socket) -> None:
    frame = await sock.exchange(req(1, "nope.nothing"))
    assert frame["error"] == {"code": METHOD_NOT_FOUND, "message": "unknown method: nope.nothing"}


async def test_frame_too_deeply_nested_to_parse_is_a_parse_error(sock: Socket) -> None:
    check_error(await sock.exchange("[" * 100_000), PARSE_ERROR, None)
    check_result(await sock.exchange(ping(1)), 1, {"ok": True})


@pytest.mark.parametrize(
    "frame",
    [req(1, "test.echo"), '{"jsonrpc": "2.0", "id": 1, "method": "test.echo", "params": null}'],
    ids=["missing", "null"],
)
async def test_missing_or_null_params_mean_an_empty_object(sock: Socket, frame: str) -> None:
    check_result(await sock.exchange(frame), 1, {"params": {}})


@pytest.mark.parametrize("extra", [{"jsonrpc": "1.0"}, {"jsonrpc": None}, {}], ids=["1.0", "null", "missing"])
async def test_jsonrpc_member_is_not_validated(sock: Socket, extra: dict[str, Any]) -> None:
    for method, result in [("gateway.ping", {"ok": True}), ("test.echo", {"params": {}})]:
        frame = {"id": 5, "method": method, **extra}
        check_result(await sock.exchange(json.dumps(frame)), 5, result)


@pytest.mark.parametrize(
    "request_id",
    ["abc", "", "srq-0123456789ab", 0, -5, 2**53 + 1, 1.5, {"k": [1, "x"]}],
)
async def test_id_is_echoed_verbatim(sock: Socket, request_id: Any) -> None:
    check_result(await sock.exchange(ping(request_id)), request_id, {"ok": True})
    check_result(await sock.exchange(req(request_id, "test.echo", {})), request_id, {"params": {}})
    check_error(await sock.exchange(req(request_id, "no.such")), METHOD_NOT_FOUND, request_id)
    check_error(await sock.exchange(req(request_id, "test.fail")), HANDLER_ERROR, request_id)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"method": "gateway.ping"}', {"ok": True}),
        ('{"jsonrpc": "2.0", "id": null, "method": "gateway.ping"}', {"ok": True}),
        ('{"method": "test.echo", "params": {"x": 1}}', {"params": {"x": 1}}),
        ('{"method": "test.fail"}', HANDLER_ERROR),
        ('{"method": "test.fail", "params": {"code": 4002}}', 4002),
    ],
    ids=["ping", "explicit null id", "inline", "handler error", "app error"],
)
async def test_request_without_id_is_answered_with_null_id(sock: Socket, frame: str, expected: Any) -> None:
    answer = await sock.exchange(frame)
    if isinstance(expected, dict):
        check_result(answer, None, expected)
    else:
        check_error(answer, expected, None)


async def test_handler_exception_is_a_handler_error_and_the_connection_stays_open(sock: Socket) -> None:
    answer = await sock.exchange(req(3, "test.fail"))
    check_error(answer, HANDLER_ERROR, 3, "boom")
    assert answer["error"] == {"code": HANDLER_ERROR, "message": "handler error: boom"}
    check_result(await sock.exchange(req(4, "test.echo")), 4, {"params": {}})


async def test_rpc_error_keeps_its_application_code(sock: Socket) -> None:
    answer = await sock.exchange(req("x", "test.fail", {"code": 4002}))
    assert answer == {"jsonrpc": "2.0", "id": "x", "error": {"code": 4002, "message": "requested failure"}}


async def test_exception_escaping_dispatch_is_an_internal_error(sock: Socket, monkeypatch: Any) -> None:
    def crash(spec: Any, call: Any) -> Any:
        raise RuntimeError("dispatch broke")

    monkeypatch.setattr(dispatch, "_invoke", crash)
    check_error(await sock.exchange(req(9, "test.echo")), INTERNAL_ERROR, 9)
    monkeypatch.undo()
    check_result(await sock.exchange(req(10, "test.echo")), 10, {"params": {}})


@pytest.mark.parametrize("kind", ["unencodable", "not_an_object"])
async def test_handler_result_that_breaks_the_envelope_is_an_internal_error(sock: Socket, kind: str) -> None:
    check_error(await sock.exchange(req(11, "test.bad_result", {"kind": kind})), INTERNAL_ERROR, 11)
    check_result(await sock.exchange(req(12, "test.echo")), 12, {"params": {}})


# -- batches (section 2, beyond) -------------------------------------------------


def batch(*frames: str) -> str:
    return "[" + ", ".join(frames) + "]"


async def test_batch_answers_inline_in_one_array_and_pool_singly(sock: Socket) -> None:
    await sock.send(
        batch(
            req("echo", "test.echo", {"n": 1}),
            ping("ping"),
            req("fail", "test.fail"),
            req("nope", "no.such"),
            req("params", "test.echo", [1]),
            "42",
            '{"id": "srq-0123456789ab", "result": {}}',
            req("pool", "test.sleep", {"ms": 0}),
        )
    )
    frames = [await sock.recv(), await sock.recv()]
    [array] = [f for f in frames if isinstance(f, list)]
    [single] = [f for f in frames if isinstance(f, dict)]
    check_result(single, "pool", {"slept": True})
    assert len(array) == 6, array
    answers = {frame["id"]: frame for frame in array}
    check_result(answers["echo"], "echo", {"params": {"n": 1}})
    check_result(answers["ping"], "ping", {"ok": True})
    check_error(answers["fail"], HANDLER_ERROR, "fail")
    check_error(answers["nope"], METHOD_NOT_FOUND, "nope")
    check_error(answers["params"], -32602, "params")
    check_error(answers[None], INVALID_REQUEST, None, "expected an object")
    await sock.assert_silent()


async def test_empty_batch_is_a_single_invalid_request(sock: Socket) -> None:
    check_error(await sock.exchange("[]"), INVALID_REQUEST, None)
    check_error(await sock.exchange(" [ ]\n"), INVALID_REQUEST, None)


async def test_batch_of_invalid_elements_is_answered_in_an_array(sock: Socket) -> None:
    answer = await sock.exchange(batch("1", "[]", '{"id": 3}'))
    assert isinstance(answer, list) and len(answer) == 3
    for frame, request_id in zip(answer, [None, None, 3], strict=True):
        check_error(frame, INVALID_REQUEST, request_id)


async def test_batch_of_pool_calls_is_answered_singly(sock: Socket) -> None:
    await sock.send(batch(req("a", "test.sleep", {"ms": 0}), req("b", "test.sleep", {"ms": 0})))
    frames = [await sock.recv(), await sock.recv()]
    assert sorted(f["id"] for f in frames) == ["a", "b"]
    for frame in frames:
        check_result(frame, frame["id"], {"slept": True})
    await sock.assert_silent()


async def test_batch_of_client_replies_gets_nothing(sock: Socket) -> None:
    await sock.send(batch(SILENT_FRAMES["client result"], SILENT_FRAMES["client error"]))
    await sock.assert_silent()


async def test_internal_error_in_a_batch_only_answers_its_element(sock: Socket) -> None:
    answer = await sock.exchange(batch(req("bad", "test.bad_result"), req("ok", "test.echo")))
    assert isinstance(answer, list) and len(answer) == 2, answer
    answers = {frame["id"]: frame for frame in answer}
    check_error(answers["bad"], INTERNAL_ERROR, "bad")
    check_result(answers["ok"], "ok", {"params": {}})


# -- rate limit (beyond) -----------------------------------------------------------


async def test_requests_over_the_rate_limit_get_4290_and_ping_is_not_counted(settings: Any) -> None:
    settings.WS_GATEWAY = {**settings.WS_GATEWAY, "RATE_LIMIT": {"rate": 0.001, "burst": 3}}
    async with connect() as s:
        await s.recv()
        answers = [await s.exchange(req(i, "test.echo")) for i in range(4)]
        assert [a.get("result") is not None for a in answers] == [True, True, True, False]
        limited = answers[3]["error"]
        assert limited["code"] == 4290 and limited["data"]["retry_after_ms"] > 0
        check_result(await s.exchange(ping("p")), "p", {"ok": True})


async def test_a_message_over_the_byte_limit_is_closed_with_4509_by_the_app_itself(settings: Any) -> None:
    """Servers other than daphne hand the app whatever they accept: the app counts UTF-8 bytes."""
    settings.WS_GATEWAY = {**getattr(settings, "WS_GATEWAY", {}), "MAX_MESSAGE_BYTES": 4000}
    async with connect() as s:
        s.ready = await s.recv()

        def frame(n: int, text: str) -> str:
            return json.dumps({"id": n, "method": "test.echo", "params": {"x": text}}, ensure_ascii=False)

        check_result(await s.exchange(frame(1, "é" * 1900)), 1, {"params": {"x": "é" * 1900}})
        await s.send(frame(2, "é" * 2000))  # 2,000 characters, over 4,000 bytes
        closed = await s.comm.receive_output(TIMEOUT)
        assert closed == {"type": "websocket.close", "code": 4509}
