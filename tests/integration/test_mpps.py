"""MPPS N-CREATE / N-SET against the real DicomServer and a real redis-server.

A pynetdicom SCU plays the modality on 127.0.0.1 (port 0); entries are put
through the store, as an order message would. Statuses are PS3.4 F.7.2 values
(``broker.dicom.mpps.MppsStatus``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt

from broker.dicom.find import WorklistFindService
from broker.dicom.mpps import (
    NO_LONGER_UPDATABLE,
    NO_LONGER_UPDATABLE_ERROR_ID,
    MppsService,
    MppsStatus,
)
from broker.dicom.server import DicomServer, configure_pynetdicom_logging
from broker.store.connection import EmbeddedRedis
from broker.store.mpps import MppsStore
from broker.store.worklist import WorklistStore
from broker.worklist.model import OrderAction, OrderChange
from tests.conftest import KEYS
from tests.redis_replies import stream_rows
from tests.scu import ModalityPerformedProcedureStep, ModalityWorklistInformationFind, established

AE_TITLE = "MWL_TEST"
CALLING = "CT_SCANNER"
STUDY_ROOT = "1.2.826.0.1.3680043.10.1234"


def entry(acc: str, *, date: str = "20261201") -> Dataset:
    ds = Dataset()
    ds.PatientName = "DOE^JOHN"
    ds.PatientID = f"P-{acc}"
    ds.AccessionNumber = acc
    ds.StudyInstanceUID = f"{STUDY_ROOT}.{sum(map(ord, acc))}"
    ds.RequestedProcedureID = f"RP-{acc}"
    sps = Dataset()
    sps.ScheduledStationAETitle = "CT1"
    sps.Modality = "CT"
    sps.ScheduledProcedureStepStartDate = date
    sps.ScheduledProcedureStepID = f"SPS-{acc}"
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def put(store: WorklistStore, *entries: Dataset, status: str = "SCHEDULED") -> None:
    changes = [
        OrderChange(f"O-{e.AccessionNumber}", OrderAction.SCHEDULE, (e,), status=status)
        for e in entries
    ]
    store.apply(changes, None)


def step_item(scheduled: Dataset | None) -> Dataset:
    """A Scheduled Step Attributes Sequence item (PS3.4 Table F.7.2-1): copied from the
    worklist entry, or IHE's unscheduled case (new study, empty IDs)."""
    item = Dataset()
    item.StudyInstanceUID = scheduled.StudyInstanceUID if scheduled else generate_uid()
    item.AccessionNumber = scheduled.AccessionNumber if scheduled else ""
    item.RequestedProcedureID = scheduled.RequestedProcedureID if scheduled else ""
    sps = scheduled.ScheduledProcedureStepSequence[0] if scheduled else Dataset()
    item.ScheduledProcedureStepID = sps.get("ScheduledProcedureStepID", "")
    item.ReferencedStudySequence = []
    item.RequestedProcedureDescription = ""
    item.ScheduledProcedureStepDescription = ""
    item.ScheduledProtocolCodeSequence = []
    return item


def n_create_list(scheduled: Dataset | None, *, status: str = "IN PROGRESS") -> Dataset:
    """An N-CREATE attribute list as a modality sends it."""
    ds = Dataset()
    ds.ScheduledStepAttributesSequence = [step_item(scheduled)]
    ds.PatientName = "DOE^JOHN"
    ds.PatientID = scheduled.PatientID if scheduled else "P-WALKIN"
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.ReferencedPatientSequence = []
    ds.PerformedProcedureStepID = "PPS-1"
    ds.PerformedStationAETitle = CALLING
    ds.PerformedStationName = ""
    ds.PerformedLocation = ""
    ds.PerformedProcedureStepStartDate = "20261130"
    ds.PerformedProcedureStepStartTime = "101500"
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepDescription = ""
    ds.PerformedProcedureTypeDescription = ""
    ds.ProcedureCodeSequence = []
    ds.PerformedProcedureStepEndDate = ""
    ds.PerformedProcedureStepEndTime = ""
    ds.Modality = "CT"
    ds.StudyID = ""
    ds.PerformedProtocolCodeSequence = []
    ds.PerformedSeriesSequence = []
    return ds


