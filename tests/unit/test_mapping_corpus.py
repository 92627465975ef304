"""Every order of the message collections maps, or is refused with an HL7 error (never another
exception), and every value it maps is what pydicom's own conversion would hold."""

from __future__ import annotations

import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from broker.errors import HL7Error
from broker.hl7.message import MessageDecoder, peek_header
from broker.mapping.engine import map_message
from broker.mapping.registry import MappingRegistry
from tests.corpus import hl7_corpus_messages
from tests.messages import own_messages
from tests.unit.mapping_helpers import REPO, as_datasets


def test_every_own_order_maps_or_raises_hl7_error() -> None:
    seen, mapped = orders_map_or_raise_hl7_errors(own_messages())
    assert seen >= 40 and mapped >= 35, (seen, mapped)


@pytest.mark.corpus
def test_every_corpus_order_maps_or_raises_hl7_error() -> None:
    seen, mapped = orders_map_or_raise_hl7_errors(hl7_corpus_messages())
    assert seen >= 30 and mapped >= 10, (seen, mapped)


def orders_map_or_raise_hl7_errors(messages: list[tuple[str, bytes]]) -> tuple[int, int]:
    """Every order maps, or is refused with an HL7Error; anything else fails. Counts."""
    registry = MappingRegistry.load(REPO / "mappings")
    seen = mapped = 0
    for name, raw in messages:
        header = peek_header(raw)
        if header is None or header["message_type"][:3] not in {"ORM", "OMI", "OMG"}:
            continue
        seen += 1
        try:
            parsed = MessageDecoder("UNICODE UTF-8").decode(raw)
            spec = registry.for_message(parsed.message_type)
            if spec is None:  # e.g. OMI^Z23: the router answers AR 201
                continue
            result = as_datasets(
                map_message(parsed.segments, spec, message_type=parsed.message_type)
            )
        except HL7Error:
            continue
        except Exception as e:  # anything but HL7Error is a bug: the point of the test
            pytest.fail(f"{name}: {type(e).__name__}: {e}")
        mapped += 1
        for change in result.changes:
            for entry in change.entries:
                assert len(entry.ScheduledProcedureStepSequence) == 1, name
                assert entry.to_json_dict(), name
                assert_values_as_pydicom_converts_them(entry, name)
    return seen, mapped


def assert_values_as_pydicom_converts_them(ds: Dataset, name: str) -> None:
    """Every element holds what pydicom's own conversion of its value would hold."""
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                assert_values_as_pydicom_converts_them(item, name)
            continue
        converted = DataElement(elem.tag, elem.VR, elem.value).value
        assert type(elem.value) is type(converted), (name, elem.keyword)
        assert elem.value == converted, (name, elem.keyword)
