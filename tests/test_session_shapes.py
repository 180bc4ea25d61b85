"""What a session looks like to a (re)connecting client, built in-process from a live session
that is not registered anywhere: queued and in-flight prompts share the snapshot's frame with the
transcript, so each is capped; imported messages are checked before anything is stored."""

from __future__ import annotations

from typing import Any

import pytest

from ws_gateway import framing
from ws_gateway.agent.context import TurnContext
from ws_gateway.errors import RpcError
from ws_gateway.sessions import lifecycle, shapes
from ws_gateway.sessions.live import LiveSession


@pytest.fixture
def small_frames(settings: Any) -> int:
    settings.WS_GATEWAY = {**getattr(settings, "WS_GATEWAY", {}), "MAX_MESSAGE_BYTES": 64 * 1024}
    return 64 * 1024


def test_queued_and_inflight_prompts_are_capped_to_an_eighth_of_a_frame(small_frames: int) -> None:
    live = LiveSession("rt-shape", "20260101_000000_bbbbbb", owner_id=None, model="demo")
    live.queue.extend(["short one", "q" * 20_000])
    live.turn = TurnContext(live, "p" * 30_000, [])
    live.running = True
    out = shapes.snapshot(live)
    short, long_ = out["queued"]
    assert short == {"user": "short one"}
    cap = small_frames // 8
    kept, _, marker = long_["user"].partition("\n[... ")
    assert cap * 0.9 <= len(kept) <= cap and set(kept) == {"q"}  # a prefix of about an eighth
    assert marker == f"{20_000 - len(kept)} more characters]"  # says exactly what was left out
    inflight, _, marker = out["inflight"]["user"].partition("\n[... ")
    assert cap * 0.9 <= len(inflight) <= cap and marker == f"{30_000 - len(inflight)} more characters]"
    assert out["inflight"]["streaming"] is True
    assert out["running"] is True and out["status"] == "working"
    assert framing.json_len(out) < small_frames


def test_a_snapshot_without_messages_says_where_the_transcript_ends() -> None:
    rows = [{"role": "user", "text": "a"}, {"role": "assistant", "text": "b"}]
    live = LiveSession("rt-shape2", "20260101_000000_cccccc", owner_id=None, messages=rows)
    live.todos = [{"id": "1", "content": "x", "status": "pending"}]
    out = shapes.snapshot(live, omit_messages=True)
    assert (out["messages"], out["start"], out["more"], out["message_count"]) == ([], 2, True, 2)
    assert out["todo_state"] == {"todos": live.todos, "revision": 0}
    assert "queued" not in out and "inflight" not in out
    assert shapes.snapshot(LiveSession("rt-e", "k", owner_id=None), omit_messages=True)["more"] is False


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([{"role": "system", "text": "x"}], "messages must be objects with role user|assistant|tool"),
        (["just text"], "messages must be objects with role user|assistant|tool"),
        ([{"role": "user", "text": 5}], "message text must be a string"),
        ([{"role": "user", "content": ["parts"]}], "message text must be a string"),
    ],
)
def test_imported_messages_are_checked(raw: list[Any], message: str) -> None:
    with pytest.raises(RpcError) as failed:
        lifecycle.validate_messages(raw)
    assert failed.value.message == message


def test_imported_messages_keep_only_known_fields() -> None:
    (row,) = lifecycle.validate_messages(
        [
            {
                "role": "tool",
                "content": "out",
                "name": "terminal",
                "args": {"c": 1},
                "extra": "dropped",
                "reasoning": "",
            }
        ]
    )
    assert {k: v for k, v in row.items() if k != "timestamp"} == {
        "role": "tool",
        "text": "out",
        "name": "terminal",
        "args": {"c": 1},
    }
    assert lifecycle.validate_messages(None) == []
