"""The package list in pyproject.toml names every package of broker/ (it is not discovered)."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_broker_package_is_listed_for_the_wheel() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "broker").rglob("__init__.py")
    }
    assert on_disk <= listed, f"not in [tool.setuptools] packages: {sorted(on_disk - listed)}"
    mapped = config["tool"]["setuptools"]["package-dir"]
    assert mapped == {"broker.default_mappings": "mappings"}
    assert listed - on_disk == set(mapped)


def test_every_lua_script_ships_as_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    globs = config["tool"]["setuptools"]["package-data"]["broker.store"]
    store = REPO / "broker" / "store"
    shipped = {path for pattern in globs for path in store.glob(pattern)}
    lua = set(store.rglob("*.lua"))
    assert lua and lua <= shipped, f"not shipped: {sorted(map(str, lua - shipped))}"


def test_every_console_template_and_static_file_ships_as_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    globs = config["tool"]["setuptools"]["package-data"]["broker.admin"]
    admin = REPO / "broker" / "admin"
    shipped = {path for pattern in globs for path in admin.glob(pattern)}
    files = {p for d in ("templates", "static") for p in (admin / d).rglob("*") if p.is_file()}
    assert files and files <= shipped, f"not shipped: {sorted(map(str, files - shipped))}"
