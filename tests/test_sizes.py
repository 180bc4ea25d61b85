"""Real sizes on a real daphne: big sessions stay readable, nothing is dropped on the way out,
every inbound message over the limit gets 4509 (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from ws_gateway.testing import GatewayClient, RpcFailure

MIB = 1024 * 1024
TURN_TIMEOUT = 90


async def open_client(gateway: Any) -> GatewayClient:
    """A client that refuses (1009) any frame over 1 MiB, as Python websockets does by default."""
    return await GatewayClient.open(gateway.url, max_size=MIB)


def words(total_bytes: int, tag: str) -> str:
    """Space-separated words ``<tag><i>`` filling ``total_bytes`` (ASCII)."""
    out, size, i = [], 0, 0
    while size < total_bytes:
        word = f"{tag}{i:07d}"
        out.append(word)
        size += len(word) + 1
        i += 1
    return " ".join(out)


def session_events(client: GatewayClient, sid: str) -> list[dict[str, Any]]:
    return [e for e in client.events if e.get("session_id") == sid]


def turn_ended(client: GatewayClient, sid: str, n: int) -> bool:
    """The n-th turn is over: its message.complete and the session.info that follows it are in."""
    types = [e["type"] for e in session_events(client, sid)]
    completes = [i for i, t in enumerate(types) if t == "message.complete"]
    return len(completes) >= n and "session.info" in types[completes[n - 1] :]


async def run_turns(client: GatewayClient, sid: str, prompts: list[str]) -> None:
    for n, prompt in enumerate(prompts, 1):
        await client.call("prompt.submit", {"session_id": sid, "text": prompt})
        await client.wait_for(lambda n=n: turn_ended(client, sid, n), TURN_TIMEOUT)


async def read_transcript(client: GatewayClient, sid: str, first: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row, from a resume/history page back to the start (shortened rows read whole)."""
    rows = list(first["messages"])
    start, more = first["start"], first["more"]
    while more:
        page = await client.call("session.history", {"session_id": sid, "before": start})
        assert page["start"] < start and page["messages"]
        rows = page["messages"] + rows
        start, more = page["start"], page["more"]
    assert start == 0
    for i, row in enumerate(rows):
        if "shortened" in row:
            assert row["index"] == i
            row["text"] = await read_message(client, sid, i)
    return rows


async def read_message(client: GatewayClient, sid: str, index: int) -> str:
    parts, offset = [], 0
    while offset is not None:
        chunk = await client.call("session.message", {"session_id": sid, "index": index, "offset": offset})
        parts.append(chunk["text"])
        offset = chunk["next_offset"]
    return "".join(parts)


async def replay(client: GatewayClient, sid: str) -> list[dict[str, Any]]:
    """Every kept event through ``session.events.since`` pages."""
    events: list[dict[str, Any]] = []
    last_seen, pages = 0, 0
    while True:
        page = await client.call("session.events.since", {"session_id": sid, "last_seen": last_seen})
        assert not page["truncated"]
        events += page["events"]
        pages += 1
        if not page["more"]:
            assert events[-1]["seq"] == page["latest_seq"]
            return events
        last_seen = page["events"][-1]["seq"]


def assert_contiguous(events: list[dict[str, Any]]) -> None:
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def turn_texts(events: list[dict[str, Any]]) -> list[str]:
    """The reply of every turn, rebuilt from its message.delta events."""
    texts: list[str] = []
    for e in events:
        if e["type"] == "message.start":
            texts.append("")
        elif e["type"] == "message.delta":
            texts[-1] += e["payload"]["text"]
    return texts


@pytest.mark.parametrize(
    "prompts",
    [[words(900_000, "p")], [words(100_000, f"t{n}x") for n in range(11)]],
    ids=["one-900KB-prompt", "11x100KB-turns"],
)
async def test_a_big_session_resumes_pages_and_replays_exactly(gateway, prompts):
    replies = [f"You said: {p}" for p in prompts]
    expected = [text for p, r in zip(prompts, replies, strict=True) for text in (p, r)]
    writer = await open_client(gateway)
    try:
        created = await writer.call("session.create")
        sid, key = created["session_id"], created["stored_session_id"]
        await run_turns(writer, sid, prompts)
        live = session_events(writer, sid)
        assert_contiguous(live)
        assert turn_texts(live) == replies
        assert [e["payload"]["text"] for e in live if e["type"] == "message.complete"] == replies

        reader = await open_client(gateway)
        try:
            resumed = await reader.call("session.resume", {"session_id": key})
            assert resumed["message_count"] == len(expected)
            assert resumed["more"] == (resumed["start"] > 0)
            rows = await read_transcript(reader, resumed["session_id"], resumed)
            assert [r["text"] for r in rows] == expected
            assert [r["role"] for r in rows] == ["user", "assistant"] * len(prompts)

            replayed = await replay(reader, sid)
            assert replayed == live

            # Closed, the session is read back from the database, page by page again.
            assert (await reader.call("session.close", {"session_id": sid}))["closed"]
            again = await reader.call("session.resume", {"session_id": key})
            assert again["session_id"] != sid and again["message_count"] == len(expected)
            rows = await read_transcript(reader, again["session_id"], again)
            assert [r["text"] for r in rows] == expected
        finally:
            await reader.close()
    finally:
        await writer.close()


