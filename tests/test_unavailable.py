"""Features this gateway does not host answer like the reference with them absent (PROTOCOL.md section 13).

Expected shapes are those the hermes-agent 0.19.0 gateway gave on the wire with a fresh
HERMES_HOME (see notes/unavailable.md); the client reads the fields checked here.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Session
from ws_gateway.testing import GatewayClient, RpcFailure

pytestmark = pytest.mark.db

BILLING_STATE_KEYS = {
    "ok",
    "logged_in",
    "org_name",
    "org_slug",
    "role",
    "is_admin",
    "can_change_plan",
    "can_charge",
    "balance_usd",
    "balance_display",
    "cli_billing_enabled",
    "charge_presets",
    "charge_presets_display",
    "min_usd",
    "max_usd",
    "card",
    "monthly_cap",
    "auto_reload",
    "portal_url",
    "error",
    "usage",
}
SUBSCRIPTION_STATE_KEYS = {
    "ok",
    "logged_in",
    "is_admin",
    "can_change_plan",
    "org_name",
    "org_id",
    "role",
    "context",
    "current",
    "tiers",
    "portal_url",
    "error",
    "usage",
}
NOT_LOGGED_IN_KEYS = {
    "ok",
    "error",
    "message",
    "portal_url",
    "retry_after",
    "payload",
    "actor",
    "code",
    "recovery",
}


def _step_up(r: dict[str, Any]) -> None:
    assert set(r) == {"ok", "error", "message", "granted"}
    assert (r["ok"], r["granted"]) == (False, False) and "not offered" in r["message"]


def _billing_state(r: dict[str, Any]) -> None:
    assert set(r) == BILLING_STATE_KEYS
    assert (r["ok"], r["logged_in"], r["can_charge"], r["card"]) == (True, False, False, None)
    assert r["usage"] == {"available": False}


def _subscription_state(r: dict[str, Any]) -> None:
    assert set(r) == SUBSCRIPTION_STATE_KEYS
    assert (r["ok"], r["logged_in"], r["current"], r["tiers"]) == (True, False, None, [])


def _not_logged_in(r: dict[str, Any]) -> None:
    assert NOT_LOGGED_IN_KEYS <= set(r) <= NOT_LOGGED_IN_KEYS | {"idempotency_key"}
    assert (r["ok"], r["error"], r["payload"]) == (False, "invalid_token", {})
    assert "not offered" in r["message"]


def _echoes_key(r: dict[str, Any]) -> None:
    _not_logged_in(r)
    assert r["idempotency_key"] == "k-1"


def _mints_key(r: dict[str, Any]) -> None:
    _not_logged_in(r)
    assert isinstance(r["idempotency_key"], str) and r["idempotency_key"]


def _voice_status(r: dict[str, Any]) -> None:
    assert (r["enabled"], r["tts"], r["available"], r["audio_available"], r["stt_available"]) == (
        False,
        False,
        False,
        False,
        False,
    )
    assert r["record_key"] == "ctrl+b"
    assert "not offered" in r["details"]


def _learning_frames(r: dict[str, Any]) -> None:
    assert [f["reveal"] for f in r["frames"]] == [0.0, 1.0]
    for frame in r["frames"]:
        assert (frame["visible"], frame["labels"], frame["date"]) == (0, [], "")
        text, style, _alpha = frame["grid"][0][0]
        assert style == "dim" and "no learning journal" in text
    assert (r["count"], r["cols"], r["rows"], r["buckets"], r["categories"]) == (0, 100, 12, [], [])
    assert [entry["style"] for entry in r["legend"]] == ["skill", "memory"]
    assert r["axis"] == {"start": "oldest", "end": "now"}


def _skills_reload(r: dict[str, Any]) -> None:
    assert r["result"] == {"added": [], "removed": [], "unchanged": [], "total": 0, "commands": 0}
    assert "0 skill(s) available" in r["output"]


def _rollback_restore(r: dict[str, Any]) -> None:
    assert set(r) == {"success", "error"} and r["success"] is False
    assert "rollback checkpoints" in r["error"]


def _clipboard(r: dict[str, Any]) -> None:
    assert set(r) == {"attached", "message"} and r["attached"] is False


def _no_learning(r: dict[str, Any]) -> None:
    assert set(r) == {"ok", "message"} and r["ok"] is False


# (method, params, expected result or a check). ``$SID`` stands for the caller's session id.
# Every call the client makes by itself is here; so are user actions that get a result.
RESULTS: list[tuple[str, dict[str, Any], Any]] = [
    ("pet.cells", {"graphics": False, "state": "idle"}, {"enabled": False}),
    ("pet.gallery", {}, {"enabled": False, "active": "", "pets": []}),
    ("billing.state", {}, _billing_state),
    ("billing.step_up", {"session_id": "$SID"}, _step_up),
    ("billing.charge", {"amount_usd": "5", "idempotency_key": "k-1"}, _echoes_key),
    ("billing.charge", {"amount_usd": "5"}, _mints_key),
    ("billing.charge_status", {"charge_id": "c1"}, _not_logged_in),
    ("billing.auto_reload", {"enabled": True, "threshold": 5, "top_up_amount": 10}, _not_logged_in),
    ("subscription.state", {}, _subscription_state),
    ("subscription.preview", {"subscription_type_id": "t1"}, _not_logged_in),
    ("subscription.change", {"cancel": True}, _not_logged_in),
    ("subscription.change", {"subscription_type_id": "t1"}, _not_logged_in),
    ("subscription.resume", {}, _not_logged_in),
    ("subscription.upgrade", {"subscription_type_id": "t1", "idempotency_key": "k-1"}, _echoes_key),
    ("learning.frames", {"cols": 100, "frames": 2, "rows": 12}, _learning_frames),
    ("learning.detail", {"id": "x"}, _no_learning),
    ("learning.delete", {"id": "x"}, _no_learning),
    ("learning.edit", {"id": "x", "content": "y"}, _no_learning),
    ("voice.toggle", {"action": "status"}, _voice_status),
    ("voice.toggle", {}, _voice_status),
    ("voice.toggle", {"action": "off"}, {"enabled": False, "record_key": "ctrl+b", "tts": False}),
    ("voice.record", {"action": "stop", "session_id": "$SID"}, {"status": "stopped"}),
    ("browser.manage", {"action": "status", "session_id": "$SID"}, {"connected": False, "url": ""}),
    ("browser.manage", {"action": "disconnect"}, {"connected": False}),
    ("plugins.manage", {"action": "list"}, {"plugins": [], "user_count": 0, "bundled_count": 0}),
    ("skills.manage", {"action": "list"}, {"skills": {}}),
    ("skills.manage", {"action": "inspect", "query": "x"}, {"info": {}}),
    ("skills.manage", {"action": "search", "query": "x"}, {"results": []}),
    (
        "skills.manage",
        {"action": "browse", "page": 3},
        {"items": [], "page": 3, "total_pages": 1, "total": 0},
    ),
    ("skills.reload", {}, _skills_reload),
    ("rollback.list", {"session_id": "$SID"}, {"enabled": False, "checkpoints": []}),
    ("rollback.diff", {"session_id": "$SID", "hash": "abcd"}, {"stat": "", "diff": ""}),
    ("rollback.restore", {"session_id": "$SID", "hash": "abcd1234"}, _rollback_restore),
    ("rollback.restore", {"session_id": "$SID", "hash": "abcd1234", "file_path": "a.txt"}, _rollback_restore),
    ("clipboard.paste", {"session_id": "$SID"}, _clipboard),
]

# (method, params, code, words in the message): user actions needing the feature, and bad input.
ERRORS: list[tuple[str, dict[str, Any], int, str]] = [
    ("pet.select", {"slug": "cat"}, 5031, "does not host pets"),
    ("pet.select", {}, 4004, "slug required"),
    ("voice.toggle", {"action": "on"}, -32000, "not offered"),
    ("voice.toggle", {"action": "tts"}, 4014, "voice mode is off"),
    ("voice.toggle", {"action": "sing"}, 4013, "unknown voice action"),
    ("voice.record", {"action": "start", "session_id": "$SID"}, 4015, "voice mode is off"),
    ("voice.record", {"action": "pause"}, 4019, "unknown voice action"),
    (
        "browser.manage",
        {"action": "connect", "session_id": "$SID", "url": "http://127.0.0.1:9222"},
        -32000,
        "not offered",
    ),
    ("browser.manage", {"action": "explode"}, 4015, "unknown browser action"),
    ("plugins.manage", {"action": "toggle", "enable": True, "name": "x"}, 5026, "does not host plugins"),
    ("plugins.manage", {"action": "nuke"}, 4017, "unknown plugins action"),
    ("skills.manage", {"action": "install", "query": "x"}, -32000, "not offered"),
    ("skills.manage", {"action": "browse", "page": 0}, -32602, "page"),
    ("skills.manage", {"action": 7}, -32602, "action must be a string"),
    ("rollback.list", {}, 4006, "session_id required"),
    ("rollback.list", {"session_id": "nope"}, 4001, "session not found"),
    ("rollback.diff", {"session_id": "$SID"}, 4014, "hash required"),
    ("rollback.restore", {"session_id": "$SID", "hash": ""}, 4014, "hash required"),
    ("clipboard.paste", {"session_id": "nope"}, 4001, "session not found"),
    ("model.save_key", {"slug": "openrouter", "api_key": "sk-x"}, -32000, "not offered"),
    ("model.save_key", {"slug": "openrouter"}, 4001, "slug and api_key are required"),
    ("model.disconnect", {"slug": "openrouter"}, -32000, "not offered"),
    ("model.disconnect", {}, 4001, "slug is required"),
    ("learning.frames", {"cols": "wide"}, -32602, "cols must be an integer"),
]


def _fill(params: dict[str, Any], sid: str) -> dict[str, Any]:
    return {k: (sid if v == "$SID" else v) for k, v in params.items()}


def _case_id(case: tuple[Any, ...]) -> str:
    method, params = case[0], case[1]
    action = params.get("action")
    return f"{method}:{action}" if isinstance(action, str) else method


@pytest.mark.parametrize("case", RESULTS, ids=[_case_id(c) for c in RESULTS])
async def test_absent_feature_answers_the_reference_shape(gateway, case):
    method, params, expected = case
    async with Session.open(gateway) as s:
        result = await s.client.call(method, _fill(params, s.sid))
    if callable(expected):
        expected(result)
    else:
        assert result == expected


@pytest.mark.parametrize("case", ERRORS, ids=[f"{_case_id(c)}-{c[2]}" for c in ERRORS])
async def test_user_action_or_bad_input_gets_one_clear_error(gateway, case):
    method, params, code, words = case
    async with Session.open(gateway) as s:
        with pytest.raises(RpcFailure) as err:
            await s.client.call(method, _fill(params, s.sid))
    assert err.value.code == code
    assert words in err.value.message


async def test_pet_poll_never_errors_without_a_session(gateway):
    # The widget polls before any session exists; the answer must stay a plain object.
    async with GatewayClient.connect(gateway.url) as client:
        for _ in range(3):
            assert await client.call("pet.cells", {"graphics": True, "state": "idle"}) == {"enabled": False}
