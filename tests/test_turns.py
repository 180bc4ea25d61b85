"""Agent turns through real sockets with the demo agent (PROTOCOL.md sections 7 and 12)."""

from __future__ import annotations

import pytest

from tests.helpers import Session
from ws_gateway.testing import GatewayClient, RpcFailure

pytestmark = pytest.mark.db


async def test_text_lines_echo_word_by_word(gateway):
    async with Session.open(gateway) as s:
        events = await s.turn("hello there\nworld")
        deltas = [e["payload"]["text"] for e in events if e["type"] == "message.delta"]
        complete = events[-2]["payload"]
        assert complete["text"] == "You said: hello there world"
        assert "".join(deltas) == complete["text"]
        assert complete["status"] == "complete"
        assert events[0]["type"] == "message.start"
        assert [e["type"] for e in events][-2:] == ["message.complete", "session.info"]


async def test_every_turn_ends_with_exactly_one_complete_then_info(gateway):
    async with Session.open(gateway) as s:
        for prompt, status in (("hi", "complete"), ("!fail nope", "error"), ("!stream 3", "complete")):
            events = await s.turn(prompt)
            types = [e["type"] for e in events]
            assert types.count("message.start") == 1 and types.count("message.complete") == 1
            assert types[-2:] == ["message.complete", "session.info"]
            assert events[-2]["payload"]["status"] == status
        assert await s.seqs_are_contiguous()


async def test_directives_stream_think_sleep_usage_title(gateway):
    async with Session.open(gateway) as s:
        prompt = "one\n!think pondering\n!stream 4 1\n!sleep 5\ntwo\nthree\n!usage 11 22\n!title Named turn"
        events = await s.turn(prompt)
        complete = events[-2]["payload"]
        assert complete["text"] == "You said: one\nt1 t2 t3 t4\nYou said: two three"
        assert (
            "".join(e["payload"]["text"] for e in events if e["type"] == "message.delta") == complete["text"]
        )
        assert [e["payload"]["text"] for e in events if e["type"] == "reasoning.delta"] == ["pondering"]
        usage = [e for e in events if e["type"] == "session.usage"]
        assert usage and usage[-1]["payload"]["usage"]["input"] == 11
        assert complete["usage"]["output"] == 22 and complete["usage"]["calls"] == 1
        titles = [e["payload"]["title"] for e in s.events("session.title")]
        assert titles[-1] == "Named turn"
        assert (await s.call("session.title"))["title"] == "Named turn"


async def test_fail_keeps_what_was_said_and_reports_the_error(gateway):
    async with Session.open(gateway) as s:
        events = await s.turn("before\n!fail the disk is full\nafter")
        complete = events[-2]["payload"]
        assert complete == {
            **complete,
            "status": "error",
            "error": "the disk is full",
            "text": "You said: before\nError: the disk is full",
        }
        # The reason is part of the streamed text: clients that render only deltas show it too.
        deltas = "".join(e["payload"]["text"] for e in events if e["type"] == "message.delta")
        assert deltas == complete["text"]
        history = await s.call("session.history")
        assert [(m["role"], m["text"]) for m in history["messages"]][-1] == (
            "assistant",
            "You said: before\nError: the disk is full",
        )


async def test_bad_directives_fail_the_turn_with_a_clear_error(gateway):
    async with Session.open(gateway) as s:
        unknown = (await s.turn("!frobnicate"))[-2]["payload"]
        assert unknown["status"] == "error" and "unknown directive: !frobnicate" in unknown["error"]
        bad = (await s.turn("!stream many"))[-2]["payload"]
        assert bad["status"] == "error" and "!stream N" in bad["error"]


async def test_run_and_todo_directives(gateway):
    async with Session.open(gateway) as s:
        events = await s.turn("!run echo hello; echo second\n!todo write; test; ship\n!todo-done 1")
        complete = events[-2]["payload"]
        assert complete["text"] == "Ran: echo hello; echo second (exit 0)\nhello"
        starts = [e for e in events if e["type"] == "tool.start"]
        assert [e["payload"]["name"] for e in starts] == ["terminal", "todo", "todo"]
        done = next(e for e in events if e["type"] == "tool.complete")["payload"]
        assert (
            done["result"] == "exit 0\nhello\nsecond\n" and done["tool_id"] == starts[0]["payload"]["tool_id"]
        )
        todos = [e["payload"] for e in events if e["type"] == "todo.updated"]
        assert [t["revision"] for t in todos] == [1, 2]
        assert [t["status"] for t in todos[0]["todos"]] == ["in_progress", "pending", "pending"]
        assert [t["status"] for t in todos[1]["todos"]] == ["completed", "in_progress", "pending"]
        snapshot = await s.call("session.activate")
        assert snapshot["todo_state"]["revision"] == 2
        roles = [m["role"] for m in (await s.call("session.history"))["messages"]]
        assert roles == ["user", "tool", "tool", "tool", "assistant"]


