"""Unit tests of the pure size logic: splitting, paging by bytes, fitting, the unstorable-text check."""

from __future__ import annotations

import json
import warnings

import pytest
from django.test import override_settings

from ws_gateway import framing
from ws_gateway.backplane.eventlog import LoggedEvent
from ws_gateway.conf import gateway_settings
from ws_gateway.errors import RpcError
from ws_gateway.rpc.call import Params
from ws_gateway.rpc.dispatch import parse
from ws_gateway.sessions import paging

TEXTS = {
    "ascii": "word " * 50_000,
    "escapes": 'quote " backslash \\ newline \n tab \t ctrl \x01 ' * 5_000,
    "emoji": "😀é中" * 40_000,
    "mixed": ('a😀\n"' * 30_000) + "z",
}


@pytest.mark.parametrize("name", TEXTS)
@pytest.mark.parametrize("budget", [16, 100, 4096, 65_536])
def test_split_text_parts_fit_and_concatenate_exactly(name, budget):
    text = TEXTS[name]
    parts = framing.split_text(text, budget)
    assert "".join(parts) == text
    assert all(framing.json_len(p) <= budget for p in parts)
    # Parts are not needlessly small: all but the last are more than half the budget.
    assert all(framing.json_len(p) > budget // 2 - 6 for p in parts[:-1])


def test_split_text_of_short_or_empty_text():
    assert framing.split_text("", 100) == []
    assert framing.split_text("abc", 100) == ["abc"]
    with pytest.raises(ValueError):
        framing.split_text("abc", 4)


def test_utf8_len_and_fits():
    assert framing.utf8_len("abc") == 3
    assert framing.utf8_len("é😀") == 6
    assert framing.utf8_len("\ud800") == 6  # sent as its escape
    assert framing.fits("é" * 10, 20) and not framing.fits("é" * 10, 19)


def test_page_back_takes_the_newest_items_that_fit():
    sizes = [10, 10, 10, 10, 10]
    assert framing.page_back(5, sizes.__getitem__, 25, 5, None) == (3, 5)
    assert framing.page_back(5, sizes.__getitem__, 25, 3, None) == (1, 3)
    assert framing.page_back(5, sizes.__getitem__, 25, 1, None) == (0, 1)
    assert framing.page_back(5, sizes.__getitem__, 1000, 5, 2) == (3, 5)
    # One item over the budget is still taken alone, so paging always moves.
    assert framing.page_back(3, [5, 500, 5].__getitem__, 100, 2, None) == (1, 2)
    assert framing.page_back(0, sizes.__getitem__, 100, 0, None) == (0, 0)
    assert framing.page_back(5, sizes.__getitem__, 100, 99, None) == (0, 5)


def test_page_forward_takes_the_leading_items_that_fit():
    assert framing.page_forward([10, 10, 10], 25, None) == 2
    assert framing.page_forward([500, 10], 25, None) == 1
    assert framing.page_forward([10, 10, 10], 1000, 1) == 1
    assert framing.page_forward([], 10, None) == 0


def test_fit_payload_leaves_out_the_largest_fields_and_names_them():
    payload = {"text": "x" * 10_000, "usage": {"input": 1}, "status": "complete"}
    fitted, omitted = framing.fit_payload(payload, 500)
    assert fitted == {"usage": {"input": 1}, "status": "complete", "omitted": {"text": 10_002}}
    assert omitted == {"text": 10_002}
    assert framing.fit_payload({"a": 1}, 500) == ({"a": 1}, {})


def test_unstorable_finds_lone_surrogates_and_nul_anywhere():
    assert framing.unstorable({"a": ["ok", {"b": "x\ud800"}]}) == "params.a[1].b"
    assert framing.unstorable({"\udc00": 1}) == "params key"
    assert framing.unstorable({"t": "nul\x00"}) == "params.t"
    assert framing.unstorable({"t": "😀 é", "n": 1, "l": [None, True]}) is None
    assert framing.may_hold_unstorable('{"t": "\\ud800"}')
    assert framing.may_hold_unstorable('{"t": "\\u0000"}')
    # A surrogate pair passes the cheap pre-check, then the full check finds one ordinary character.
    assert framing.may_hold_unstorable('"\\ud83d\\ude00"')
    assert framing.unstorable(json.loads('"\\ud83d\\ude00"')) is None
    assert not framing.may_hold_unstorable('{"t": "plain \\n"}')
    # Every decoded lone surrogate had an escape the pre-check sees.
    for frame in ['"\\uD800"', '"\\udfff"', '"\\u0000"']:
        assert framing.unstorable(json.loads(frame)) and framing.may_hold_unstorable(frame)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e999", "[1, -1e400]"])
def test_parse_refuses_non_finite_numbers(text):
    with pytest.raises(ValueError):
        parse(text)


def test_parse_keeps_ordinary_numbers():
    assert parse('{"a": 1.5, "b": -0.0, "c": 99999999999999999999999}') == {
        "a": 1.5,
        "b": -0.0,
        "c": 99999999999999999999999,
    }


def rows(*texts):
    return [{"role": "user", "text": t, "timestamp": 1.0} for t in texts]


def test_message_page_pages_backwards_by_bytes():
    messages = rows(*["x" * 1000 for _ in range(10)])
    page = paging.message_page(messages, 3500)
    assert (page.start, len(page.rows), page.more, page.count) == (7, 3, True, 10)
    page = paging.message_page(messages, 3500, before=2)
    assert (page.start, page.rows, page.more) == (0, messages[:2], False)
    page = paging.message_page(messages, 1_000_000, limit=4)
    assert page.start == 6 and page.rows == messages[6:]
    assert paging.message_page([], 100).rows == []


def test_a_row_too_large_for_a_page_is_shortened_with_a_marker():
    text = '"quoted"\n' * 20_000
    (row,) = paging.message_page(rows("a", text), 10_000, before=2).rows
    assert framing.json_len(row) <= 10_000
    assert row["index"] == 1 and row["shortened"] == {"text": len(text)}
    kept, marker = row["text"].split("\n[... ")
    assert text.startswith(kept) and len(kept) > 1000
    assert marker == f"{len(text) - len(kept)} more characters: session.message index=1 field=text]"


def test_message_chunks_rebuild_the_text():
    text = '😀ab"\n' * 50_000
    messages = rows("x", text)
    parts, offset = [], 0
    while offset is not None:
        chunk = paging.message_chunk(messages, 1, "text", offset, None, 20_000)
        assert framing.json_len(chunk) <= 20_000 + 200
        parts.append(chunk["text"])
        offset = chunk["next_offset"]
    assert "".join(parts) == text and len(parts) > 5
    assert paging.message_chunk(messages, 1, "text", 3, 4, 20_000)["text"] == text[3:7]
    for bad in [dict(index=2), dict(index=-1), dict(field="role")]:
        with pytest.raises(RpcError):
            paging.message_chunk(
                messages, **{"index": 1, "field": "text", **bad}, offset=0, limit=None, budget=100
            )


def test_event_page_takes_what_fits():
    events = [LoggedEvent(i, {"seq": i}, "y" * 100) for i in range(1, 6)]
    page, more = paging.event_page(events, 250, None)
    assert [e.seq for e in page] == [1, 2] and more
    page, more = paging.event_page(events, 10_000, 3)
    assert [e.seq for e in page] == [1, 2, 3] and more
    page, more = paging.event_page(events, 10_000, None)
    assert len(page) == 5 and not more


def test_page_params_are_validated():
    assert paging.page_params(Params({})) == {"before": None, "limit": None}
    for bad in [{"before": -1}, {"limit": 0}, {"limit": "3"}]:
        with pytest.raises(RpcError):
            paging.page_params(Params(bad))


def test_max_frame_chars_is_a_deprecated_alias_of_max_message_bytes():
    with override_settings(WS_GATEWAY={"MAX_FRAME_CHARS": 5000}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert gateway_settings.MAX_MESSAGE_BYTES == 5000
        assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    with override_settings(WS_GATEWAY={"MAX_FRAME_CHARS": 5000, "MAX_MESSAGE_BYTES": 7000}):
        assert gateway_settings.MAX_MESSAGE_BYTES == 7000
    assert gateway_settings.MAX_MESSAGE_BYTES == 1024 * 1024
