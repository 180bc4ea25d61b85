"""Features of a hermes install that this gateway does not host (PROTOCOL.md section 13).

The hermes terminal UI calls methods for pets, billing, subscriptions, the learning
journal, voice, browser control, plugins, skills, rollback checkpoints, provider keys
and the clipboard. Each one here answers with the result shape the reference gateway
gives when that feature is absent or switched off, so the client shows its own
"not available" state. Calls the client makes by itself (the ``pet.cells`` poll,
``voice.record stop``, status reads) always get a result. An explicit user action
that would need the feature (adopt a pet, turn voice on, connect a browser, install a
skill, save a provider key) gets one error saying this gateway does not offer it,
with the reference's code where it has one for that state.

The behaviour is a table: :data:`FEATURES` maps each method to a :class:`Feature`.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import HANDLER_ERROR
from ..rpc import RpcError, method
from ..rpc.call import Call, Params
from ..sessions import lifecycle


@dataclass(frozen=True, slots=True)
class Refusal:
    """An error answer: the code and a message in this gateway's words."""

    code: int
    message: str


# A fixed result (copied per call), a result built from the params, or an error.
Answer = Mapping[str, Any] | Callable[[Params], dict[str, Any]] | Refusal


@dataclass(frozen=True, slots=True)
class Feature:
    """How one method of an absent feature answers."""

    answer: Answer = field(default_factory=dict)
    # Methods the client drives with an ``action`` param answer per action instead.
    actions: Mapping[str, Answer] | None = None
    default_action: str = ""
    unknown_action: Refusal = Refusal(4015, "unknown action")
    # The reference resolves the session first: 4006 without one, 4001 when not live.
    session: bool = False
    # String params that must be present and non-empty, checked after the session.
    required: tuple[tuple[str, Refusal], ...] = ()


def _not_offered(what: str) -> Refusal:
    """The one clear error for a user action on a feature this gateway lacks."""
    return Refusal(HANDLER_ERROR, f"{what} is not offered by this gateway")


# -- shapes ----------------------------------------------------------------

_NO_BILLING = "billing is not offered by this gateway (no Nous Portal account is connected)"

# The reference's envelope for a portal call made while not logged in.
_NOT_LOGGED_IN: dict[str, Any] = {
    "ok": False,
    "error": "invalid_token",
    "message": _NO_BILLING,
    "portal_url": None,
    "retry_after": None,
    "payload": {},
    "actor": None,
    "code": None,
    "recovery": None,
}

_BILLING_STATE: dict[str, Any] = {
    "ok": True,
    "logged_in": False,
    "org_name": None,
    "org_slug": None,
    "role": None,
    "is_admin": False,
    "can_change_plan": False,
    "can_charge": False,
    "balance_usd": None,
    "balance_display": "\u2014",
    "cli_billing_enabled": False,
    "charge_presets": [],
    "charge_presets_display": [],
    "min_usd": None,
    "max_usd": None,
    "card": None,
    "monthly_cap": None,
    "auto_reload": None,
    "portal_url": None,
    "error": None,
    "usage": {"available": False},
}

_SUBSCRIPTION_STATE: dict[str, Any] = {
    "ok": True,
    "logged_in": False,
    "is_admin": False,
    "can_change_plan": False,
    "org_name": None,
    "org_id": None,
    "role": None,
    "context": "personal",
    "current": None,
    "tiers": [],
    "portal_url": None,
    "error": None,
    "usage": {"available": False},
}

_RECORD_KEY = "ctrl+b"  # the client's default push-to-talk binding
_VOICE_OFF: dict[str, Any] = {"enabled": False, "record_key": _RECORD_KEY, "tts": False}
_VOICE_STATUS: dict[str, Any] = {
    **_VOICE_OFF,
    "available": False,
    "audio_available": False,
    "stt_available": False,
    "details": "Voice input and speech output are not offered by this gateway.",
}

_NO_LEARNING: dict[str, Any] = {"ok": False, "message": "this gateway keeps no learned skills or memories"}


def _with_idempotency_key(params: Params) -> dict[str, Any]:
    """The not-logged-in envelope; money-moving calls echo (or mint) their idempotency key."""
    key = params.string("idempotency_key") or str(uuid.uuid4())
    return {**copy.deepcopy(_NOT_LOGGED_IN), "idempotency_key": key}


def _skills_page(params: Params) -> dict[str, Any]:
    page = params.integer("page", 1, minimum=1)
    return {"items": [], "page": page, "total_pages": 1, "total": 0}


def _learning_frames(params: Params) -> dict[str, Any]:
    """An empty journey map, laid out like the reference's at the requested size."""
    cols = max(20, params.integer("cols", 80) or 80)
    rows = max(10, params.integer("rows", 24) or 24)
    count = min(48, params.integer("frames", 48, minimum=1) or 48)  # cap: the client asks for 2
    grid = [[["nothing learned yet: this gateway keeps no learning journal", "dim", 0.7]]]
    frames = [
        {
            "reveal": i / (count - 1) if count > 1 else 1.0,
            "date": "",
            "visible": 0,
            "grid": copy.deepcopy(grid),
            "labels": [],
        }
        for i in range(count)
    ]
    return {
        "frames": frames,
        "legend": [
            {"glyph": "\u25cf", "style": "skill", "label": "skills (0)"},
            {"glyph": "\u25c6", "style": "memory", "label": "memories (0)"},
        ],
        "categories": [],
        "buckets": [],
        "summary": ["nothing learned: 0 skills, 0 memories"],
        "axis": {"start": "oldest", "end": "now"},
        "count": 0,
        "cols": cols,
        "rows": rows,
    }


