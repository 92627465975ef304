"""The README's settings table documents every setting, with its default.

A new ``Settings`` field without a row, a row for a setting that no longer
exists, or a default changed in the code but not in the table fails here.
deploy/broker.toml, the sample settings file, must load and name only real
settings (also in its commented-out lines).
"""

from __future__ import annotations

import re
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any

import pytest

from broker.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
SETTINGS = {f.name: f for f in fields(Settings)}
_TICKED = re.compile(r"`([^`]*)`")


def table_rows(readme: str) -> list[tuple[str, str]]:
    """(setting cell, default cell) of each row of the table under "## Settings"."""
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`"):
            rows.append((cells[0], cells[1]))
    return rows


ROWS = table_rows((REPO / "README.md").read_text(encoding="utf-8"))


def documented() -> dict[str, str]:
    """Setting name -> its default as the table gives it ("" when it is not literal)."""
    names: dict[str, str] = {}
    for setting_cell, default_cell in ROWS:
        keys = _TICKED.findall(setting_cell)
        values = _TICKED.findall(default_cell)
        literal = re.fullmatch(r"(`[^`]*`(, )?)+", default_cell) is not None
        for n, key in enumerate(keys):
            if not literal:
                names[key] = ""
            elif len(values) == len(keys):
                names[key] = values[n]
            else:  # one setting holding a list: `A`, `B`, `C`
                names[key] = ", ".join(values)
    return names


def test_the_table_is_found() -> None:
    assert len(ROWS) >= 30, ROWS


def test_every_setting_has_a_row() -> None:
    missing = sorted(SETTINGS.keys() - documented().keys())
    assert not missing, f"settings missing from the README's settings table: {missing}"


def test_every_row_names_a_setting() -> None:
    unknown = sorted(documented().keys() - SETTINGS.keys())
    assert not unknown, f"README rows for settings that do not exist: {unknown}"


def _default(field: Field[Any]) -> Any:
    if field.default is not MISSING:
        return field.default
    assert field.default_factory is not MISSING, field.name
    return field.default_factory()


def _same(text: str, value: object) -> bool:
    """Whether the table's literal ``text`` says ``value``."""
    if isinstance(value, bool):
        return text == str(value).lower()
    if isinstance(value, int | float):
        return float(text) == value
    if isinstance(value, Path):
        return Path(text) == value
    if isinstance(value, tuple):
        return tuple(text.split(", ")) == value
    return text == value


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_the_documented_default_is_the_default(name: str) -> None:
    text = documented().get(name, "")
    if not text:  # no row (reported above) or a default in words ("empty", "none", "2.1 … 2.9")
        return
    value = _default(SETTINGS[name])
    assert _same(text, value), f"README says {name} defaults to {text!r}; the code: {value!r}"


def test_the_sample_settings_file_loads_and_names_only_settings() -> None:
    sample = REPO / "deploy" / "broker.toml"
    load_settings(config_file=sample)
    broker_part = sample.read_text(encoding="utf-8").split("\n# [scanners.", 1)[0]
    keys = re.findall(r"^#? ?(\w+) = ", broker_part, flags=re.MULTILINE)
    assert len(keys) >= 10, keys
    keys = [k.removesuffix("_file") for k in keys]  # a secret's "<name>_file = path"
    unknown = sorted(set(keys) - SETTINGS.keys())
    assert not unknown, f"deploy/broker.toml names settings that do not exist: {unknown}"
