"""The README's "Using the app in your own project", followed to the letter in a new virtualenv.

Builds the wheel from a copy of the package (never in the checkout), installs it
in a venv without the system's site-packages, runs ``django-admin startproject
mysite``, applies the README's blocks (read from README.md between its
``<!-- fresh-project: ... -->`` markers, so the README and this test cannot
drift), migrates, serves with daphne and completes a turn with the shipped client.
A tier of its own (``pytest -m freshproject``): it installs packages (from the
pip cache or the index) and takes about a minute.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import ROOT, free_port, wait_port

pytestmark = pytest.mark.freshproject

BLOCK = re.compile(
    r"<!-- fresh-project: (?P<target>\S+)(?: (?P<mode>append|replace))? -->\s*```\w*\n(?P<body>.*?)```", re.S
)


def readme_blocks() -> dict[str, tuple[str | None, str]]:
    """{target: (mode, text)} of every marked block of README.md."""
    blocks = {m["target"]: (m["mode"], m["body"]) for m in BLOCK.finditer((ROOT / "README.md").read_text())}
    assert {"mysite/settings.py", "mysite/asgi.py", "mysite/urls.py", "commands"} <= set(blocks), blocks
    return blocks


def run(cmd: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{cmd}: {done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv holding the built wheel and nothing else of this checkout."""
    tmp = tmp_path_factory.mktemp("fresh")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "ws_gateway", source / "ws_gateway", ignore=shutil.ignore_patterns("__pycache__"))
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"), str(source)], tmp)
    (wheel,) = (tmp / "dist").glob("ws_gateway-*.whl")
    env = tmp / "venv"
    run([sys.executable, "-m", "venv", str(env)], tmp)
    # No extras: a one-process project with the demo agent needs neither Redis nor openai.
    run([str(env / "bin" / "pip"), "install", "-q", str(wheel)], tmp)
    return env


@pytest.fixture
def project(venv: Path, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    run([str(venv / "bin" / "django-admin"), "startproject", "mysite"], tmp_path, env=env)
    site = tmp_path / "mysite"
    for target, (mode, body) in readme_blocks().items():
        if target == "commands":
            continue
        path = site / target
        path.write_text(path.read_text() + "\n" + body if mode == "append" else body)
    yield site, env


def test_the_readme_in_a_fresh_project(project: tuple[Path, dict[str, str]], venv: Path, tmp_path: Path):
    site, env = project
    # The wheel carries the app and nothing else of the checkout.
    python = str(venv / "bin" / "python")
    probe = (
        "import importlib.util as u; "
        "print([bool(u.find_spec(m)) for m in ('hermes_site', 'tests', 'openai')])"
    )
    assert run([python, "-c", probe], tmp_path, env=env).stdout.strip() == "[False, False, False]"

    commands = readme_blocks()["commands"][1].strip().splitlines()
    migrate, serve, client = commands
    assert migrate == "python manage.py migrate"
    migrated = run([python, *migrate.split()[1:]], site, env=env)
    assert "Applying ws_gateway.0001_initial... OK" in migrated.stdout
    checked = run([python, "manage.py", "check"], site, env=env)
    assert "ERROR" not in checked.stderr

    port = free_port()
    cmd = serve.split()
    assert cmd[:5] == ["daphne", "-b", "127.0.0.1", "-p", "8000"]
    log = tmp_path / "daphne.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(venv / "bin" / "daphne"), *cmd[1:4], str(port), *cmd[5:]],
            cwd=site,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_port(port, proc=server)
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/healthz", timeout=10) as health:
            assert health.status == 200
        with urllib.request.urlopen(f"{base}/", timeout=10) as console:
            page = console.read().decode()
        script = re.search(r'src="(/static/ws_gateway/[^"]+\.js)"', page).group(1)
        with urllib.request.urlopen(base + script, timeout=10) as static:
            assert static.status == 200  # served by daphne through whitenoise

        client_cmd = client.split()
        assert client_cmd[:3] == ["python", "-m", "ws_gateway.client"]
        url = client_cmd[3].replace("8000", str(port))
        talked = run(
            [python, "-m", "ws_gateway.client", url], tmp_path, env=env, input="hello from the README\n"
        )
        assert "You said: hello from the README" in talked.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert f"Listening on TCP address 127.0.0.1:{port}" in log.read_text()
