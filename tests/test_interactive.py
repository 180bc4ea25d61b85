"""People in the loop over real sockets: approvals, clarify, sudo, secrets (PROTOCOL.md section 8)."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.helpers import Session, stored_rows
from ws_gateway.testing import GatewayClient, RpcFailure

pytestmark = pytest.mark.db

SECRET = "s3cr3t-VALUE-8f1e2d"


async def submit(s: Session, text: str) -> int:
    mark = len(s.client.events)
    assert (await s.call("prompt.submit", {"text": text}))["status"] == "streaming"
    return mark


async def reply_text(s: Session, mark: int) -> dict:
    return (await s.completes(1, after=mark))[0]["payload"]


async def test_approval_event_answered_once_runs_the_command(gateway):
    async with Session.open(gateway) as s:
        mark = await submit(s, "!approve echo approved-run")
        request = await s.client.event("approval.request", s.sid, after=mark)
        payload = request["payload"]
        assert payload["command"] == "echo approved-run"
        assert payload["choices"] == ["once", "session", "always", "deny"]
        assert payload["allow_permanent"] is True
        assert len(payload["request_id"]) == 8
        pending = await s.call("approval.pending")
        assert [a["request_id"] for a in pending["approvals"]] == [payload["request_id"]]
        assert await s.call("approval.respond", {"choice": "once"}) == {"resolved": 1}
        complete = await reply_text(s, mark)
        assert complete["text"] == "Ran: echo approved-run (exit 0)\napproved-run"
        assert await s.call("approval.respond", {"choice": "once"}) == {"resolved": 0}
        cancel = s.events("request.cancel", after=mark)
        assert [c["payload"]["reason"] for c in cancel] == ["resolved"]


async def test_denied_dangerous_run_is_not_run(gateway, tmp_path):
    target = tmp_path / "keep"
    target.mkdir()
    async with Session.open(gateway) as s:
        mark = await submit(s, f"!run rm -rf {target}")
        request = await s.client.event("approval.request", s.sid, after=mark)
        assert request["payload"]["description"] == "recursive delete"
        assert await s.call(
            "approval.respond", {"choice": "deny", "request_id": request["payload"]["request_id"]}
        ) == {"resolved": 1}
        assert (await reply_text(s, mark))["text"] == f"Denied: rm -rf {target}"
        assert target.exists()
        with pytest.raises(RpcFailure) as err:
            await s.call("approval.respond", {"choice": "maybe"})
        assert err.value.code == 4002


async def test_session_choice_approves_the_pattern_for_the_rest_of_the_session(gateway, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with Session.open(gateway, cwd=str(tmp_path)) as s:
        mark = await submit(s, "!run rm -r a")
        await s.client.event("approval.request", s.sid, after=mark)
        await s.call("approval.respond", {"choice": "session"})
        await reply_text(s, mark)
        # The same parsed pattern (rm with -r, operands inside the cwd) is not asked again ...
        events = await s.turn("!run rm -r b")
        assert not [e for e in events if e["type"] == "approval.request"]
        assert events[-2]["payload"]["text"] == "Ran: rm -r b (exit 0)"
        assert not (tmp_path / "b").exists()
        # ... but another shape of it is: more flags, or a path outside the cwd.
        for command in ("rm -rf c", f"rm -r {tmp_path.parent}/elsewhere"):
            mark = await submit(s, f"!run {command}")
            request = await s.client.event("approval.request", s.sid, after=mark)
            assert request["payload"]["command"] == command
            await s.call("approval.respond", {"choice": "deny"})
            assert (await reply_text(s, mark))["text"] == f"Denied: {command}"


async def test_approval_mode_off_skips_prompting(gateways, layer, tmp_path):
    allowed = gateways.shared(layer, ALLOW_APPROVAL_OFF=True)
    async with Session.open(allowed) as s:
        await s.call("config.set", {"key": "approval_mode", "value": "off"})
        events = await s.turn(f"!run rm -rf {tmp_path}/nothing\n!approve echo fine")
        assert not [e for e in events if e["type"] == "approval.request"]
        assert (
            events[-2]["payload"]["text"]
            == f"Ran: rm -rf {tmp_path}/nothing (exit 0)\nRan: echo fine (exit 0)\nfine"
        )


async def test_server_request_form_for_opted_in_clients_only(gateway):
    async with Session.open(gateway) as s, GatewayClient.connect(gateway.url) as modern:
        await modern.call("session.activate", {"session_id": s.sid, "server_requests": True})
        mark = await submit(s, "!approve echo both-forms")
        event = await s.client.event("approval.request", s.sid, after=mark)
        request = await modern.server_request("approval")
        assert request["id"].startswith("srq-") and len(request["id"]) == 16
        params = request["params"]
        assert params["session_id"] == s.sid and params["request_id"] == event["payload"]["request_id"]
        assert params["seq"] == event["seq"]
        assert not modern.find_events("approval.request")
        await modern.reply(request["id"], {"choice": "once"})
        complete = await reply_text(s, mark)
        assert complete["text"].startswith("Ran: echo both-forms (exit 0)")
        await modern.event("message.complete", s.sid)
        seqs = sorted([e["seq"] for e in modern.find_events(session_id=s.sid)] + [params["seq"]])
        assert seqs == list(range(seqs[0], seqs[-1] + 1))
        cancel = await modern.event("request.cancel", s.sid)
        assert cancel["payload"]["id"] == request["id"] and cancel["payload"]["reason"] == "resolved"


async def test_clarify_both_generations(gateway):
    async with Session.open(gateway) as s:
        mark = await submit(s, "!clarify Which colour? | red | blue")
        request = (await s.client.event("clarify.request", s.sid, after=mark))["payload"]
        assert request["question"] == "Which colour?" and request["choices"] == ["red", "blue"]
        result = await s.client.call(
            "clarify.respond", {"request_id": request["request_id"], "answer": "blue"}
        )
        assert result == {"status": "ok"}
        assert (await reply_text(s, mark))["text"] == "Answer: blue"
        late = await s.client.call("clarify.respond", {"request_id": request["request_id"], "answer": "red"})
        assert late == {"status": "expired"}
        with pytest.raises(RpcFailure) as unknown:
            await s.client.call("clarify.respond", {"request_id": "00000000", "answer": "x"})
        assert unknown.value.code == 4009

    async with GatewayClient.connect(gateway.url) as client:
        created = await client.call("session.create", {"server_requests": True})
        sid = created["session_id"]
        await client.call("prompt.submit", {"session_id": sid, "text": "!clarify Free text?"})
        request = await client.server_request("clarify")
        assert request["params"]["questions"] == [{"qid": "q1", "question": "Free text?", "choices": None}]
        await client.reply(request["id"], {"answers": {"q1": "as you like"}})
        complete = await client.event("message.complete", sid)
        assert complete["payload"]["text"] == "Answer: as you like"


async def test_timed_out_server_request_emits_exactly_one_cancel(gateways):
    gateway = gateways.shared(
        "memory", REQUEST_TIMEOUTS_S={"clarify": 0.5, "approval": 0.5, "sudo": 0.5, "secret": 0.5}
    )
    async with GatewayClient.connect(gateway.url) as client:
        sid = (await client.call("session.create", {"server_requests": True}))["session_id"]
        await client.call("prompt.submit", {"session_id": sid, "text": "!clarify Anyone?"})
        request = await client.server_request("clarify")
        complete = await client.event("message.complete", sid)
        assert complete["payload"]["text"] == "Answer: (none)"
        cancels = client.find_events("request.cancel", sid)
        assert [c["payload"] for c in cancels] == [
            {
                "id": request["id"],
                "method": "clarify",
                "reason": "timeout",
                "request_id": request["params"]["request_id"],
            }
        ]
        assert client.find_events("clarify.expire", sid)
        frames_before = len(client.frames)
        await client.reply(request["id"], {"answers": {"q1": "too late"}})
        assert await client.call("gateway.ping") == {"ok": True}
        answers = [f for f in client.frames[frames_before:] if f.get("method") != "event"]
        assert len(answers) == 1 and answers[0]["result"] == {"ok": True}  # the late reply got nothing
        events = await client.call("session.events.since", {"session_id": sid})
        assert "open_requests" not in events


async def test_approval_answered_from_a_second_connection_after_the_first_left(gateway):
    first = await GatewayClient.open(gateway.url)
    created = await first.call("session.create")
    sid, key = created["session_id"], created["stored_session_id"]
    await first.call("prompt.submit", {"session_id": sid, "text": "!approve echo from-elsewhere"})
    request = await first.event("approval.request", sid)
    await first.close()
    async with GatewayClient.connect(gateway.url) as second:
        resumed = await second.call("session.resume", {"session_id": key})
        assert resumed["session_id"] == sid and resumed["running"] is True
        assert resumed["pending_approval"]["request_id"] == request["payload"]["request_id"]
        assert [r["kind"] for r in resumed["open_requests"]] == ["approval"]
        since = await second.call("session.events.since", {"session_id": sid, "last_seen": 0})
        assert since["open_requests"][0]["request_id"] == request["payload"]["request_id"]
        assert await second.call("approval.respond", {"session_id": sid, "choice": "once"}) == {"resolved": 1}
        complete = await second.event("message.complete", sid)
        assert complete["payload"]["text"] == "Ran: echo from-elsewhere (exit 0)\nfrom-elsewhere"


async def test_interrupt_releases_a_pending_clarify(gateway):
    async with Session.open(gateway) as s:
        mark = await submit(s, "!clarify Wait for me?\n!stream 3")
        request = await s.client.event("clarify.request", s.sid, after=mark)
        assert (await s.call("session.interrupt"))["status"] == "interrupted"
        complete = await reply_text(s, mark)
        assert complete["status"] == "interrupted" and complete["text"] == ""
        cancel = await s.client.event("request.cancel", s.sid, after=mark)
        assert cancel["payload"]["reason"] == "interrupted"
        late = await s.client.call(
            "clarify.respond", {"request_id": request["payload"]["request_id"], "answer": "x"}
        )
        assert late == {"status": "expired"}


async def test_interrupt_denies_pending_approvals(gateway, tmp_path):
    target = tmp_path / "keep"
    target.mkdir()
    async with Session.open(gateway) as s:
        mark = await submit(s, f"!run rm -rf {target}")
        request = await s.client.event("approval.request", s.sid, after=mark)
        await s.call("session.interrupt")
        complete = await reply_text(s, mark)
        assert complete["status"] == "interrupted"
        cancel = await s.client.event("request.cancel", s.sid, after=mark)
        assert cancel["payload"]["request_id"] == request["payload"]["request_id"]
        assert cancel["payload"]["reason"] == "interrupted"
        assert (await s.call("approval.pending"))["approvals"] == []
        # Denied, not approved: the command never ran.
        assert target.exists()
        assert [e["payload"].get("summary") for e in s.events("tool.complete", after=mark)] == ["denied"]
        assert await s.call("approval.respond", {"choice": "once"}) == {"resolved": 0}


async def test_sudo_received_and_declined(gateway):
    async with Session.open(gateway) as s:
        mark = await submit(s, "!sudo\n!sudo")
        first = await s.client.event("sudo.request", s.sid, after=mark)
        await s.client.call(
            "sudo.respond", {"request_id": first["payload"]["request_id"], "password": "hunter2"}
        )
        await s.client.wait_for(lambda: len(s.events("sudo.request", after=mark)) == 2)
        second = s.events("sudo.request", after=mark)[1]
        await s.client.call("sudo.respond", {"request_id": second["payload"]["request_id"], "password": ""})
        assert (await reply_text(s, mark))["text"] == "sudo: received\nsudo: declined"


async def test_secret_value_appears_nowhere_but_the_answer(gateway):
    async with Session.open(gateway) as s, GatewayClient.connect(gateway.url) as watcher:
        await watcher.call("session.activate", {"session_id": s.sid})
        mark = await submit(s, '!secret API_TOKEN Paste the token\n!run echo "token length ${#API_TOKEN}"')
        request = (await s.client.event("secret.request", s.sid, after=mark))["payload"]
        assert request["env_var"] == "API_TOKEN" and request["prompt"] == "Paste the token"
        await s.client.call("secret.respond", {"request_id": request["request_id"], "value": SECRET})
        complete = await reply_text(s, mark)
        assert (
            complete["text"]
            == 'secret: stored\nRan: echo "token length ${#API_TOKEN}" (exit 0)\n'
            + f"token length {len(SECRET)}"
        )
        await watcher.event("message.complete", s.sid)
        replay = await s.call("session.events.since", {"last_seen": 0})
        for client in (s.client, watcher):
            assert SECRET not in json.dumps(client.frames)
        assert SECRET not in json.dumps(replay)
        assert SECRET not in json.dumps(stored_rows(gateway.env["DATABASE_URL"], s.key))
        assert SECRET not in gateway.log_text()
        mark = await submit(s, "!secret OTHER Skip me?")
        other = (await s.client.event("secret.request", s.sid, after=mark))["payload"]
        await s.client.call("secret.respond", {"request_id": other["request_id"], "value": ""})
        assert (await reply_text(s, mark))["text"] == "secret: skipped"


async def test_always_survives_a_server_restart(gateways, tmp_path):
    word = f"zap-{uuid.uuid4().hex[:8]}"  # a pattern of this run only: the database may outlive it
    settings = {"EXTRA_DANGEROUS_PATTERNS": [[rf"\b{word}\b", "zap the widgets"]]}
    first = gateways.new("memory", **settings)
    async with Session.open(first) as s:
        mark = await submit(s, f"!run echo {word}")
        request = await s.client.event("approval.request", s.sid, after=mark)
        assert request["payload"]["description"] == "zap the widgets"
        await s.call("approval.respond", {"choice": "always"})
        assert (await reply_text(s, mark))["text"] == f"Ran: echo {word} (exit 0)\n{word}"
    first.stop()
    second = gateways.new("memory", **settings)
    async with Session.open(second) as s:
        events = await s.turn(f"!run echo {word} again")
        assert not [e for e in events if e["type"] == "approval.request"]
        assert events[-2]["payload"]["text"] == f"Ran: echo {word} again (exit 0)\n{word} again"


async def test_closing_a_session_cancels_its_open_requests_as_session_closed(gateway):
    async with Session.open(gateway) as s, GatewayClient.connect(gateway.url) as watcher:
        await watcher.call("session.activate", {"session_id": s.sid})
        mark = await submit(s, "!clarify Still there?")
        request = (await s.client.event("clarify.request", s.sid, after=mark))["payload"]
        await s.call("session.close")
        cancel = await watcher.event("request.cancel", s.sid)
        assert cancel["payload"]["request_id"] == request["request_id"]
        assert cancel["payload"]["reason"] == "session_closed"
        assert len(watcher.find_events("request.cancel", s.sid)) == 1
