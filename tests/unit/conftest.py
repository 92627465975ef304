"""Fixtures of the mapping tests: the default mapping files, loaded once per module."""

from __future__ import annotations

import pytest

from broker.mapping.parser import load_mapping
from broker.mapping.registry import MappingRegistry
from broker.mapping.spec import MappingSpec
from tests.unit.mapping_helpers import REPO


@pytest.fixture(scope="module")
def spec() -> MappingSpec:
    return load_mapping(REPO / "mappings" / "orders.yaml")


@pytest.fixture(scope="module")
def registry() -> MappingRegistry:
    return MappingRegistry.load(REPO / "mappings")
