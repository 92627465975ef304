"""The MPPS cycle end to end: an order over MLLP, the modality's worklist, N-CREATE, N-SET.

A real broker (tests/broker_runner.py) with a real redis-server; the order goes
in through python-hl7's MLLP client, and a pynetdicom SCU is the modality: it
queries the worklist, copies the step's identifiers into its MPPS (as PS3.17
Annex J describes), reports IN PROGRESS and COMPLETED, and sees the step leave
its worklist.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hl7.client
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE

from broker.app import Broker
from broker.dicom.mpps import NO_LONGER_UPDATABLE, MppsStatus
from broker.mllp.client import split_messages, summarize_ack
from broker.store.connection import EmbeddedRedis
from tests.broker_runner import DATA, broker_settings, running_broker
from tests.conftest import KEYS
from tests.redis_replies import stream_rows
from tests.scu import (
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    established,
)

pytestmark = pytest.mark.interop

ORM_NW = DATA / "orm_o01_nw_latin1.hl7"


def send_order(broker: Broker, path: Path = ORM_NW) -> str:
    assert broker.endpoints is not None
    (message,) = split_messages(path.read_bytes())
    with hl7.client.MLLPClient("127.0.0.1", broker.endpoints.hl7_port, encoding="latin-1") as c:
        return summarize_ack(c.send_message(message)).code


@contextmanager
def modality(broker: Broker) -> Iterator[Any]:
    assert broker.endpoints is not None
    ae = AE(ae_title="CT_SCANNER")
    ae.add_requested_context(ModalityWorklistInformationFind)
    ae.add_requested_context(ModalityPerformedProcedureStep)
    with established(ae, broker.endpoints.dicom_port, broker.endpoints.ae_title) as assoc:
        yield assoc


def worklist(assoc: Any, sps_status: str = "") -> list[Dataset]:
    """The modality's worklist query, with the keys it copies into its MPPS."""
    query = Dataset()
    for keyword in (
        "PatientName", "PatientID", "AccessionNumber", "StudyInstanceUID", "RequestedProcedureID",
    ):  # fmt: skip
        setattr(query, keyword, "")
    step = Dataset()
    step.Modality = ""
    step.ScheduledProcedureStepID = ""
    step.ScheduledProcedureStepStatus = sps_status
    query.ScheduledProcedureStepSequence = [step]
    answers = []
    for status, identifier in assoc.send_c_find(query, ModalityWorklistInformationFind):
        assert status is not None and status.Status in (0x0000, 0xFF00, 0xFF01)
        if identifier is not None and status.Status != 0x0000:
            answers.append(identifier)
    return answers


def status_of(item: Dataset) -> str:
    return str(item.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus)


def n_create_from(item: Dataset | None) -> Dataset:
    """The N-CREATE attribute list (PS3.4 Table F.7.2-1) for a worklist item, or
    for an unscheduled exam (IHE: empty step IDs, a new Study Instance UID)."""
    step = Dataset()
    step.StudyInstanceUID = item.StudyInstanceUID if item else generate_uid()
    step.AccessionNumber = item.AccessionNumber if item else ""
    step.RequestedProcedureID = item.RequestedProcedureID if item else ""
    sps = item.ScheduledProcedureStepSequence[0] if item else Dataset()
    step.ScheduledProcedureStepID = sps.get("ScheduledProcedureStepID", "")
    step.ReferencedStudySequence = []
    step.ScheduledProcedureStepDescription = ""
    step.ScheduledProtocolCodeSequence = []
    ds = Dataset()
    ds.ScheduledStepAttributesSequence = [step]
    ds.PatientName = item.PatientName if item else "WALK^IN"
    ds.PatientID = item.PatientID if item else "WALKIN-1"
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.ReferencedPatientSequence = []
    ds.PerformedProcedureStepID = "PPS-77"
    ds.PerformedStationAETitle = "CT_SCANNER"
    ds.PerformedProcedureStepStartDate = "20261130"
    ds.PerformedProcedureStepStartTime = "091500"
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.Modality = "CT"
    ds.PerformedSeriesSequence = []
    return ds


