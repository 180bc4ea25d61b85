"""The client under test: ``hermes_cli/tui_dist/`` of the hermes-agent 0.19.0 wheel from PyPI.

Downloaded once with ``pip download --no-deps`` into a cache outside the repository, checked
against a pinned SHA-256 and unpacked next to it. It is a test fixture: nothing at runtime
imports or needs hermes-agent.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

VERSION = "0.19.0"
WHEEL = f"hermes_agent-{VERSION}-py3-none-any.whl"
# The PyPI file's digest: the downloaded JavaScript runs on this machine, so pin it.
WHEEL_SHA256 = "bd0bac012aee38a60894781f4597dc29ee7bedb3448540249921f10d3bef327f"
DIST_PREFIX = "hermes_cli/tui_dist/"


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ws-gateway-tests"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(cache: Path) -> Path:
    wheel = cache / WHEEL
    if wheel.exists() and _sha256(wheel) == WHEEL_SHA256:
        return wheel
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", f"hermes-agent=={VERSION}", "-d", cache],
        check=True,
    )
    actual = _sha256(wheel)
    if actual != WHEEL_SHA256:
        wheel.unlink()
        raise RuntimeError(f"{WHEEL}: sha256 {actual} is not the pinned {WHEEL_SHA256}")
    return wheel


def tui_entry() -> Path:
    """Path of the unpacked ``entry.js`` (downloading and unpacking on first use)."""
    cache = cache_dir()
    target = cache / f"hermes-agent-{VERSION}" / "tui_dist"
    entry = target / "entry.js"
    if entry.exists():
        return entry
    wheel = _download(cache)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Unpack to a scratch directory and rename into place, so a crash leaves no half tree.
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=".unpack-"))
    try:
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name.startswith(DIST_PREFIX) and not name.endswith("/"):
                    dest = scratch / name[len(DIST_PREFIX) :]
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(archive.read(name))
        if not (scratch / "entry.js").exists():
            raise RuntimeError(f"{WHEEL} has no {DIST_PREFIX}entry.js")
        try:
            scratch.rename(target)
        except OSError:  # another run unpacked it meanwhile
            if not entry.exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return entry
