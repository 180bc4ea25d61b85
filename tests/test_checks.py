"""System checks of the configuration: each misconfiguration is reported by ``manage.py check``
with its own id, and the shipped settings pass."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from django.core import checks
from django.test import override_settings

from tests.services import ROOT
from ws_gateway.conf import DEFAULTS, SCHEMA, channel_layers

IN_MEMORY = channel_layers(None)
REDIS = channel_layers("redis://127.0.0.1:6379/0")


def ids(*, deploy: bool = False, **gateway: Any) -> list[str]:
    """Ids of ws_gateway's messages for WS_GATEWAY = ``gateway`` (plus any settings already overridden)."""
    with override_settings(WS_GATEWAY=gateway):
        return [m.id for m in checks.run_checks(include_deployment_checks=deploy) if "ws_gateway" in m.id]


def messages(**gateway: Any) -> list[checks.CheckMessage]:
    with override_settings(WS_GATEWAY=gateway):
        return [m for m in checks.run_checks() if "ws_gateway" in m.id]


@pytest.fixture(autouse=True)
def _in_memory_layer():
    with override_settings(CHANNEL_LAYERS=IN_MEMORY, ALLOWED_HOSTS=["localhost"]):
        yield


def test_the_defaults_pass_and_the_schema_covers_every_key():
    assert set(SCHEMA) == set(DEFAULTS)
    assert ids() == []
    assert ids(deploy=True) == []
    assert ids(**DEFAULTS) == []


def test_an_unknown_key_is_named_with_a_suggestion():
    (message,) = messages(ORPHAN_GRACE=30)
    assert message.id == "ws_gateway.W010"
    assert "'ORPHAN_GRACE'" in message.msg and "ignored" in message.msg
    assert message.hint == "Did you mean 'ORPHAN_GRACE_S'?"
    (far,) = messages(NOTHING_LIKE_IT=1)
    assert far.hint.startswith("See ws_gateway/conf.py")
    # A deprecated name is still read, so it is not unknown.
    assert ids(MAX_FRAME_CHARS=2_000_000) == []


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("ORPHAN_GRACE_S", "20", "is a str, expected number"),
        ("ALLOW_ANONYMOUS", "0", "is a str, expected bool"),
        ("INLINE_WORKERS", 0, "expected at least 1"),
        ("INLINE_WORKERS", True, "is a bool"),
        ("LEASE_S", 0, "above 0"),
        ("MAX_MESSAGE_BYTES", 1000, "at least 65536"),
        ("ALLOWED_ORIGINS", "https://a.example", "is a str, expected list or tuple"),
        ("ALLOWED_ORIGINS", ["https://a.example", 3], "[1] is a int, expected str"),
        ("APPROVAL_CHOICES", ["once", "forever"], "has ['forever']"),
        ("REQUEST_TIMEOUTS_S", {"approval": 10, "sudo": -1}, "['sudo'] is -1"),
        ("REQUEST_TIMEOUTS_S", {"aproval": 10}, "unknown keys ['aproval']"),
        ("SANDBOX", {"netwrok": True}, "unknown keys ['netwrok']"),
        ("REDIS_URL", 6379, "is a int, expected str"),
        ("AGENT_OPTIONS", None, "is None"),
    ],
)
def test_a_wrong_type_or_shape_is_an_error(key: str, value: Any, words: str):
    found = [m for m in messages(**{key: value}) if m.id == "ws_gateway.E010"]
    assert len(found) == 1, found
    assert found[0].msg.startswith(f"WS_GATEWAY[{key!r}]")
    assert words in found[0].msg
    assert found[0].is_serious()


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ({"rate": 50}, "lacks the keys ['burst']"),
        ({"rate": 0, "burst": 10}, "['rate'] is 0"),
        ({"rate": 50, "burst": "200"}, "['burst'] is a str"),
        ([50, 200], "is a list"),
    ],
)
def test_a_bad_rate_limit_is_an_error(value: Any, words: str):
    (message,) = messages(RATE_LIMIT=value)
    assert message.id == "ws_gateway.E011"
    assert words in message.msg
    assert ids(RATE_LIMIT=None) == []
    assert ids(RATE_LIMIT={"rate": 0.5, "burst": 3}) == []