# -- the table ---------------------------------------------------------------

_NEED_HASH = (("hash", Refusal(4014, "hash required")),)

FEATURES: dict[str, Feature] = {
    # Pets: the widget polls pet.cells; the gallery opens on /pet.
    "pet.cells": Feature({"enabled": False}),
    "pet.gallery": Feature({"enabled": False, "active": "", "pets": []}),
    "pet.select": Feature(
        Refusal(5031, "cannot adopt a pet: this gateway does not host pets"),
        required=(("slug", Refusal(4004, "slug required")),),
    ),
    # Billing and subscriptions: state reads say "not logged in"; the rest get the
    # reference's not-logged-in envelope (a result, which the client renders).
    "billing.state": Feature(_BILLING_STATE),
    "billing.step_up": Feature({"ok": False, "error": "error", "message": _NO_BILLING, "granted": False}),
    "billing.charge": Feature(_with_idempotency_key),
    "billing.charge_status": Feature(_NOT_LOGGED_IN),
    "billing.auto_reload": Feature(_NOT_LOGGED_IN),
    "subscription.state": Feature(_SUBSCRIPTION_STATE),
    "subscription.preview": Feature(_NOT_LOGGED_IN),
    "subscription.change": Feature(_NOT_LOGGED_IN),
    "subscription.resume": Feature(_NOT_LOGGED_IN),
    "subscription.upgrade": Feature(_with_idempotency_key),
    # The learning journal (/journey): an empty map; node actions find nothing.
    "learning.frames": Feature(_learning_frames),
    "learning.detail": Feature(_NO_LEARNING),
    "learning.delete": Feature(_NO_LEARNING),
    "learning.edit": Feature(_NO_LEARNING),
    # Voice: mode is always off, so recording cannot start.
    "voice.toggle": Feature(
        actions={
            "status": _VOICE_STATUS,
            "off": _VOICE_OFF,
            "on": _not_offered("voice mode"),
            "tts": Refusal(4014, "voice mode is off: this gateway does not offer speech output"),
        },
        default_action="status",
        unknown_action=Refusal(4013, "unknown voice action"),
    ),
    "voice.record": Feature(
        actions={
            "start": Refusal(4015, "voice mode is off: this gateway does not offer voice input"),
            "stop": {"status": "stopped"},
        },
        unknown_action=Refusal(4019, "unknown voice action"),
    ),
    # Browser control over CDP (/browser).
    "browser.manage": Feature(
        actions={
            "status": {"connected": False, "url": ""},
            "disconnect": {"connected": False},
            "connect": _not_offered("browser control"),
        },
        default_action="status",
        unknown_action=Refusal(4015, "unknown browser action"),
    ),
    # Plugins hub and skills hub: nothing installed, nothing to install.
    "plugins.manage": Feature(
        actions={
            "list": {"plugins": [], "user_count": 0, "bundled_count": 0},
            "toggle": Refusal(5026, "no plugins are installed: this gateway does not host plugins"),
        },
        default_action="list",
        unknown_action=Refusal(4017, "unknown plugins action"),
    ),
    "skills.manage": Feature(
        actions={
            "list": {"skills": {}},
            "inspect": {"info": {}},
            "search": {"results": []},
            "browse": _skills_page,
            "install": _not_offered("installing skills"),
        },
        default_action="list",
        unknown_action=Refusal(4017, "unknown skills action"),
    ),
    "skills.reload": Feature(
        {
            "output": "Skills are not hosted by this gateway: nothing to reload.\n0 skill(s) available",
            "result": {"added": [], "removed": [], "unchanged": [], "total": 0, "commands": 0},
        }
    ),
    # Rollback checkpoints (/rollback): switched off.
    "rollback.list": Feature({"enabled": False, "checkpoints": []}, session=True),
    "rollback.diff": Feature({"stat": "", "diff": ""}, session=True, required=_NEED_HASH),
    "rollback.restore": Feature(
        {"success": False, "error": "no checkpoints: this gateway does not keep rollback checkpoints"},
        session=True,
        required=_NEED_HASH,
    ),
    # Provider keys (the model picker's key stage): the deployment owns its credentials.
    "model.save_key": Feature(
        _not_offered("saving provider keys"),
        required=(
            ("slug", Refusal(4001, "slug and api_key are required")),
            ("api_key", Refusal(4001, "slug and api_key are required")),
        ),
    ),
    "model.disconnect": Feature(
        _not_offered("disconnecting providers"),
        required=(("slug", Refusal(4001, "slug is required")),),
    ),
    # Ctrl+V: the gateway cannot see the user's clipboard.
    "clipboard.paste": Feature(
        {"attached": False, "message": "no clipboard image: this gateway cannot read your clipboard"},
        session=True,
    ),
}


def _choose(feature: Feature, params: Params) -> Answer:
    if feature.actions is None:
        return feature.answer
    action = params.string("action") or feature.default_action
    return feature.actions.get(action, feature.unknown_action)


def answer_unavailable(call: Call) -> dict[str, Any]:
    """Answer ``call`` from :data:`FEATURES`."""
    feature = FEATURES[call.method]
    params = call.params
    if feature.session:
        lifecycle.get_live(params.session_id(), call.conn.user_id)
    for key, refusal in feature.required:
        if not params.string(key):
            raise RpcError(refusal.code, refusal.message)
    answer = _choose(feature, params)
    if isinstance(answer, Refusal):
        raise RpcError(answer.code, answer.message)
    if callable(answer):
        return answer(params)
    return copy.deepcopy(dict(answer))


for _name in FEATURES:
    method(_name)(answer_unavailable)