def n_set_final(status: str = "COMPLETED") -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = "20261130"
    ds.PerformedProcedureStepEndTime = "103000"
    series = Dataset()
    series.PerformingPhysicianName = ""
    series.ProtocolName = "HEAD"
    series.OperatorsName = ""
    series.SeriesInstanceUID = generate_uid()
    series.SeriesDescription = ""
    series.RetrieveAETitle = ""
    series.ReferencedImageSequence = []
    series.ReferencedNonImageCompositeSOPInstanceSequence = []
    ds.PerformedSeriesSequence = [series]
    return ds


@pytest.fixture
def mpps_store(store: WorklistStore) -> MppsStore:
    return MppsStore(store, events_max=100)


@pytest.fixture
def server(store: WorklistStore, mpps_store: MppsStore) -> Iterator[DicomServer]:
    configure_pynetdicom_logging()
    srv = DicomServer(
        ae_title=AE_TITLE,
        host="127.0.0.1",
        port=0,
        find_service=WorklistFindService(store, max_answers=100),
        mpps_service=MppsService(mpps_store),
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@contextmanager
def modality(server: DicomServer, handlers: list[Any] | None = None) -> Iterator[Any]:
    ae = AE(ae_title=CALLING)
    ae.add_requested_context(ModalityPerformedProcedureStep)
    ae.add_requested_context(ModalityWorklistInformationFind)
    with established(ae, server.port, AE_TITLE, evt_handlers=handlers) as assoc:
        yield assoc


def create(assoc: Any, uid: str | None, ds: Dataset) -> Dataset:
    status: Dataset
    status, _ = assoc.send_n_create(ds, ModalityPerformedProcedureStep, uid)
    assert "Status" in status
    return status


def n_set(assoc: Any, uid: str, ds: Dataset) -> Dataset:
    status: Dataset
    status, _ = assoc.send_n_set(ds, ModalityPerformedProcedureStep, uid)
    assert "Status" in status
    return status


def find_status(assoc: Any, acc: str, sps_status: str = "") -> list[str]:
    """SPS statuses of the worklist answers for an accession (a default query, or one
    asking for ``sps_status``)."""
    query = Dataset()
    query.AccessionNumber = acc
    item = Dataset()
    item.ScheduledProcedureStepStatus = sps_status
    query.ScheduledProcedureStepSequence = [item]
    found = []
    for status, identifier in assoc.send_c_find(query, ModalityWorklistInformationFind):
        assert status is not None and status.Status in (0x0000, 0xFF00, 0xFF01)
        if identifier is not None and status.Status != 0x0000:
            found.append(identifier.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus)
    return found


def events(client: redis.Redis) -> list[dict[str, str]]:
    rows = stream_rows(client, KEYS.mpps_events())
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in rows]


def test_cycle_starts_then_completes_the_step_and_tells_the_ris(
    server: DicomServer, store: WorklistStore, mpps_store: MppsStore, redis_client: redis.Redis
) -> None:
    scheduled = entry("ACC-1")
    put(store, scheduled, entry("ACC-2"))
    (entry_id,) = store.order_entry_ids("O-ACC-1")
    key = KEYS.entry(entry_id)
    before = redis_client.hmget(key, "ds", "idx", "order")
    uid = generate_uid()
    with modality(server) as assoc:
        assert find_status(assoc, "ACC-1") == ["SCHEDULED"]
        assert create(assoc, uid, n_create_list(scheduled)).Status == MppsStatus.SUCCESS
        assert find_status(assoc, "ACC-1") == ["STARTED"]
        progress = Dataset()
        progress.PerformedProcedureStepDescription = "CT head, contrast"
        assert n_set(assoc, uid, progress).Status == MppsStatus.SUCCESS
        assert find_status(assoc, "ACC-1") == ["STARTED"]
        assert n_set(assoc, uid, n_set_final()).Status == MppsStatus.SUCCESS
        assert find_status(assoc, "ACC-1") == []  # hidden from a default query
        assert find_status(assoc, "ACC-1", "COMPLETED") == ["COMPLETED"]
        assert find_status(assoc, "ACC-2") == ["SCHEDULED"]  # another order: untouched

        again = n_set(assoc, uid, n_set_final())
        assert again.Status == MppsStatus.PROCESSING_FAILURE.value == 0x0110
        assert again.ErrorComment == NO_LONGER_UPDATABLE
        assert again.ErrorID == NO_LONGER_UPDATABLE_ERROR_ID == 0xA710
    # the entry lost nothing but its status change
    assert redis_client.hmget(key, "ds", "idx", "order") == before
    assert redis_client.hget(key, "status") == b"COMPLETED"
    record = mpps_store.get(uid)
    assert record is not None
    assert (record.status, record.entries, record.aet) == ("COMPLETED", (entry_id,), CALLING)
    assert record.ds.PerformedProcedureStepDescription == "CT head, contrast"
    assert len(record.ds.PerformedSeriesSequence) == 1
    assert record.ds.PerformedProcedureStepStartTime == "101500"  # kept from the N-CREATE
    got = events(redis_client)
    assert [(e["event"], e["status"], e["uid"]) for e in got] == [
        ("created", "IN PROGRESS", uid),
        ("updated", "IN PROGRESS", uid),
        ("completed", "COMPLETED", uid),
    ]
    assert json.loads(got[-1]["entries"]) == [entry_id]
    assert json.loads(got[-1]["orders"]) == ["O-ACC-1"]
    final = Dataset.from_json(json.loads(got[-1]["ds"]))
    assert final.PerformedProcedureStepStatus == "COMPLETED"
    assert redis_client.zscore(KEYS.entries_ended(), entry_id) is not None