async def test_prompt_into_unknown_session_is_4001_and_creates_nothing(gateway):
    async with GatewayClient.connect(gateway.url) as client:
        before = await client.call("session.active_list")
        with pytest.raises(RpcFailure) as err:
            await client.call("prompt.submit", {"session_id": "0badf00d", "text": "hi"})
        assert err.value.code == 4001
        assert await client.call("session.active_list") == before
        sid = (await client.call("session.create"))["session_id"]
        with pytest.raises(RpcFailure) as empty:
            await client.call("prompt.submit", {"session_id": sid, "text": "  "})
        assert empty.value.code == 4002


async def test_interrupt_during_long_stream_stores_the_partial_reply(gateway):
    async with Session.open(gateway) as s:
        assert (await s.call("session.interrupt"))["status"] == "not_interrupted"
        mark = len(s.client.events)
        prompt = "!stream 2\n!clarify Hold on?\n!stream 1000"  # held open after two tokens
        assert (await s.call("prompt.submit", {"text": prompt}))["status"] == "streaming"
        await s.client.event("clarify.request", s.sid, after=mark)
        assert (await s.call("session.interrupt"))["status"] == "interrupted"
        complete = await s.client.event("message.complete", s.sid, after=mark, timeout=5)
        assert complete["payload"]["status"] == "interrupted"
        partial = complete["payload"]["text"]
        assert partial.startswith("t1 t2") and not partial.endswith("t1000")
        history = await s.call("session.history")
        assert history["messages"][-1] == {**history["messages"][-1], "role": "assistant", "text": partial}


async def test_busy_input_mode_interrupt_redirects_to_the_new_prompt(gateway):
    async with Session.open(gateway) as s:
        mark = len(s.client.events)
        await s.call("prompt.submit", {"text": "!clarify Hold on?"})
        await s.client.event("clarify.request", s.sid, after=mark)  # the turn is held open
        assert (await s.call("prompt.submit", {"text": "next"}))["status"] == "redirected"
        completes = await s.completes(2, after=mark)
        assert [c["payload"]["status"] for c in completes] == ["interrupted", "complete"]
        assert completes[1]["payload"]["text"] == "You said: next"


async def test_busy_input_mode_queue_runs_prompts_after_the_turn(gateway):
    async with Session.open(gateway) as s:
        await s.call("config.set", {"key": "busy_input_mode", "value": "queue"})
        mark = len(s.client.events)
        await s.call("prompt.submit", {"text": "!clarify Hold on?\n!stream 3"})
        request = await s.client.event("clarify.request", s.sid, after=mark)  # the turn is held open
        assert (await s.call("prompt.submit", {"text": "second"}))["status"] == "queued"
        assert (await s.call("prompt.submit", {"text": "third"}))["status"] == "queued"
        await s.call("clarify.respond", {"request_id": request["payload"]["request_id"], "answer": "ok"})
        completes = await s.completes(3, after=mark)
        assert [c["payload"]["text"] for c in completes][1:] == ["You said: second", "You said: third"]
        assert all(c["payload"]["status"] == "complete" for c in completes)
        users = [m["text"] for m in (await s.call("session.history"))["messages"] if m["role"] == "user"]
        assert users == ["!clarify Hold on?\n!stream 3", "second", "third"]


async def test_busy_input_mode_steer_feeds_the_running_turn(gateway):
    async with Session.open(gateway) as s:
        await s.call("config.set", {"key": "busy_input_mode", "value": "steer"})
        mark = len(s.client.events)
        await s.call("prompt.submit", {"text": "!clarify Hold on?\n!stream 2"})  # held open by the prompt
        request = await s.client.event("clarify.request", s.sid, after=mark)
        assert (await s.call("prompt.submit", {"text": "go left"}))["status"] == "steered"
        assert (await s.call("session.steer", {"text": "then right"}))["status"] == "steered"
        await s.call("clarify.respond", {"request_id": request["payload"]["request_id"], "answer": "ok"})
        complete = (await s.completes(1, after=mark))[0]["payload"]
        assert complete["text"] == "Answer: ok\nSteered: go left\nSteered: then right\nt1 t2"