@pytest.mark.db
async def test_a_big_session_owned_by_another_worker_is_paged_through_it(clusters):
    """Pages are made on the owner and forwarded; each still fits one message."""
    cluster, _ = clusters(2)
    w1, w2 = cluster.workers
    prompts = [words(400_000, f"c{n}x") for n in range(3)]
    expected = [text for p in prompts for text in (p, f"You said: {p}")]
    owner = await GatewayClient.open(w1.url, max_size=MIB)
    other = await GatewayClient.open(w2.url, max_size=MIB)
    try:
        created = await owner.call("session.create")
        sid, key = created["session_id"], created["stored_session_id"]
        await run_turns(owner, sid, prompts)
        resumed = await other.call("session.resume", {"session_id": key})
        assert resumed["session_id"] == sid and resumed["more"]
        rows = await read_transcript(other, sid, resumed)
        assert [r["text"] for r in rows] == expected
        assert await replay(other, sid) == session_events(owner, sid)
    finally:
        await owner.close()
        await other.close()


@pytest.mark.parametrize("flush_ms", [33, 5000], ids=["default-merging", "merged-over-the-limit"])
async def test_a_stream_over_the_limit_arrives_whole_with_contiguous_seq(gateways, flush_ms):
    """With a long merge window the merged delta passes the limit and goes out in parts."""
    gateway = gateways.shared("memory", DELTA_FLUSH_MS=flush_ms)
    client = await open_client(gateway)
    try:
        sid = (await client.call("session.create"))["session_id"]
        await client.event("session.info", sid)
        await client.call("prompt.submit", {"session_id": sid, "text": "!stream 160000 0"})
        await client.wait_for(lambda: turn_ended(client, sid, 1), TURN_TIMEOUT)
        (complete,) = [e for e in session_events(client, sid) if e["type"] == "message.complete"]
        expected = " ".join(f"t{i}" for i in range(1, 160001))
        assert len(expected.encode()) > MIB
        events = session_events(client, sid)
        assert_contiguous(events)
        assert turn_texts(events) == [expected]
        if flush_ms > 1000:
            assert "message.delta of" in gateway.log_text() and "split into 2 events" in gateway.log_text()
        # Too large for one frame: text is left out and named; the deltas carry it.
        assert "text" not in complete["payload"]
        assert complete["payload"]["omitted"]["text"] > MIB
        assert complete["payload"]["status"] == "complete"

        history = await client.call("session.history", {"session_id": sid})
        assert history["count"] == 2 and history["start"] == 1 and history["more"]
        (row,) = history["messages"]
        assert row["shortened"] == {"text": len(expected)} and row["index"] == 1
        assert expected.startswith(row["text"].split("\n[... ")[0])
        assert await read_message(client, sid, 1) == expected
        # With a small limit the same text comes in many exact chunks.
        chunk = await client.call(
            "session.message", {"session_id": sid, "index": 1, "offset": 10, "limit": 5}
        )
        assert chunk["text"] == expected[10:15] and chunk["next_offset"] == 15

        replayed = await replay(client, sid)
        assert turn_texts(replayed) == [expected]
    finally:
        await client.close()


@pytest.mark.parametrize("size", [1_200_000, 4_000_000, 20_000_000], ids=["1.2MB", "4MB", "20MB"])
async def test_every_inbound_message_over_the_limit_gets_4509(gateways, size):
    gateway = gateways.shared("memory")
    async with websockets.connect(gateway.url) as ws:
        await ws.recv()
        frame = '{"id": 1, "method": "test.echo", "params": {"x": "' + "a" * size + '"}}'
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.send(frame)
            await asyncio.wait_for(ws.recv(), 30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4509


async def test_an_emoji_prompt_over_the_limit_gets_4509_not_1006(gateways):
    """600,000 characters, 2.4 MB of UTF-8: the limit is in bytes."""
    gateway = gateways.shared("memory")
    async with websockets.connect(gateway.url) as ws:
        await ws.recv()
        frame = json.dumps(
            {"id": 1, "method": "prompt.submit", "params": {"text": "😀" * 600_000}}, ensure_ascii=False
        )
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.send(frame)
            await asyncio.wait_for(ws.recv(), 30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4509


async def test_a_prompt_over_the_prompt_limit_is_refused_before_it_is_stored(gateways):
    gateway = gateways.shared("memory")
    client = await open_client(gateway)
    try:
        sid = (await client.call("session.create"))["session_id"]
        text = "a" * 1_000_001  # fits a frame, not MAX_PROMPT_BYTES
        with pytest.raises(RpcFailure) as err:
            await client.call("prompt.submit", {"session_id": sid, "text": text})
        assert err.value.code == 4002 and "prompt too large" in err.value.message
        assert err.value.data == {"bytes": 1_000_001, "limit": 1_000_000}
        assert (await client.call("session.history", {"session_id": sid}))["count"] == 0
    finally:
        await client.close()


async def test_a_result_too_large_for_a_frame_becomes_an_error_and_the_socket_stays_usable(gateways):
    gateway = gateways.shared("memory")
    client = await open_client(gateway)
    try:
        with pytest.raises(RpcFailure) as err:
            await client.call("test.big", {"bytes": 2 * MIB})
        assert err.value.code == 4131
        assert "result too large" in err.value.message
        assert err.value.data["limit"] == MIB and err.value.data["bytes"] > 2 * MIB
        assert (await client.call("gateway.ping")) == {"ok": True}
        # Two responses that fit alone but not together come as two frames.
        frames = len(client.frames)
        batch = [
            {"jsonrpc": "2.0", "id": f"b{i}", "method": "test.big", "params": {"bytes": 600_000}}
            for i in (1, 2)
        ]
        await client.send_raw(json.dumps(batch))
        await client.wait_for(lambda: len(client.frames) >= frames + 2)
        answers = client.frames[frames:]
        assert [a["id"] for a in answers] == ["b1", "b2"]
        assert all(len(a["result"]["data"]) == 600_000 for a in answers)
    finally:
        await client.close()
    assert "response too large method=test.big" in gateway.log_text()
