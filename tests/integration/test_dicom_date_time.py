"""SPS Start Date with SPS Start Time over the network: one period or two keys, never negotiated.

The Modality Worklist model requires a date range with a time range of the same
form to be one period of time (PS3.4 Table K.6-1, C.2.2.2.5.4), and its SOP
Class Extended Negotiation has no date-time byte to agree on (K.5.1: bytes 1 and
2 are reserved). So a pynetdicom SCU that proposes the MWL sub-item, one that
proposes none, and DCMTK ``findscu`` (which negotiates nothing) get the same
answers; the SCP answers no sub-item (K.5.1: fuzzy semantic matching of names
not supported, timezone query adjustment unspecified).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pynetdicom import AE
from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation

from broker.dicom.find import WorklistFindService
from broker.dicom.server import DicomServer
from broker.store.worklist import WorklistStore
from tests.conftest import require_tool
from tests.integration.dicom_find_helpers import (
    AE_TITLE,
    CALLING,
    accessions,
    entry,
    find,
    put,
    query,
    start_server,
)
from tests.scu import ModalityWorklistInformationFind
from tests.unit.test_matching_date_time import WEEK

# Accession: (SPS Start Date, SPS Start Time), the week of the unit test

# (date key, time key, accessions answered)
ONE_PERIOD = ("20240105-20240107", "1000-1800", ["B", "C", "D"])
OPEN_PERIOD = ("-20240107", "-1800", ["A", "B", "C", "D", "F"])
APART = ("20240105-", "-1800", ["A", "B", "D", "G"])  # different forms of range

# PS3.4 Table K.5-1 (A-ASSOCIATE-RQ): reserved 1, reserved 1, fuzzy semantic
# matching of person names requested, timezone query adjustment requested.
MWL_SUB_ITEM = bytes([1, 1, 1, 1])


@pytest.fixture
def server(store: WorklistStore) -> Iterator[DicomServer]:
    put(store, *(entry(acc, "CT1", d, time=t) for acc, (d, t) in WEEK.items()))
    srv = start_server(WorklistFindService(store, max_answers=100))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(params=[False, True], ids=["no sub-item", "MWL sub-item proposed"])
def assoc(request: pytest.FixtureRequest, server: DicomServer) -> Iterator[Any]:
    ae = AE(ae_title=CALLING)
    ae.add_requested_context(ModalityWorklistInformationFind)
    ext_neg: list[Any] = []
    if request.param:
        item = SOPClassExtendedNegotiation()
        item.sop_class_uid = ModalityWorklistInformationFind
        item.service_class_application_information = MWL_SUB_ITEM
        ext_neg.append(item)
    association = ae.associate("127.0.0.1", server.port, ae_title=AE_TITLE, ext_neg=ext_neg)
    assert association.is_established
    sent = association.requestor.sop_class_extended
    assert sent == ({ModalityWorklistInformationFind: MWL_SUB_ITEM} if request.param else {})
    try:
        yield association
    finally:
        association.release()


def test_the_ac_answers_no_extended_negotiation(assoc: Any) -> None:
    assert assoc.acceptor.sop_class_extended == {}


@pytest.mark.parametrize(
    ("date", "time", "expected"),
    [ONE_PERIOD, OPEN_PERIOD, APART],
    ids=["a-b with a-b: one period", "-b with -b: one period", "a- with -b: apart"],
)
def test_answers_do_not_depend_on_negotiation(
    assoc: Any, date: str, time: str, expected: list[str]
) -> None:
    identifier = query(ScheduledProcedureStepStartDate=date, ScheduledProcedureStepStartTime=time)
    answers, _ = find(assoc, identifier)
    assert accessions(answers) == expected


def findscu(server: DicomServer, out: Path, date: str, time: str) -> list[str]:
    """Accessions DCMTK ``findscu -W`` receives for these SPS start keys."""
    exe = require_tool("findscu")
    out.mkdir(parents=True)
    args = [exe, "-W", "-aet", CALLING, "-aec", AE_TITLE, "-X", "-od", str(out)]
    for key in (
        "AccessionNumber",
        f"(0040,0100)[0].ScheduledProcedureStepStartDate={date}",
        f"(0040,0100)[0].ScheduledProcedureStepStartTime={time}",
    ):
        args += ["-k", key]
    args += ["127.0.0.1", str(server.port)]
    result = subprocess.run(
        args, capture_output=True, timeout=60, check=False, env={**os.environ, "TCP_NODELAY": "1"}
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return sorted(str(pydicom.dcmread(p).AccessionNumber) for p in out.glob("rsp*.dcm"))


@pytest.mark.interop
@pytest.mark.parametrize(
    ("date", "time", "expected"),
    [ONE_PERIOD, OPEN_PERIOD, APART],
    ids=["a-b with a-b: one period", "-b with -b: one period", "a- with -b: apart"],
)
def test_findscu_without_negotiation(
    server: DicomServer, tmp_path: Path, date: str, time: str, expected: list[str]
) -> None:
    assert findscu(server, tmp_path / "rsp", date, time) == expected