def test_discontinued_step(server: DicomServer, store: WorklistStore) -> None:
    scheduled = entry("ACC-3")
    put(store, scheduled)
    uid = generate_uid()
    with modality(server) as assoc:
        assert create(assoc, uid, n_create_list(scheduled)).Status == MppsStatus.SUCCESS
        reason = n_set_final("DISCONTINUED")
        assert n_set(assoc, uid, reason).Status == MppsStatus.SUCCESS
        assert find_status(assoc, "ACC-3") == []
        assert find_status(assoc, "ACC-3", "DISCONTINUED") == ["DISCONTINUED"]
        refused = n_set(assoc, uid, n_set_final())
        assert refused.Status == MppsStatus.PROCESSING_FAILURE
        assert refused.ErrorComment == NO_LONGER_UPDATABLE


def test_refusals(server: DicomServer, store: WorklistStore, redis_client: redis.Redis) -> None:
    scheduled = entry("ACC-4")
    put(store, scheduled)
    uid = generate_uid()
    with modality(server) as assoc:
        assert create(assoc, uid, n_create_list(scheduled)).Status == MppsStatus.SUCCESS
        duplicate = create(assoc, uid, n_create_list(scheduled))
        assert duplicate.Status == MppsStatus.DUPLICATE_SOP_INSTANCE.value == 0x0111

        unknown = n_set(assoc, generate_uid(), n_set_final())
        assert unknown.Status == MppsStatus.NO_SUCH_SOP_INSTANCE.value == 0x0112

        completed = create(assoc, generate_uid(), n_create_list(scheduled, status="COMPLETED"))
        assert completed.Status == MppsStatus.INVALID_ATTRIBUTE_VALUE.value == 0x0106
        assert "Performed Procedure Step Status" in completed.ErrorComment

        no_status = n_create_list(scheduled)
        del no_status.PerformedProcedureStepStatus
        missing = create(assoc, generate_uid(), no_status)
        assert missing.Status == MppsStatus.MISSING_ATTRIBUTE.value == 0x0120
        assert "(0040,0252)" in missing.ErrorComment

        bad = Dataset()
        bad.PerformedProcedureStepStatus = "DONE"
        invalid = n_set(assoc, uid, bad)
        assert invalid.Status == MppsStatus.INVALID_ATTRIBUTE_VALUE
        assert "Performed Procedure Step Status" in invalid.ErrorComment
        # none of the refused requests changed anything
        assert find_status(assoc, "ACC-4") == ["STARTED"]
    assert redis_client.zcard(KEYS.mpps_by_time()) == 1
    assert [e["event"] for e in events(redis_client)] == ["created"]


def test_unscheduled_step_is_accepted_and_changes_no_entry(
    server: DicomServer, store: WorklistStore, mpps_store: MppsStore
) -> None:
    put(store, entry("ACC-5"))
    uid = generate_uid()
    with modality(server) as assoc:
        assert create(assoc, uid, n_create_list(None)).Status == MppsStatus.SUCCESS
        assert find_status(assoc, "ACC-5") == ["SCHEDULED"]
        assert n_set(assoc, uid, n_set_final()).Status == MppsStatus.SUCCESS
        assert find_status(assoc, "ACC-5") == ["SCHEDULED"]
    record = mpps_store.get(uid)
    assert record is not None and (record.status, record.entries) == ("COMPLETED", ())


