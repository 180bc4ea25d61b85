"""The distribution's metadata: requirements.txt (the host project) lists exactly the app's
dependencies and extras, and requirements-min.txt pins exactly their lower bounds."""

from __future__ import annotations

import re
import tomllib

from packaging.version import Version

from tests.services import ROOT

HOST_ONLY = {"dj-database-url", "psycopg"}


def name(spec: str) -> str:
    return re.split(r"[\[<>=!~ ;]", spec, maxsplit=1)[0].lower()


def lines(path: str) -> list[str]:
    return [
        line.strip()
        for line in (ROOT / path).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def app_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = [
        *project["dependencies"],
        *(s for extra in project["optional-dependencies"].values() for s in extra),
    ]
    return {name(spec): spec for spec in specs}


def test_requirements_txt_is_the_app_with_its_extras_and_the_host_only_packages():
    listed = {name(spec): spec for spec in lines("requirements.txt")}
    app = app_requirements()
    assert set(listed) - HOST_ONLY == set(app)
    for package, spec in app.items():
        assert listed[package] == spec


def test_requirements_min_pins_every_lower_bound():
    pins = {name(spec): spec.split("==")[1] for spec in lines("requirements-min.txt")}
    floors = {}
    for spec in [
        *app_requirements().values(),
        *(s for s in lines("requirements.txt") if name(s) in HOST_ONLY),
    ]:
        floors[name(spec)] = re.search(r">=([^,]+)", spec).group(1)
    assert set(pins) == set(floors)
    for package, floor in floors.items():
        assert Version(pins[package]) == Version(floor), package  # "5.2" and "5.2.0" are one version


def test_only_the_app_is_packaged_with_its_data():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert tool["packages"]["find"]["include"] == ["ws_gateway", "ws_gateway.*"]
    assert (ROOT / "ws_gateway" / "py.typed").exists()