def test_an_agent_that_cannot_be_loaded_is_an_error():
    (missing,) = messages(AGENT="no.such.Backend")
    assert missing.id == "ws_gateway.E012" and "'no.such.Backend' cannot be imported" in missing.msg
    (options,) = messages(AGENT="openai", AGENT_OPTIONS={"model": "m", "modle": "x"})
    assert options.id == "ws_gateway.E012" and "modle" in options.msg
    assert ids(AGENT="ws_gateway.agent.demo.DemoBackend") == []


def test_an_agent_without_a_model_is_a_warning():
    (message,) = messages(AGENT="openai")
    assert message.id == "ws_gateway.W012" and "no model configured" in message.msg
    assert ids(AGENT="openai", AGENT_OPTIONS={"model": "qwen2.5", "base_url": "http://127.0.0.1:9/v1"}) == []


def test_the_channel_layer_must_exist_and_agree_with_redis_url():
    with override_settings(CHANNEL_LAYERS={}):
        assert ids() == ["ws_gateway.E013"]
    assert ids(REDIS_URL="redis://127.0.0.1:6379/0") == ["ws_gateway.E014"]
    with override_settings(CHANNEL_LAYERS=REDIS):
        assert ids() == ["ws_gateway.W014"]
        assert ids(REDIS_URL="redis://127.0.0.1:6379/0") == []


def test_several_workers_on_the_in_memory_layer_is_a_deploy_warning():
    assert ids(deploy=True, WORKER_ID="worker-2") == ["ws_gateway.W015"]
    assert ids(WORKER_ID="worker-2") == []  # only with --deploy
    with override_settings(CHANNEL_LAYERS=REDIS):
        assert ids(deploy=True, WORKER_ID="worker-2", REDIS_URL="redis://127.0.0.1:6379/0") == []


def test_anonymous_access_from_any_host_is_a_deploy_warning():
    with override_settings(ALLOWED_HOSTS=["*"]):
        assert ids(deploy=True) == ["ws_gateway.W020"]
        assert ids(deploy=True, ALLOW_ANONYMOUS=False) == []
        assert ids() == []


def test_channel_layers_helper_carries_the_measured_redis_settings():
    assert IN_MEMORY["default"]["CONFIG"] == {"capacity": 10000}
    host = REDIS["default"]["CONFIG"]["hosts"][0]
    assert REDIS["default"]["BACKEND"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert host["address"] == "redis://127.0.0.1:6379/0" and host["retry_on_error"]
    core = channel_layers("redis://h:1/0", "core")["default"]
    assert core["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert core["CONFIG"]["hosts"][0]["socket_timeout"] is None
    assert core["CONFIG"]["capacity"] == 10000
    with pytest.raises(ValueError, match="pubsub, core"):
        channel_layers("redis://h:1/0", "other")


def test_manage_py_check_fails_on_an_error_and_openai_is_not_imported_for_the_demo():
    bad = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "GATEWAY_SETTINGS": '{"RATE_LIMIT": {"rate": 5}}'},
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "ws_gateway.E011" in bad.stderr
    # Loading the demo backend (as a turn does) never imports the openai package.
    probe = (
        "import os, sys, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'hermes_site.settings'; "
        "django.setup(); from ws_gateway.agent.base import load_backend; load_backend('demo'); "
        "import ws_gateway.routing; print('openai' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True
    )
    assert out.stdout.strip() == "False", out.stderr


def test_metrics_allow_must_hold_networks():
    [error] = [m for m in messages(METRICS_ALLOW=["127.0.0.1/32", "not-a-net"]) if m.id.endswith("E016")]
    assert "'not-a-net'" in error.msg
    assert "ws_gateway.E016" not in ids(METRICS_ALLOW=["::1", "192.168.0.0/16"])
