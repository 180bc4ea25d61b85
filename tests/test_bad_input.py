"""Bad input on a real daphne gets a clear error and changes nothing (issue 10, item 6)."""

from __future__ import annotations

import json

import pytest

from tests.helpers import Session
from ws_gateway.testing import GatewayClient, RpcFailure


async def raw_answer(client: GatewayClient, frame: str) -> dict:
    """Send a raw frame, then a ping; the answer that came before the pong."""
    before = len(client.frames)
    await client.send_raw(frame)
    await client.call("gateway.ping")
    answers = [f for f in client.frames[before:] if isinstance(f, dict) and "method" not in f]
    assert len(answers) == 2, answers
    return answers[0]


@pytest.mark.parametrize(
    "frame",
    [
        '{"jsonrpc": "2.0", "id": NaN, "method": "gateway.ping"}',
        '{"jsonrpc": "2.0", "id": Infinity, "method": "gateway.ping"}',
        '{"jsonrpc": "2.0", "id": -Infinity, "method": "gateway.ping"}',
        '{"jsonrpc": "2.0", "id": 1e999, "method": "gateway.ping"}',
        '{"jsonrpc": "2.0", "id": 7, "method": "test.echo", "params": {"x": [1, NaN]}}',
        '[{"jsonrpc": "2.0", "id": 8, "method": "test.echo", "params": {"x": -1e400}}]',
    ],
)
async def test_non_finite_numbers_are_a_parse_error_never_echoed(gateways, frame):
    async with GatewayClient.connect(gateways.shared("memory").url) as client:
        answer = await raw_answer(client, frame)
        assert answer == {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}


@pytest.mark.parametrize("bad", ["\ud800", "a\udfffb", "nul\x00"], ids=["lone-high", "lone-low", "nul"])
async def test_unstorable_text_is_refused_before_anything_is_stored(gateways, bad):
    gateway = gateways.shared("memory")
    async with Session.open(gateway) as s:
        for method, params in [
            ("session.create", {"title": f"t{bad}"}),
            ("session.create", {"cwd": f"/tmp{bad}"}),
            ("prompt.submit", {"session_id": s.sid, "text": f"hello {bad}"}),
            ("session.title", {"session_id": s.sid, "title": f"t{bad}"}),
            ("session.list", {"title": bad}),
        ]:
            with pytest.raises(RpcFailure) as err:
                await s.client.call(method, params)
            assert err.value.code == -32602, method
            assert "lone surrogate or NUL" in err.value.message
        # As an escape in the frame, the way a client sends it (json.dumps escapes it).
        frame = json.dumps(
            {"id": "esc", "method": "prompt.submit", "params": {"session_id": s.sid, "text": bad}}
        )
        assert (await raw_answer(s.client, frame))["error"]["code"] == -32602
        assert (await s.call("session.history"))["count"] == 0
        assert (await s.call("session.title"))["title"] == ""
        # A pair of surrogate escapes is one ordinary character.
        await s.call("prompt.submit", {"text": "smile \ud83d\ude00"})
        await s.completes(1, 0)
        assert (await s.call("session.history"))["messages"][0]["text"] == "smile 😀"


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("!sleep 99999999999999999999999", "out of range 0..3600000"),
        ("!stream 1000000000000000000000000000000", "out of range 0..1000000"),
        ("!stream 10**30", "usage: !stream N [DELAY_MS]"),
        ("!stream -5", "out of range"),
        ("!stream 3 99999999", "out of range 0..60000"),
        ("!usage 1 99999999999999999999", "out of range"),
        ("!sleep " + "9" * 5000, "usage: !sleep MS"),
    ],
)
async def test_numeric_directive_arguments_are_range_checked(gateways, prompt, expected):
    async with Session.open(gateways.shared("memory")) as s:
        await s.call("prompt.submit", {"text": prompt})
        (complete,) = [e for e in await s.completes(1, 0) if e["type"] == "message.complete"]
        assert complete["payload"]["status"] == "error"
        assert expected in complete["payload"]["error"]


async def test_session_create_needs_an_existing_directory_as_cwd(gateways, tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    async with GatewayClient.connect(gateways.shared("memory").url) as client:
        for cwd in [str(tmp_path / "missing"), str(a_file)]:
            with pytest.raises(RpcFailure) as err:
                await client.call("session.create", {"cwd": cwd})
            assert err.value.code == 4002 and "not an existing directory" in err.value.message
        created = await client.call("session.create", {"cwd": str(tmp_path)})
        assert created["info"]["cwd"] == str(tmp_path)


async def test_titles_longer_than_the_column_are_refused(gateways):
    async with Session.open(gateways.shared("memory")) as s:
        for method, params in [
            ("session.create", {"title": "t" * 256}),
            ("session.title", {"session_id": s.sid, "title": "t" * 256}),
        ]:
            with pytest.raises(RpcFailure) as err:
                await s.client.call(method, params)
            assert err.value.code == 4002 and "title too long" in err.value.message
        await s.call("prompt.submit", {"text": "!title " + "x" * 300})
        (complete,) = [e for e in await s.completes(1, 0) if e["type"] == "message.complete"]
        assert complete["payload"]["status"] == "error" and "title too long" in complete["payload"]["error"]


@pytest.mark.parametrize("title", ["%", "_", "%_%\\", "x" * 60_000, "é" * 30_000, "' OR 1=1 --"])
async def test_session_list_takes_any_title_filter(gateways, title):
    """Any string filters literally (no wildcards, no database error)."""
    async with Session.open(gateways.shared("memory"), title="a 100% real_title") as s:
        await s.call("prompt.submit", {"text": "hi"})
        await s.completes(1, 0)
        listed = await s.client.call("session.list", {"title": title})
        assert all(title.lower() in x["title"].lower() for x in listed["sessions"])
        assert (s.key in [x["id"] for x in listed["sessions"]]) == (title in ("%", "_"))
        for needle in ["100%", "real_", "A 100"]:
            found = await s.client.call("session.list", {"title": needle})
            assert s.key in [x["id"] for x in found["sessions"]], needle
