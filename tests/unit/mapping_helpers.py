"""What the mapping tests share: the default mapping's orders (an IHE RAD-4 ORM^O01 and an
OMI^O23) run through the engine with entries as pydicom Datasets, a small custom mapping, and
the preview's decoder and trace rows."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hl7
import pytest
from pydicom.dataset import Dataset

from broker.errors import MappingError
from broker.hl7.codes import AckCode
from broker.hl7.message import MessageDecoder
from broker.mapping.engine import map_message
from broker.mapping.parser import parse_mapping
from broker.mapping.spec import MappingSpec
from broker.services.preview import AttributeTrace, EntryPreview
from broker.worklist.model import MappingResult, OrderChange, entry_dataset

REPO = Path(__file__).resolve().parents[2]


def parse(*segments: str) -> Any:
    return hl7.parse("\r".join(segments))


@dataclasses.dataclass(frozen=True)
class DatasetChange(OrderChange):
    """An order change with each entry as a pydicom Dataset."""

    entries: tuple[Dataset, ...] = ()


@dataclasses.dataclass(frozen=True)
class DatasetResult(MappingResult):
    """A mapping result with each entry as a pydicom Dataset."""

    changes: tuple[DatasetChange, ...]


def run(spec: MappingSpec, *segments: str) -> DatasetResult:
    message = parse(*segments)
    event = message.segment("MSH")(9)
    return as_datasets(map_message(message, spec, message_type=f"{event(1)(1)}^{event(1)(2)}"))


def as_datasets(result: MappingResult) -> DatasetResult:
    """The result with each entry as a pydicom Dataset (the engine writes DICOM JSON)."""
    changes = tuple(
        DatasetChange(
            order_key=c.order_key,
            action=c.action,
            entries=tuple(entry_dataset(e) for e in c.entries),
            status=c.status,
        )
        for c in result.changes
    )
    return DatasetResult(
        changes=changes,
        mapping_name=result.mapping_name,
        mapping_version=result.mapping_version,
        truncations=result.truncations,
    )


def mapping_error(spec: MappingSpec, *segments: str) -> MappingError:
    with pytest.raises(MappingError) as info:
        run(spec, *segments)
    assert info.value.ack_code is AckCode.ERROR
    return info.value


def sps(entry: Dataset) -> Dataset:
    (item,) = entry.ScheduledProcedureStepSequence
    assert isinstance(item, Dataset)
    return item


# An IHE RAD-4 ORM^O01 in HL7 v2.3.1 with the ZDS segment (like the IHE MESA test messages).
ORM_MSH = "MSH|^~\\&|RIS|RADIOLOGY|MWL|HOSP|20261125083000||ORM^O01|ORM-1|P|2.3.1"
ORM_PID = "PID|||PAT-1001^^^HOSP||M\u00fcller^J\u00fcrgen^K^^Dr.||19650412|M"
ORM_PV1 = "PV1||O|RAD^ROOM1^1|||||1234^Schmidt^Anna^^^Dr.|||||||||||V-5001"
ORM_ORC = "ORC|{control}|PLC-1001^RIS|FIL-1001^RIS||SC||1^once^^20261126093000^^S"
ORM_OBR = (
    "OBR|1|PLC-1001^RIS|FIL-1001^RIS|CTHEAD^CT head^LOCAL^CTHEAD-P1^Head protocol^LOCAL"
    "||||||||||||1234^Schmidt^Anna^^^Dr.||{accession}|RP-1001|SPS-1001||||CT|||"
    "1^once^^20261126093000^^S|||WALK||||4711&Weber&Lena"
)
ORM_ZDS = "ZDS|1.2.826.0.1.3680043.10.543.1001^RIS^Application^DICOM"


def orm(
    control: str = "NW", accession: str = "ACC-1001", pid: str = ORM_PID, zds: bool = True
) -> list[str]:
    segments = [ORM_MSH, pid, ORM_PV1, ORM_ORC.format(control=control)]
    segments.append(ORM_OBR.format(accession=accession))
    return [*segments, ORM_ZDS] if zds else segments


OMI = [
    "MSH|^~\\&|RIS|RADIOLOGY|MWL|HOSP|20261125090000||OMI^O23^OMI_O23|OMI-1|P|2.5.1",
    "PID|||PAT-2001^^^HOSP||\u00d8verg\u00e5rd^Zo\u00eb^\u00c5sa||19801224|F",
    "PV1||I|WARD3^12^1",
    "ORC|NW|PLC-2001^RIS|FIL-2001^RIS||SC",
    "TQ1|||||||20261126101500||R^Routine^HL70485",
    "OBR|1|PLC-2001^RIS|FIL-2001^RIS|MRKNEE^MR knee left^LOCAL||||||||||||5678^Berg^Ola^^^Dr.",
    "IPC|ACC-2001|RP-2001|1.2.826.0.1.3680043.10.543.2001|SPS-2001A|MR|MRKNEE-T1^Knee T1^LOCAL"
    "|MR ROOM 1|RAD-MR|MR1~MR1B",
    "IPC|ACC-2001|RP-2001|1.2.826.0.1.3680043.10.543.2001|SPS-2001B|MR|MRKNEE-T2^Knee T2^LOCAL"
    "|MR ROOM 2|RAD-MR|MR2",
]


def custom(**overrides: object) -> MappingSpec:
    data: dict[str, object] = {
        "message_types": {"ORM^O01": "OBR", "OMI^O23": "OBR"},  # IPC paths: OMI^O23 has IPC
        "order_control": {"NW": "schedule", "SR": "ignore"},
        "order_key": [{"FILLER": "ORC-3.1"}],
        "tables": {"station": {"rows": {"CT": "CT_AE_1"}}},
        "attributes": {
            "PatientID": {"path": "PID-3", "default": "UNKNOWN"},
            "ScheduledProcedureStepSequence": {
                "Modality": "OBR-24",
                "ScheduledStationAETitle": {
                    "path": "IPC-9[*]",
                    "fallback": {"path": "OBR-24", "table": "station"},
                },
            },
        },
    }
    data.update(overrides)
    return parse_mapping(data, source="custom.yaml", version="test", default_name="custom")


# -- the preview ------------------------------------------------------------------

DECODER = MessageDecoder()  # the broker's default settings


def row(entry: EntryPreview | Sequence[AttributeTrace], attribute: str) -> AttributeTrace:
    rows = entry.trace if isinstance(entry, EntryPreview) else entry
    found = [r for r in rows if r.attribute == attribute]
    assert len(found) == 1, (attribute, [r.attribute for r in rows])
    return found[0]
