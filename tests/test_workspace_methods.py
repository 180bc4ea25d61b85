"""Files a client names, in-process: input.detect_drop, complete.path, paste.collapse and
image.attach on a live session registered for the test (never started: no agent, no events),
working in a temporary directory. Paths never leave the session's cwd; bad input gets 4002."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ws_gateway.methods  # noqa: F401 - registers the methods
from ws_gateway import workspace
from ws_gateway.caller import RemoteCaller
from ws_gateway.errors import RpcError
from ws_gateway.methods import workspace as workspace_methods
from ws_gateway.rpc.call import Call, Params
from ws_gateway.rpc.registry import registry as methods
from ws_gateway.sessions.live import LiveSession
from ws_gateway.sessions.registry import registry as sessions

CONN = "c-workspace-test"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveSession]:
    session = LiveSession("rt-ws-test", "20260101_000000_dddddd", owner_id=None, cwd=str(tmp_path))
    sessions.add(session)
    sessions.link(CONN, session)
    yield session
    sessions.unlink_connection(CONN)
    sessions.remove(session)


def call(method: str, conn: str = CONN, **params: Any) -> Any:
    spec = methods.get(method)
    assert spec is not None
    return spec.handler(Call(RemoteCaller(conn, None), method, Params(params)))


def error(method: str, **params: Any) -> RpcError:
    with pytest.raises(RpcError) as failed:
        call(method, **params)
    return failed.value


# -- input.detect_drop ------------------------------------------------------------------


def test_a_dropped_file_path_becomes_an_attachment_line(live: LiveSession, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    out = call("input.detect_drop", text="file://notes.txt   summarise it")
    assert out == {
        "matched": True,
        "is_image": False,
        "path": str(tmp_path / "notes.txt"),
        "name": "notes.txt",
        "text": f"[User attached file: {tmp_path / 'notes.txt'}]\nsummarise it",
    }


def test_a_dropped_image_joins_the_next_prompt(live: LiveSession, tmp_path: Path) -> None:
    (tmp_path / "shot.PNG").write_bytes(PNG)
    out = call("input.detect_drop", text="shot.PNG")
    assert out["is_image"] and out["count"] == 1 and out["text"] == "[User attached image: shot.PNG]"
    assert live.attachments[0]["mime"] == "image/png" and live.attachments[0]["data"] == PNG


@pytest.mark.parametrize(
    "text",
    ["", "   ", "no such file", "'unbalanced quote", "../outside.txt", "/etc/passwd", "subdir"],
)
def test_text_that_is_not_a_file_under_the_cwd_is_not_a_drop(
    live: LiveSession, tmp_path: Path, text: str
) -> None:
    (tmp_path / "subdir").mkdir()
    (tmp_path.parent / "outside.txt").write_text("x")
    assert call("input.detect_drop", text=text) == {"matched": False}
    assert not live.attachments


def test_without_a_session_nothing_is_a_drop(tmp_path: Path) -> None:
    assert call("input.detect_drop", conn="c-nobody", text="x") == {"matched": False}


# -- complete.path -------------------------------------------------------------------------


def test_path_completion_lists_entries_under_the_cwd(live: LiveSession, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("")
    (tmp_path / "setup.cfg").write_text("")
    (tmp_path / ".secret").write_text("")
    assert [i["text"] for i in call("complete.path", word="s")["items"]] == ["setup.cfg", "src/"]
    assert [i["text"] for i in call("complete.path", word="./src/a")["items"]] == ["src/app.py"]
    assert [i["text"] for i in call("complete.path", word=".s")["items"]] == [".secret"]  # asked for
    for word in ("", "/etc/", "~/", "../", "setup.cfg/x", "nothing/"):
        assert call("complete.path", word=word)["items"] == []


def test_path_completion_stops_at_the_limit(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"f{i}").write_text("")
    assert [i["text"] for i in workspace.complete(str(tmp_path), "f", limit=3)] == ["f0", "f1", "f2"]


@pytest.mark.parametrize("path", ["", "a\x00b", "..", "../x", "/"])
def test_paths_outside_the_cwd_or_malformed_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(RpcError) as failed:
        workspace.inside(str(tmp_path), path)
    assert failed.value.code == 4002
    assert not workspace.is_inside(str(tmp_path), path)


def test_a_symlink_out_of_the_cwd_is_refused(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("/etc")
    assert not workspace.is_inside(str(tmp_path), "link/passwd")
    assert workspace.inside(str(tmp_path), ".") == tmp_path.resolve()


# -- paste.collapse ----------------------------------------------------------------------------


def test_a_paste_is_saved_under_the_cwd_and_numbered(live: LiveSession, tmp_path: Path) -> None:
    first = call("paste.collapse", text="a\nb\nc")
    second = call("paste.collapse", text="d")
    assert first["lines"] == 3 and second["lines"] == 1
    assert Path(first["path"]).read_text() == "a\nb\nc"
    assert Path(first["path"]).parent == tmp_path / ".gateway-pastes"
    assert first["placeholder"] == f"[Pasted text #1: 3 lines -> {first['path']}]"
    assert second["placeholder"].startswith("[Pasted text #2: 1 lines -> ")


def test_a_paste_without_a_session_is_only_counted(tmp_path: Path) -> None:
    assert call("paste.collapse", conn="c-nobody", text="x\ny") == {
        "placeholder": "[Pasted text: 2 lines]",
        "lines": 2,
    }
    assert error("paste.collapse", text="").message == "empty paste"


# -- image.attach ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (base64.b64encode(PNG).decode(), "image/png"),
        ("data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8jpeg").decode(), "image/jpeg"),
        ("data:;base64," + base64.b64encode(PNG).decode(), "image/png"),  # no type: png
    ],
)
def test_an_image_sent_as_data_is_attached(live: LiveSession, data: str, mime: str) -> None:
    out = call("image.attach", session_id=live.id, data=data, name="  ")
    assert out == {
        "attached": True,
        "name": "image",
        "count": 1,
        "remainder": "",
        "text": "[User attached image: image]",
    }
    assert live.attachments[0]["mime"] == mime


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"data": "data:text/plain;base64,aGk="}, "unsupported image type: text/plain"),
        ({"data": "abc"}, "data must be base64"),
        ({"data": "===="}, "image must be 1 to 10485760 bytes"),
        ({}, "path or data required"),
        ({"path": "missing.png"}, "image not found: missing.png"),
        ({"path": "notes.txt"}, "unsupported image: notes.txt"),
        ({"path": "../x.png"}, "path is outside the session's working directory: ../x.png"),
    ],
)
def test_bad_images_are_refused_and_nothing_is_attached(
    live: LiveSession, tmp_path: Path, params: dict[str, Any], message: str
) -> None:
    (tmp_path / "notes.txt").write_text("x")
    failure = error("image.attach", session_id=live.id, **params)
    assert failure.message == message
    assert not live.attachments


def test_an_image_path_is_attached_up_to_the_per_prompt_limit(live: LiveSession, tmp_path: Path) -> None:
    (tmp_path / "a.webp").write_bytes(b"RIFFxxxxWEBP")
    for n in range(1, workspace_methods.MAX_ATTACHMENTS + 1):
        assert call("image.attach", session_id=live.id, path="a.webp")["count"] == n
    assert error("image.attach", session_id=live.id, path="a.webp").message == "at most 8 images per prompt"
    assert len(live.attachments) == workspace_methods.MAX_ATTACHMENTS


def test_an_image_over_the_size_limit_is_refused(
    live: LiveSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workspace_methods, "MAX_IMAGE_BYTES", 16)
    (tmp_path / "big.gif").write_bytes(b"GIF89a" + b"\x00" * 32)
    assert (
        error("image.attach", session_id=live.id, path="big.gif").message
        == "image too large: 38 bytes (max 16)"
    )
    assert not live.attachments


def test_resize_is_remembered_for_the_callers_session(live: LiveSession) -> None:
    assert call("terminal.resize", session_id=live.id, cols=99_999) == {"cols": 10_000}
    assert live.config["cols"] == 10_000
    assert call("terminal.resize", cols=120) == {"cols": 120}  # no session named: nothing stored
    assert live.config["cols"] == 10_000