def completed(status: str = "COMPLETED") -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = "20261130"
    ds.PerformedProcedureStepEndTime = "094000"
    series = Dataset()
    series.SeriesInstanceUID = generate_uid()
    series.ProtocolName = "CT HEAD"
    series.RetrieveAETitle = ""
    series.ReferencedImageSequence = []
    ds.PerformedSeriesSequence = [series]
    return ds


def create(assoc: Any, uid: str, ds: Dataset) -> Dataset:
    status: Dataset
    status, _ = assoc.send_n_create(ds, ModalityPerformedProcedureStep, uid)
    assert "Status" in status
    return status


def n_set(assoc: Any, uid: str, ds: Dataset) -> Dataset:
    status: Dataset
    status, _ = assoc.send_n_set(ds, ModalityPerformedProcedureStep, uid)
    assert "Status" in status
    return status


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    with running_broker(broker_settings(tmp_path / "data")) as b:
        yield b


def test_order_to_completed_step(broker: Broker) -> None:
    assert send_order(broker) == "AA"
    uid = generate_uid()
    with modality(broker) as assoc:
        (item,) = worklist(assoc)
        assert status_of(item) == "SCHEDULED"

        assert create(assoc, uid, n_create_from(item)).Status == MppsStatus.SUCCESS
        (started,) = worklist(assoc)
        assert status_of(started) == "STARTED"
        assert str(started.PatientName) == str(item.PatientName)  # the entry kept its data

        duplicate = create(assoc, uid, n_create_from(item))
        assert duplicate.Status == MppsStatus.DUPLICATE_SOP_INSTANCE

        assert n_set(assoc, uid, completed()).Status == MppsStatus.SUCCESS
        assert worklist(assoc) == []  # done: off the default worklist
        (done,) = worklist(assoc, "COMPLETED")
        assert status_of(done) == "COMPLETED"
        assert done.AccessionNumber == item.AccessionNumber

        refused = n_set(assoc, uid, completed())
        assert refused.Status == MppsStatus.PROCESSING_FAILURE
        assert refused.ErrorComment == NO_LONGER_UPDATABLE

        unknown = n_set(assoc, generate_uid(), completed())
        assert unknown.Status == MppsStatus.NO_SUCH_SOP_INSTANCE

        walk_in = generate_uid()
        assert create(assoc, walk_in, n_create_from(None)).Status == MppsStatus.SUCCESS
        assert n_set(assoc, walk_in, completed()).Status == MppsStatus.SUCCESS
        assert [status_of(d) for d in worklist(assoc, "COMPLETED")] == ["COMPLETED"]

    # the RIS notifier's stream has every event, in order
    assert broker.store is not None
    rows = stream_rows(broker.store.client, KEYS.mpps_events())
    got = [(f[b"event"].decode(), f[b"uid"].decode()) for _, f in rows]
    assert got == [
        ("created", uid),
        ("completed", uid),
        ("created", walk_in),
        ("completed", walk_in),
    ]
    assert json.loads(rows[1][1][b"entries"]) != [] and json.loads(rows[3][1][b"entries"]) == []


def test_redis_down_gives_a_failure_status_and_recovery_after(tmp_path: Path) -> None:
    external = EmbeddedRedis(tmp_path / "external")
    external.start()
    try:
        settings = broker_settings(tmp_path / "data", redis_url=external.url, redis_timeout=2)
        with running_broker(settings) as broker, modality(broker) as assoc:
            assert send_order(broker) == "AA"
            (item,) = worklist(assoc)
            uid = generate_uid()
            assert create(assoc, uid, n_create_from(item)).Status == MppsStatus.SUCCESS

            external.stop()
            failed = create(assoc, generate_uid(), n_create_from(item))
            assert failed.Status == MppsStatus.PROCESSING_FAILURE
            set_failed = n_set(assoc, uid, completed())
            assert set_failed.Status == MppsStatus.PROCESSING_FAILURE

            external.start()
            assert n_set(assoc, uid, completed()).Status == MppsStatus.SUCCESS
            assert [status_of(d) for d in worklist(assoc, "COMPLETED")] == ["COMPLETED"]
    finally:
        external.stop()