def test_a_canceled_step_stays_canceled(server: DicomServer, store: WorklistStore) -> None:
    scheduled = entry("ACC-6")
    put(store, scheduled, status="CANCELED")
    with modality(server) as assoc:
        assert create(assoc, generate_uid(), n_create_list(scheduled)).Status == 0x0000
        assert find_status(assoc, "ACC-6", "CANCELED") == ["CANCELED"]


def test_step_found_by_patient_id_when_the_accession_is_empty(
    server: DicomServer, store: WorklistStore
) -> None:
    scheduled = entry("ACC-7")
    put(store, scheduled)
    attrs = n_create_list(scheduled)
    attrs.ScheduledStepAttributesSequence[0].AccessionNumber = ""
    with modality(server) as assoc:
        assert create(assoc, generate_uid(), attrs).Status == MppsStatus.SUCCESS
        assert find_status(assoc, "ACC-7") == ["STARTED"]


def test_the_scp_assigns_a_uid_the_modality_did_not_send(
    server: DicomServer, store: WorklistStore, mpps_store: MppsStore
) -> None:
    """PS3.7 10.1.5.1.4: with no Affected SOP Instance UID in the request, the SCP
    assigns one and returns it in the response."""
    scheduled = entry("ACC-8")
    put(store, scheduled)
    assigned: list[str] = []

    def on_response(event: Any) -> None:
        command = event.message.command_set
        if command.CommandField == 0x8140:  # N-CREATE-RSP
            assigned.append(str(command.AffectedSOPInstanceUID))

    with modality(server, [(evt.EVT_DIMSE_RECV, on_response)]) as assoc:
        assert create(assoc, None, n_create_list(scheduled)).Status == MppsStatus.SUCCESS
        (uid,) = assigned
        assert n_set(assoc, uid, n_set_final()).Status == MppsStatus.SUCCESS
    record = mpps_store.get(uid)
    assert record is not None and record.status == "COMPLETED"


def test_latin1_attribute_list_is_stored_as_text(
    server: DicomServer, store: WorklistStore, mpps_store: MppsStore
) -> None:
    scheduled = entry("ACC-9")
    put(store, scheduled)
    attrs = n_create_list(scheduled)
    attrs.SpecificCharacterSet = "ISO_IR 100"
    attrs.PatientName = "Müller^Jürgen"
    uid = generate_uid()
    with modality(server) as assoc:
        assert create(assoc, uid, attrs).Status == MppsStatus.SUCCESS
    record = mpps_store.get(uid)
    assert record is not None
    assert str(record.ds.PatientName) == "Müller^Jürgen"
    assert record.ds.SpecificCharacterSet == "ISO_IR 192"


def test_redis_down_is_a_failure_never_a_success(
    server: DicomServer, store: WorklistStore, redis_server: EmbeddedRedis
) -> None:
    scheduled = entry("ACC-10")
    put(store, scheduled)
    uid = generate_uid()
    with modality(server) as assoc:
        assert create(assoc, uid, n_create_list(scheduled)).Status == MppsStatus.SUCCESS
        redis_server.stop()
        failed = create(assoc, generate_uid(), n_create_list(scheduled))
        assert failed.Status == MppsStatus.PROCESSING_FAILURE
        assert "unavailable" in failed.ErrorComment
        set_failed = n_set(assoc, uid, n_set_final())
        assert set_failed.Status == MppsStatus.PROCESSING_FAILURE
        assert "unavailable" in set_failed.ErrorComment


def test_an_order_update_after_the_modality_started_keeps_the_step_status(
    server: DicomServer, store: WorklistStore
) -> None:
    scheduled = entry("ACC-9")
    put(store, scheduled)
    uid = generate_uid()
    with modality(server) as assoc:
        assert create(assoc, uid, n_create_list(scheduled)).Status == MppsStatus.SUCCESS
        put(store, entry("ACC-9"))  # the RIS sends XO/SC (a correction): SCHEDULED by its row
        assert find_status(assoc, "ACC-9") == ["STARTED"]
        assert n_set(assoc, uid, n_set_final()).Status == MppsStatus.SUCCESS
        put(store, entry("ACC-9"))  # a late correction must not bring the step back
        assert find_status(assoc, "ACC-9") == []
        assert find_status(assoc, "ACC-9", "COMPLETED") == ["COMPLETED"]
        put(store, entry("ACC-9"), status="DISCONTINUED")  # an explicit status still applies
        assert find_status(assoc, "ACC-9", "DISCONTINUED") == ["DISCONTINUED"]
