"""The wire protocol through a real daphne (PROTOCOL.md sections 1-4), once per channel layer.

Nothing here waits for time to pass or measures it: "no reply" is shown by a
ping sent afterwards being the next reply, and "does not delay" by the order
in which replies arrive.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from typing import Any

import websockets

from tests.protocol_cases import (
    ERROR_CASES,
    HANDLER_ERROR,
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
from ws_gateway.conf import DEFAULTS
from ws_gateway.testing import DEFAULT_TIMEOUT, GatewayClient

PONG = {"ok": True}


def replies(client: GatewayClient) -> list[dict[str, Any]]:
    """Every response received, in arrival order (arrays flattened; events, server requests left out)."""
    items = itertools.chain.from_iterable(f if isinstance(f, list) else [f] for f in client.frames[1:])
    return [item for item in items if "method" not in item]


def reply_ids(client: GatewayClient) -> list[Any]:
    return [r.get("id") for r in replies(client)]


async def send(client: GatewayClient, *frames: str | bytes) -> None:
    for frame in frames:
        await client.send_raw(frame)


async def exchange(client: GatewayClient, *frames: str | bytes, until: Any) -> list[dict[str, Any]]:
    """Send ``frames``; the replies that arrive up to and including the one with id ``until``."""
    start = len(replies(client))
    await send(client, *frames)
    await client.wait_for(lambda: until in reply_ids(client)[start:])
    new = replies(client)[start:]
    return new[: [r.get("id") for r in new].index(until) + 1]


async def collect(client: GatewayClient, *frames: str | bytes, count: int) -> list[dict[str, Any]]:
    """Send ``frames``; the first ``count`` replies that follow."""
    start = len(replies(client))
    await send(client, *frames)
    await client.wait_for(lambda: len(replies(client)) >= start + count)
    return replies(client)[start : start + count]


async def wait_ids(client: GatewayClient, *ids: Any, timeout: float = DEFAULT_TIMEOUT) -> list[Any]:
    """Wait until every id in ``ids`` is answered; the reply ids in arrival order."""
    await client.wait_for(lambda: set(ids) <= set(reply_ids(client)), timeout)
    return reply_ids(client)


async def assert_silent(client: GatewayClient, *frames: str | bytes) -> None:
    """``frames`` get no reply: the ping sent after them is the next reply."""
    [pong] = await exchange(client, *frames, ping("silent"), until="silent")
    check_result(pong, "silent", PONG)


async def recv_reply(ws: Any) -> str:
    """The next response on a raw socket (events and server requests skipped)."""
    while True:
        text = await asyncio.wait_for(ws.recv(), DEFAULT_TIMEOUT)
        if "method" not in json.loads(text):
            return text


# -- gateway.ready (sections 1 and 3) ------------------------------------------


async def test_ready_is_the_first_frame_even_if_the_client_speaks_first(gateway):
    async with websockets.connect(gateway.url) as ws:
        await ws.send(ping(1))
        check_ready(json.loads(await asyncio.wait_for(ws.recv(), DEFAULT_TIMEOUT)))
        check_result(json.loads(await recv_reply(ws)), 1, PONG)


async def test_ready_payload_is_the_same_deployment_for_every_connection(gateway):
    async with GatewayClient.connect(gateway.url) as a, GatewayClient.connect(gateway.url) as b:
        first, second = check_ready(a.ready), check_ready(b.ready)
    assert first["replay_epoch"] == second["replay_epoch"]
    assert first["server"] == second["server"]
    assert first["skin"] == second["skin"] != {}


async def test_socket_has_tcp_nodelay(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        assert await client.call("test.tcp_nodelay") == {"nodelay": True}


# -- framing (section 1) -------------------------------------------------------


async def test_frames_are_utf8_and_not_escaped(gateway):
    async with websockets.connect(gateway.url) as ws:
        await ws.recv()  # gateway.ready
        for request_id, ensure_ascii in [("escaped", True), ("raw", False)]:
            frame = {"id": request_id, "method": "test.echo", "params": {"text": UNICODE_TEXT}}
            await ws.send(json.dumps(frame, ensure_ascii=ensure_ascii))
            text = await recv_reply(ws)
            assert UNICODE_TEXT in text and "\\u" not in text, text
            check_result(json.loads(text), request_id, {"params": {"text": UNICODE_TEXT}})


async def test_blank_frames_and_client_replies_get_no_reply(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        await assert_silent(client, *SILENT_FRAMES.values())


async def test_surrounding_whitespace_and_trailing_newline_are_tolerated(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        await send(client, ping("p") + "\n", " " + req("e", "test.echo", {"a": 1}) + "\r\n")
        await wait_ids(client, "p", "e")
        check_result(replies(client)[0], "p", PONG)
        check_result(replies(client)[1], "e", {"params": {"a": 1}})


async def test_binary_frame_is_refused_and_the_connection_stays_open(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        error, pong = await exchange(client, ping(1).encode(), ping(2), until=2)
        check_error(error, INVALID_REQUEST, None)
        check_result(pong, 2, PONG)


# -- envelopes and errors (section 2) ------------------------------------------


async def test_every_invalid_frame_gets_its_error_with_its_id(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        cases = list(ERROR_CASES.values())
        *errors, pong = await exchange(client, *(c.frame for c in cases), ping("end"), until="end")
        assert len(errors) == len(cases)
        for error, case in zip(errors, cases, strict=True):
            check_case(error, case)
        check_result(pong, "end", PONG)


async def test_lone_surrogate_in_a_method_name_still_gets_its_error(gateway):
    """`\\ud800` is a legal JSON escape but has no UTF-8 form; -32601 echoes the name back."""
    async with GatewayClient.connect(gateway.url) as client:
        answers = await exchange(client, '{"id": "s", "method": "\\ud800"}', ping("after"), until="after")
        assert [a["id"] for a in answers] == ["s", "after"], answers
        check_error(answers[0], METHOD_NOT_FOUND, "s", "unknown method: ")


async def test_frame_too_deeply_nested_to_parse_is_a_parse_error_not_a_close(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        error, pong = await exchange(client, "[" * 100_000, ping("after"), until="after")
        check_error(error, PARSE_ERROR, None)
        check_result(pong, "after", PONG)


async def test_handler_errors_keep_the_connection_open(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        await send(
            client, req("boom", "test.fail"), req("app", "test.fail", {"code": 4002}), req("ok", "test.echo")
        )
        await wait_ids(client, "boom", "app", "ok")
        boom, app, ok = replies(client)
        check_error(boom, HANDLER_ERROR, "boom", "handler error: ")
        assert app["error"] == {"code": 4002, "message": "requested failure"}
        check_result(ok, "ok", {"params": {}})


async def test_ids_are_echoed_verbatim_and_missing_ids_answered_as_null(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        for request_id in ["s-1", "", 0, -7, 2**53 + 1, 1.5]:
            pong, echo = await collect(client, ping(request_id), req(request_id, "test.echo"), count=2)
            check_result(pong, request_id, PONG)
            check_result(echo, request_id, {"params": {}})
        for frame, result in [
            ('{"method": "gateway.ping"}', PONG),
            ('{"method": "test.echo"}', {"params": {}}),
        ]:
            [answer] = await collect(client, frame, count=1)
            check_result(answer, None, result)


# -- batches (section 2, beyond) -------------------------------------------------


async def test_batch_answers_inline_in_one_array_and_pool_singly(gateway):
    elements = [
        req("echo", "test.echo", {"n": 1}),
        ping("ping"),
        req("nope", "no.such"),
        req("params", "gateway.ping", [1]),
        "42",
        SILENT_FRAMES["client result"],
        req("pool", "test.sleep", {"ms": 0}),
    ]
    async with GatewayClient.connect(gateway.url) as client:
        await send(client, "[" + ",".join(elements) + "]")
        await wait_ids(client, "echo", "pool")
        await assert_silent(client)
        frames = [f for f in client.frames[1:] if isinstance(f, list) or "method" not in f]
    [array] = [f for f in frames if isinstance(f, list)]
    answers = {a["id"]: a for a in array}
    assert len(array) == 5 and answers.keys() == {"echo", "ping", "nope", "params", None}
    check_result(answers["echo"], "echo", {"params": {"n": 1}})
    check_result(answers["ping"], "ping", PONG)
    check_error(answers["nope"], METHOD_NOT_FOUND, "nope")
    check_error(answers["params"], -32602, "params")
    check_error(answers[None], INVALID_REQUEST, None)
    assert {"jsonrpc": "2.0", "id": "pool", "result": {"slept": True}} in frames  # a frame of its own


async def test_empty_batch_is_one_invalid_request_with_null_id(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        error, _ = await exchange(client, "[]", ping("after"), until="after")
        check_error(error, INVALID_REQUEST, None)
        assert not any(isinstance(f, list) for f in client.frames)


# -- robustness ------------------------------------------------------------------


def malformed_kinds() -> list[tuple[str | bytes, tuple[int, Any] | None]]:
    """(frame, expected (code, id) of its reply or None for no reply), of every kind."""
    kinds: list[tuple[str | bytes, tuple[int, Any] | None]] = [
        (case.frame, (case.code, case.id)) for case in ERROR_CASES.values()
    ]
    kinds += [(b"\x00\xffbinary", (INVALID_REQUEST, None)), (ping("bin").encode(), (INVALID_REQUEST, None))]
    kinds += [(frame, None) for frame in SILENT_FRAMES.values()]
    return kinds


async def test_connection_survives_1000_malformed_frames(gateway):
    frames = list(itertools.islice(itertools.cycle(malformed_kinds()), 1000))
    expected = [answer for _, answer in frames if answer is not None]
    async with GatewayClient.connect(gateway.url) as client:
        await send(
            client, *(frame for frame, _ in frames), ping("after-ping"), req("after-echo", "test.echo")
        )
        await wait_ids(client, "after-echo")
        *errors, pong, echo = replies(client)
        assert [(e["error"]["code"], e["id"]) for e in errors] == expected
        check_result(pong, "after-ping", PONG)
        check_result(echo, "after-echo", {"params": {}})
        assert await client.call("test.echo", {"still": "open"}) == {"params": {"still": "open"}}


# -- dispatch (section 4) --------------------------------------------------------


def gate() -> str:
    """A fresh gate name: ``test.wait_gate`` holds a call until ``test.open_gate`` opens it."""
    return f"gate-{uuid.uuid4().hex}"


async def test_slow_pool_call_delays_neither_ping_nor_inline_calls(gateway):
    name = gate()
    async with GatewayClient.connect(gateway.url) as client:
        await send(
            client, req("slow", "test.wait_gate", {"name": name}), ping("ping"), req("echo", "test.echo")
        )
        await wait_ids(client, "ping", "echo")
        assert "slow" not in reply_ids(client)
        await client.call("test.open_gate", {"name": name})
        await wait_ids(client, "slow")
        check_result(next(r for r in replies(client) if r["id"] == "slow"), "slow", {"passed": True})


async def test_full_pool_does_not_hold_up_interrupt_or_approval_respond(gateway):
    name = gate()
    held = [f"held-{i}" for i in range(DEFAULTS["POOL_WORKERS"] + 1)]  # one more than the pool holds
    async with GatewayClient.connect(gateway.url) as client:
        sid = (await client.call("session.create", {"close_on_disconnect": True}))["session_id"]
        await send(client, *(req(i, "test.wait_gate", {"name": name}) for i in held))
        await send(client, req("interrupt", "session.interrupt", {"session_id": sid}))
        await send(client, req("approval", "approval.respond", {"session_id": sid}))
        await wait_ids(client, "interrupt", "approval")
        assert not set(held) & set(reply_ids(client)), "a pool call was answered first"
        answers = {r["id"]: r for r in replies(client)}
        check_result(answers["interrupt"], "interrupt", {"status": "not_interrupted"})
        check_result(answers["approval"], "approval", {"resolved": 0})
        async with GatewayClient.connect(gateway.url) as other:
            await other.call("test.open_gate", {"name": name})
        await wait_ids(client, *held)


async def test_inline_calls_run_one_at_a_time_in_arrival_order_and_ping_overtakes_them(gateway):
    name = gate()
    calls = [
        req("a", "test.inline_wait_gate", {"name": name}),  # held until the test opens the gate
        req("b", "test.inline_sleep", {"ms": 0}),
        req("c", "test.echo"),
    ]
    async with GatewayClient.connect(gateway.url) as client, GatewayClient.connect(gateway.url) as other:
        await send(client, *calls, ping("ping"))
        await wait_ids(client, "ping")
        assert await other.call("test.echo") == {"params": {}}  # the gateway is not stuck...
        assert reply_ids(client) == ["ping"]  # ...but b and c wait behind a
        await other.call("test.open_gate", {"name": name})
        assert await wait_ids(client, "a", "b", "c") == ["ping", "a", "b", "c"]


async def test_calls_marked_on_loop_run_on_the_loop_still_in_arrival_order(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        loop_thread = (await client.call("test.where_loop"))["thread"]
        assert (await client.call("test.where_maybe", {"fast": True}))["thread"] == loop_thread
        assert (await client.call("test.where_maybe"))["thread"] != loop_thread
        assert (await client.call("test.where_thread"))["thread"] != loop_thread
    name = gate()
    async with GatewayClient.connect(gateway.url) as client, GatewayClient.connect(gateway.url) as other:
        await send(
            client, req("a", "test.inline_wait_gate", {"name": name}), req("b", "test.where_loop"), ping("p")
        )
        await wait_ids(client, "p")
        assert reply_ids(client) == ["p"]  # b waits behind a, though it needs no thread
        await other.call("test.open_gate", {"name": name})
        assert await wait_ids(client, "a", "b") == ["p", "a", "b"]


async def test_inline_call_on_one_connection_does_not_block_another(gateway):
    name = gate()
    async with GatewayClient.connect(gateway.url) as a, GatewayClient.connect(gateway.url) as b:
        await exchange(
            a, req("slow", "test.inline_wait_gate", {"name": name}), ping("queued"), until="queued"
        )
        await exchange(b, req("echo", "test.echo"), until="echo")
        assert await b.call("gateway.ping") == PONG
        assert "slow" not in reply_ids(a), "connection B waited for A's inline call"
        await b.call("test.open_gate", {"name": name})
        await wait_ids(a, "slow")