async def test_submission_ref_twice_starts_one_turn(gateway):
    async with Session.open(gateway) as s:
        mark = len(s.client.events)
        first = await s.call("prompt.submit", {"text": "once", "submission_ref": "ref-1"})
        second = await s.call("prompt.submit", {"text": "once", "submission_ref": "ref-1"})
        assert first == second == {"status": "streaming"}
        await s.completes(1, after=mark)
        await s.turn("marker")
        users = [m["text"] for m in (await s.call("session.history"))["messages"] if m["role"] == "user"]
        assert users == ["once", "marker"]
        assert len(s.events("message.start", after=mark)) == 2


async def test_undo_and_rewind_change_the_stored_transcript_exactly(gateway):
    async with Session.open(gateway) as s:
        for text in ("a", "b", "c"):
            await s.turn(text)
        assert (await s.call("session.undo"))["removed"] == 2
        assert await s.stored_texts() == ["a", "You said: a", "b", "You said: b"]
        with pytest.raises(RpcFailure) as confirm:
            await s.call("prompt.submit", {"text": "B", "truncate_before_user_ordinal": 1})
        assert confirm.value.code == 4029
        with pytest.raises(RpcFailure) as mismatch:
            await s.call(
                "prompt.submit", {"text": "B", "truncate_before_user_ordinal": 5, "confirm_truncate": True}
            )
        assert mismatch.value.code == 4030
        with pytest.raises(RpcFailure) as empties:
            await s.call(
                "prompt.submit", {"text": "A", "truncate_before_user_ordinal": 0, "confirm_truncate": True}
            )
        assert empties.value.code == 4028
        with pytest.raises(RpcFailure) as bad:
            await s.call(
                "prompt.submit", {"text": "A", "truncate_before_user_ordinal": "x", "confirm_truncate": True}
            )
        assert bad.value.code == 4004
        await s.turn("B", truncate_before_user_ordinal=1, confirm_truncate=True)
        assert await s.stored_texts() == ["a", "You said: a", "B", "You said: B"]
        await s.turn("A", truncate_before_user_ordinal=0, confirm_truncate=True, confirm_empty_truncate=True)
        assert await s.stored_texts() == ["A", "You said: A"]


async def test_undo_while_running_is_busy(gateway):
    async with Session.open(gateway) as s:
        mark = len(s.client.events)
        await s.call("prompt.submit", {"text": "!clarify Hold on?"})
        await s.client.event("clarify.request", s.sid, after=mark)  # the turn is held open
        with pytest.raises(RpcFailure) as err:
            await s.call("session.undo")
        assert err.value.code == 4009
        await s.call("session.interrupt")
        await s.completes(1, after=mark)


async def test_first_prompt_sets_an_automatic_title(gateway):
    async with Session.open(gateway) as s:
        await s.turn("!think quietly\nplan the release notes\n!stream 2")
        assert (await s.call("session.title"))["title"] == "plan the release notes"


async def test_disconnect_mid_turn_then_resume_gets_the_rest_and_a_gapless_replay(gateway):
    first = await GatewayClient.open(gateway.url)
    created = await first.call("session.create")
    sid, key = created["session_id"], created["stored_session_id"]
    await first.call("prompt.submit", {"session_id": sid, "text": "!stream 200 5"})
    await first.wait_for(lambda: len(first.find_events("message.delta", sid)) >= 3)
    await first.close()
    seen = first.find_events(session_id=sid)
    async with GatewayClient.connect(gateway.url) as second:
        resumed = await second.call("session.resume", {"session_id": key})
        assert resumed["session_id"] == sid and resumed["running"] is True
        assert resumed["inflight"]["user"] == "!stream 200 5"
        complete = await second.event("message.complete", sid, timeout=30)
        replay = await second.call("session.events.since", {"session_id": sid, "last_seen": seen[-1]["seq"]})
        events = seen + replay["events"]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        text = "".join(e["payload"]["text"] for e in events if e["type"] == "message.delta")
        assert text == complete["payload"]["text"] == " ".join(f"t{i}" for i in range(1, 201))
