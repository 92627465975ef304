"""The file-based mapping registry: the default directory, one file per message type, a
version that follows the files."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.errors import ConfigError
from broker.mapping.registry import MappingRegistry
from tests.unit.mapping_files import write
from tests.unit.mapping_helpers import REPO


def test_registry_loads_the_default_directory() -> None:
    registry = MappingRegistry.load(REPO / "mappings")
    orders = {t for t in registry.supported_types() if not t.startswith("ADT^")}
    assert orders == {"ORM^O01", "OMG^O19", "OMI^O23"}
    spec = registry.for_message("OMI^O23")
    assert spec is not None and spec.name == "orders"
    assert registry.for_message("ADT^A01") is None  # a patient mapping (adt.yaml) handles it
    patient = registry.for_patient_message("ADT^A01")
    assert patient is not None and patient.name == "adt"
    assert len(registry.version) == 12


def test_two_files_claiming_a_type(tmp_path: Path) -> None:
    write(tmp_path, name="a.yaml")
    write(tmp_path, name="b.yaml")
    with pytest.raises(ConfigError) as info:
        MappingRegistry.load(tmp_path)
    assert "ORM^O01" in info.value.message
    assert "a.yaml" in info.value.message and "b.yaml" in info.value.message


def test_registry_version_follows_the_files(tmp_path: Path) -> None:
    path = write(tmp_path, name="a.yaml")
    before = MappingRegistry.load(tmp_path).version
    path.write_text(path.read_text().replace("NW: schedule", "NW: schedule\n  XO: schedule"))
    assert MappingRegistry.load(tmp_path).version != before


def test_registry_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        MappingRegistry.load(tmp_path / "nope")
