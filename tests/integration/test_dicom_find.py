"""MWL C-FIND end to end: a pynetdicom SCU against the real DicomServer on a real store.

The server listens on 127.0.0.1 port 0; entries live in a real redis-server
(the ``store`` fixture). Statuses are PS3.4 C.4.1.1.4 values, named in
``broker.dicom.status``. Entries, queries and the SCU side: ``dicom_find_helpers.py``.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE

from broker.dicom.find import WorklistFindService
from broker.dicom.server import DicomServer, configure_pynetdicom_logging
from broker.dicom.status import Status
from broker.store.connection import EmbeddedRedis
from broker.store.worklist import WorklistStore
from broker.worklist.model import OrderAction, OrderChange
from tests.integration.dicom_find_helpers import (
    AE_TITLE,
    CALLING,
    accessions,
    associate,
    entry,
    find,
    put,
    query,
    send_raw_find,
    start_server,
)
from tests.scu import ModalityWorklistInformationFind, Verification


@pytest.fixture
def service(store: WorklistStore) -> WorklistFindService:
    return WorklistFindService(store, max_answers=1000, character_set="ISO_IR 192")


@pytest.fixture
def server(service: WorklistFindService) -> Iterator[DicomServer]:
    srv = start_server(service)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def assoc(server: DicomServer) -> Iterator[Any]:
    with associate(server, (ModalityWorklistInformationFind,), (Verification,)) as association:
        yield association


def test_station_poll(store: WorklistStore, assoc: Any) -> None:
    put(
        store,
        entry("A1", "CT1", "20261125"),
        entry("A2", "CT1", "20261125"),
        entry("A3", "MR1", "20261125"),
        entry("A4", "CT1", "20261126"),
    )
    answers, final = find(
        assoc, query(ScheduledStationAETitle="CT1", ScheduledProcedureStepStartDate="20261125")
    )
    assert final.Status == Status.SUCCESS
    assert accessions(answers) == ["A1", "A2"]
    answer = answers[0]
    assert [e.keyword for e in answer] == [
        "AccessionNumber",
        "PatientName",
        "PatientID",
        "ScheduledProcedureStepSequence",
    ]
    item = answer.ScheduledProcedureStepSequence[0]
    assert (item.ScheduledStationAETitle, item.Modality) == ("CT1", "CT")
    assert item.ScheduledProcedureStepID == f"SPS-{answer.AccessionNumber}"
    assert "SpecificCharacterSet" not in answer


@pytest.mark.parametrize("charset", ["ISO_IR 100", "ISO_IR 192"])
def test_patient_name_wildcard_with_accents(store: WorklistStore, assoc: Any, charset: str) -> None:
    put(
        store,
        entry("A1", "CT1", "20261125", name="Müller^Zoë"),
        entry("A2", "CT1", "20261125", name="Mueller^Hans"),
        entry("A3", "CT1", "20261125", name="Øvergård^Åsa"),
    )
    identifier = query()
    identifier.SpecificCharacterSet = charset
    identifier.PatientName = "mü*"
    answers, final = find(assoc, identifier)
    assert final.Status == Status.SUCCESS
    assert [str(a.PatientName) for a in answers] == ["Müller^Zoë"]
    assert answers[0].SpecificCharacterSet == "ISO_IR 192"


def test_date_range(store: WorklistStore, assoc: Any) -> None:
    put(
        store,
        entry("A1", "CT1", "20261124"),
        entry("A2", "CT1", "20261125"),
        entry("A3", "MR1", "20261126"),
        entry("A4", "CT1", "20261127"),
    )
    answers, _ = find(assoc, query(ScheduledProcedureStepStartDate="20261125-20261126"))
    assert accessions(answers) == ["A2", "A3"]


def test_combined_date_time_range(store: WorklistStore, assoc: Any) -> None:
    put(
        store,
        entry("A1", "CT1", "20261125", time="070000"),
        entry("A2", "CT1", "20261125", time="180000"),
        entry("A3", "CT1", "20261126", time="070000"),
        entry("A4", "CT1", "20261126", time="180000"),
    )
    identifier = query(
        ScheduledProcedureStepStartDate="20261125-20261126",
        ScheduledProcedureStepStartTime="1200-1200",
    )
    answers, _ = find(assoc, identifier)
    assert accessions(answers) == ["A2", "A3"]


def test_c_echo(assoc: Any) -> None:
    status = assoc.send_c_echo()
    assert status.Status == Status.SUCCESS


def test_wrong_called_ae_title_is_rejected(server: DicomServer) -> None:
    ae = AE(ae_title=CALLING)
    ae.add_requested_context(Verification)
    association = ae.associate("127.0.0.1", server.port, ae_title="SOMEONE_ELSE")
    assert association.is_rejected
    assert not association.is_established


def test_accepted_sockets_have_nagle_off(server: DicomServer, assoc: Any) -> None:
    # White-box: the acceptor's socket is reachable only through pynetdicom internals.
    (acceptor,) = server._server.active_associations
    sock = acceptor.dul.socket.socket
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    assert server.active_associations == 1


def test_c_cancel_is_honoured(store: WorklistStore, assoc: Any) -> None:
    put(store, *(entry(f"A{i:04d}", "CT1", "20261125") for i in range(400)))
    context_id = next(
        cx.context_id
        for cx in assoc.accepted_contexts
        if cx.abstract_syntax == ModalityWorklistInformationFind
    )
    answers = 0
    final = None
    for status, _ in assoc.send_c_find(query(), ModalityWorklistInformationFind, msg_id=7):
        if status.Status == Status.PENDING:
            answers += 1
            if answers == 1:
                assoc.send_c_cancel(7, context_id)
        else:
            final = status
    assert final is not None and final.Status == Status.CANCEL
    assert answers < 400
    # the association is still usable after the cancel
    assert assoc.send_c_echo().Status == Status.SUCCESS


@pytest.fixture
def implicit_assoc(server: DicomServer) -> Iterator[Any]:
    """An association with only Implicit VR Little Endian, for hand-made identifiers."""
    with associate(
        server, (ModalityWorklistInformationFind, ImplicitVRLittleEndian)
    ) as association:
        yield association


def test_undecodable_identifier_is_refused_and_the_association_stays_usable(
    store: WorklistStore, implicit_assoc: Any
) -> None:
    put(store, entry("A1", "CT1", "20261125"))
    # An item tag where an attribute should be: not a dataset.
    rsp = send_raw_find(implicit_assoc, b"\xfe\xff\x00\xe0\x04\x00\x00\x00abcd", msg_id=3)
    assert rsp.Status == Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS
    assert "cannot decode identifier" in rsp.ErrorComment
    answers, final = find(implicit_assoc, query())
    assert final.Status == Status.SUCCESS
    assert accessions(answers) == ["A1"]


# pydicom warns while pynetdicom decodes the identifier, before the handler runs.
@pytest.mark.filterwarnings("ignore:Unknown encoding 'ISO_IR 999':UserWarning")
def test_unknown_character_set_is_refused(implicit_assoc: Any) -> None:
    identifier = (
        b"\x08\x00\x05\x00\x0a\x00\x00\x00ISO_IR 999"  # (0008,0005) CS
        b"\x10\x00\x10\x00\x04\x00\x00\x00M\xfc* "  # (0010,0010) PN
    )
    rsp = send_raw_find(implicit_assoc, identifier, msg_id=5)
    assert rsp.Status == Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS
    assert "ISO_IR 999" in rsp.ErrorComment


def test_store_failure_is_a_failure_status_with_a_comment(
    store: WorklistStore, redis_server: EmbeddedRedis, assoc: Any
) -> None:
    put(store, entry("A1", "CT1", "20261125"))
    redis_server.stop()
    answers, final = find(assoc, query())
    assert answers == []
    assert 0xC000 <= final.Status <= 0xCFFF
    assert final.Status == Status.UNABLE_TO_PROCESS
    assert final.ErrorComment == "worklist store unavailable"


def test_answer_limit_ends_with_success_and_a_warning(
    store: WorklistStore, caplog: pytest.LogCaptureFixture
) -> None:
    put(store, *(entry(f"A{i}", "CT1", "20261125") for i in range(5)))
    server = start_server(WorklistFindService(store, max_answers=2))
    try:
        ae = AE(ae_title=CALLING)
        ae.add_requested_context(ModalityWorklistInformationFind)
        association = ae.associate("127.0.0.1", server.port, ae_title=AE_TITLE)
        with caplog.at_level(logging.INFO, logger="broker.dicom.find"):
            answers, final = find(association, query())
        association.release()
    finally:
        server.stop()
    assert len(answers) == 2
    assert final.Status == Status.SUCCESS
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "answered only the first 2" in warnings[0].getMessage()


def test_one_info_line_per_query_without_patient_data(
    store: WorklistStore, assoc: Any, caplog: pytest.LogCaptureFixture
) -> None:
    put(store, entry("A1", "CT1", "20261125", name="Müller^Zoë"))
    with caplog.at_level(logging.DEBUG):
        answers, _ = find(assoc, query())
    assert len(answers) == 1
    summary = [r.getMessage() for r in caplog.records if r.name == "broker.dicom.find"]
    assert len(summary) == 1
    assert CALLING in summary[0] and "1 answers" in summary[0]
    info_and_up = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    for phi in ("Müller", "Zoë", "P-A1"):
        assert phi not in info_and_up


def test_finished_steps_are_hidden_unless_asked_for(store: WorklistStore, assoc: Any) -> None:
    put(store, entry("A1", "CT1", "20261125"), entry("A2", "CT1", "20261125"))
    store.apply([OrderChange("O-A2", OrderAction.SET_STATUS, status="CANCELED")], None)
    answers, _ = find(assoc, query(ScheduledStationAETitle="CT1"))
    assert [a.AccessionNumber for a in answers] == ["A1"]
    answers, _ = find(assoc, query(ScheduledProcedureStepStatus="CANCELED"))
    assert [a.AccessionNumber for a in answers] == ["A2"]
    status = answers[0].ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus
    assert status == "CANCELED"


class SlowAnswers(WorklistFindService):
    """The real service, its answers slowed as by a slow network or a huge worklist."""

    def handle(self, event: Any) -> Iterator[Any]:
        for result in super().handle(event):
            time.sleep(0.3)
            yield result


def test_a_query_longer_than_the_network_timeout_keeps_the_association(
    store: WorklistStore,
) -> None:
    put(store, *(entry(f"S{n}", "CT1", "20261125") for n in range(6)))  # ~1.8 s of answers
    configure_pynetdicom_logging()
    server = DicomServer(
        ae_title=AE_TITLE,
        host="127.0.0.1",
        port=0,
        find_service=SlowAnswers(store, max_answers=100),
        network_timeout=1.0,
    )
    server.start()
    try:
        with associate(server, (ModalityWorklistInformationFind,)) as association:
            answers, final = find(association, query())
            assert len(answers) == 6 and final.Status == Status.SUCCESS
            again, final = find(association, query(ScheduledStationAETitle="CT1"))
            assert len(again) == 6 and final.Status == Status.SUCCESS
            assert association.is_established
    finally:
        server.stop()
