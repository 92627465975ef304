"""ADT end to end: orders and ADT messages over MLLP into a running broker, MWL C-FIND out.

A real broker (tests/broker_runner.py) with its embedded redis-server; HL7 goes
in through python-hl7's MLLP client, the worklist comes out through a
pynetdicom SCU. The messages are written here.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import hl7.client
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE

from broker.app import Broker
from broker.mllp.client import AckSummary, summarize_ack
from broker.store.message_records import MessageQuery, Outcome
from tests.broker_runner import broker_settings, running_broker
from tests.scu import ModalityWorklistInformationFind

pytestmark = pytest.mark.interop


def message(*segments: str) -> bytes:
    return "\r".join(segments).encode("utf-8")


def msh(mtype: str, control_id: str, version: str = "2.5.1") -> str:
    header = f"MSH|^~\\&|HIS|HOSP|MWL|RAD|20261125083000||{mtype}|{control_id}|P|{version}"
    return header + "||||||UNICODE UTF-8"  # MSH-18


def orm(control_id: str, pid: str, acc: str) -> bytes:
    return message(
        msh("ORM^O01", control_id, "2.3.1"),
        f"PID|||{pid}^^^HOSP||Order^Name||19500101|M",
        f"ORC|NW|PLC-{acc}^RIS|FIL-{acc}^RIS||SC||1^once^^20261126093000^^S",
        f"OBR|1|PLC-{acc}^RIS|FIL-{acc}^RIS|CTHEAD^CT head^LOCAL||||||||||||||{acc}|RP-{acc}"
        f"|SPS-{acc}||||CT",
    )


A08 = message(
    msh("ADT^A08^ADT_A01", "ADT-1"),
    "EVN|A08|20261125083000",
    "PID|1||PAT-A^^^HOSP^MR||Berg^Åke^Lennart||19770707|M",
    "PV1|1|I|WARD^1^1",
)
A40 = message(
    msh("ADT^A40^ADT_A39", "ADT-2"),
    "EVN|A40|20261125090000",
    "PID|1||PAT-A^^^HOSP^MR||Berg^Åke^Lennart||19770707|M",
    "MRG|PAT-OLD^^^HOSP^MR",
)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    with running_broker(broker_settings(tmp_path / "data")) as b:
        yield b


def send(broker: Broker, *messages: bytes) -> list[AckSummary]:
    assert broker.endpoints is not None
    with hl7.client.MLLPClient("127.0.0.1", broker.endpoints.hl7_port, encoding="utf-8") as c:
        return [summarize_ack(c.send_message(m)) for m in messages]


def find(broker: Broker, patient_id: str) -> list[Dataset]:
    """MWL C-FIND by Patient ID with a pynetdicom SCU."""
    assert broker.endpoints is not None
    ae = AE(ae_title="TEST_SCU")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate(
        "127.0.0.1", broker.endpoints.dicom_port, ae_title=broker.endpoints.ae_title
    )
    assert assoc.is_established
    query = Dataset()
    query.PatientID = patient_id
    query.PatientName = ""
    query.PatientBirthDate = ""
    query.AccessionNumber = ""
    step = Dataset()
    step.ScheduledProcedureStepStatus = ""
    query.ScheduledProcedureStepSequence = [step]
    try:
        answers = [
            identifier
            for status, identifier in assoc.send_c_find(query, ModalityWorklistInformationFind)
            if status is not None and status.Status in (0xFF00, 0xFF01) and identifier is not None
        ]
    finally:
        assoc.release()
    return sorted(answers, key=lambda ds: str(ds.AccessionNumber))


def test_update_then_merge_reach_the_modality(broker: Broker) -> None:
    acks = send(broker, orm("ORM-1", "PAT-A", "ACC-1"), A08, orm("ORM-2", "PAT-OLD", "ACC-2"))
    assert [a.code for a in acks] == ["AA", "AA", "AA"]
    (updated,) = find(broker, "PAT-A")
    assert (str(updated.PatientName), updated.PatientBirthDate) == ("Berg^Åke^Lennart", "19770707")
    (old,) = find(broker, "PAT-OLD")
    assert str(old.PatientName) == "Order^Name"  # another patient: untouched

    assert [a.code for a in send(broker, A40)] == ["AA"]
    assert find(broker, "PAT-OLD") == []
    merged = find(broker, "PAT-A")
    assert [(a.AccessionNumber, str(a.PatientName)) for a in merged] == [
        ("ACC-1", "Berg^Åke^Lennart"),
        ("ACC-2", "Berg^Åke^Lennart"),
    ]
    # a late order with the retired ID lands on the surviving patient, with the ADT's name
    assert [a.code for a in send(broker, orm("ORM-3", "PAT-OLD", "ACC-3"))] == ["AA"]
    late = find(broker, "PAT-A")[-1]
    assert (late.AccessionNumber, late.PatientID, str(late.PatientName)) == (
        "ACC-3",
        "PAT-A",
        "Berg^Åke^Lennart",
    )


def test_arrival_and_ignored_events(broker: Broker) -> None:
    a10 = message(msh("ADT^A10^ADT_A09", "ADT-10"), "EVN|A10", "PID|||PAT-A", "PV1||O")
    a02 = message(msh("ADT^A02^ADT_A02", "ADT-11"), "EVN|A02", "PID|||PAT-A", "PV1||I|W2")
    acks = send(broker, orm("ORM-1", "PAT-A", "ACC-1"), a02, a10)
    assert [a.code for a in acks] == ["AA", "AA", "AA"]
    (entry,) = find(broker, "PAT-A")
    assert entry.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "ARRIVED"


def test_errors_resends_and_unknown_events(broker: Broker) -> None:
    assert broker.store is not None
    no_mrg1 = message(msh("ADT^A40", "ADT-20"), "PID|||PAT-A", "MRG||||X")
    unknown = message(msh("ADT^A99", "ADT-21"), "PID|||PAT-A")
    first, again, bad, refused = send(broker, A08, A08, no_mrg1, unknown)
    assert first.code == "AA" and again == first
    assert bad.code == "AE" and any("MRG-1" in e and "101" in e for e in bad.errors)
    assert refused.code == "AR" and any("201" in e for e in refused.errors)
    assert broker.store.client.exists(broker.store.keys.patient("PAT-A")) == 1


def adt_at(control_id: str, sent: str, name: str) -> bytes:
    header = f"MSH|^~\\&|HIS|HOSP|MWL|RAD|{sent}||ADT^A08^ADT_A01|{control_id}|P|2.5.1"
    return message(
        header + "||||||UNICODE UTF-8",
        f"EVN|A08|{sent}",
        f"PID|1||PAT-T^^^HOSP^MR||{name}||19770707|M",
    )


def test_an_older_patient_update_never_overwrites_a_newer_one(
    broker: Broker, tmp_path: Path
) -> None:
    newer = adt_at("T-2", "20261125100000+0100", "Newer^Name")
    older = adt_at("T-1", "20261125093000+0100", "Older^Name")  # sent first, arrives late
    later = adt_at("T-3", "20261125110000+0100", "Latest^Name")
    assert [a.code for a in send(broker, orm("ORM-T", "PAT-T", "ACC-T"), newer, older)] == [
        "AA", "AA", "AA",
    ]  # fmt: skip
    (entry,) = find(broker, "PAT-T")
    assert str(entry.PatientName) == "Newer^Name"
    assert broker.messages is not None
    (row,) = [r for r in broker.messages.find(MessageQuery()).items if r.control_id == "T-1"]
    assert row.outcome is Outcome.OUT_OF_ORDER
    listing = subprocess.run(
        [sys.executable, "-m", "broker.cli", "messages", "list", "--control-id", "T-1",
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "out-of-order" in listing and "older (MSH-7) than a message already applied" in listing
    send(broker, later)
    (entry,) = find(broker, "PAT-T")
    assert str(entry.PatientName) == "Latest^Name"
