"""Hostile C-FIND identifiers over the network: costly wild cards, keys past their VR, size.

A pynetdicom SCU against the real DicomServer on a real redis-server store.
Failures are PS3.4 K.4.1.1.4 statuses, named in ``broker.dicom.status``; after
each one the association keeps working.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pydicom import config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian

from broker.dicom.find import WorklistFindService
from broker.dicom.limits import MAX_IDENTIFIER_BYTES
from broker.dicom.server import DicomServer
from broker.dicom.status import Status
from broker.store.worklist import WorklistStore
from tests.integration.dicom_find_helpers import (
    accessions,
    associate,
    entry,
    find,
    put,
    query,
    start_server,
)
from tests.scu import ModalityWorklistInformationFind

LONG_NAME = "Abcdefghijklmnopqrstuvwxyz^Abcdefgh"  # 36 characters


@pytest.fixture
def server(store: WorklistStore) -> Iterator[DicomServer]:
    srv = start_server(WorklistFindService(store, max_answers=1000))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def assoc(server: DicomServer) -> Iterator[Any]:
    with associate(server, (ModalityWorklistInformationFind,)) as association:
        yield association


def with_key(keyword: str, value: Any) -> Dataset:
    """The usual modality query with one more key, set without pydicom's validation."""
    ds = query()
    tag = tag_for_keyword(keyword)
    assert tag is not None
    ds.add(DataElement(tag, dictionary_VR(tag), value, validation_mode=config.IGNORE))
    return ds


@pytest.mark.parametrize("k", [10, 30])
def test_the_exponential_wildcard_query_is_answered(
    store: WorklistStore, assoc: Any, k: int
) -> None:
    # "*?" k times then "#": 3.3 s per entry at k = 10 with translated regexes, doubling
    # with each k. It has to finish (pytest-timeout ends it otherwise); nothing is timed.
    put(store, *(entry(f"A{n}", "CT1", "20261125", name=LONG_NAME) for n in range(20)))
    answers, final = find(assoc, with_key("PatientName", "*?" * k + "#"))
    assert final.Status == Status.SUCCESS and answers == []
    answers, final = find(assoc, with_key("PatientName", "*?" * k))
    assert final.Status == Status.SUCCESS and len(answers) == 20


@pytest.mark.parametrize(
    ("keyword", "secret", "comment", "tag"),
    [
        # PN allows 64 characters per component group
        ("PatientName", "Zyxwvutsrq" * 7, "PatientName: longer than PN allows (64)", 0x00100010),
        ("PatientID", "Zyxwvutsrq" * 7, "PatientID: longer than LO allows (64)", 0x00100020),
        # 9 digits on one side of a date range
        (
            "PatientBirthDate",
            "19700101-197001019",
            "PatientBirthDate: longer than DA allows (8)",
            0x00100030,
        ),
    ],
)
def test_a_key_longer_than_its_vr_is_refused_and_named_without_its_value(
    store: WorklistStore,
    assoc: Any,
    caplog: pytest.LogCaptureFixture,
    keyword: str,
    secret: str,
    comment: str,
    tag: int,
) -> None:
    put(store, entry("A1", "CT1", "20261125", name=LONG_NAME))
    with caplog.at_level(logging.DEBUG):
        answers, final = find(assoc, with_key(keyword, secret))
    assert answers == []
    assert final.Status == Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS
    assert final.ErrorComment == comment
    assert final.OffendingElement == tag
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert keyword in logged
    assert secret[:8] not in logged
    # the association is still usable, and a key of 64 characters is a key
    answers, final = find(assoc, with_key("PatientName", "*?" * 32))
    assert final.Status == Status.SUCCESS and accessions(answers) == ["A1"]


def test_a_key_in_the_step_item_is_refused_too(store: WorklistStore, assoc: Any) -> None:
    answers, final = find(assoc, query(ScheduledStationAETitle="CT1_BUT_MUCH_TOO_LONG"))
    assert answers == []
    assert final.Status == Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS
    assert final.ErrorComment == "ScheduledStationAETitle: longer than AE allows (16)"
    assert final.OffendingElement == 0x00400001


def test_an_oversized_identifier_is_refused(store: WorklistStore, assoc: Any) -> None:
    put(store, entry("A1", "CT1", "20261125"))
    ds = query()
    ds.add_new(0x00091010, "UT", "x" * (MAX_IDENTIFIER_BYTES + 1))  # UT: no VR limit
    answers, final = find(assoc, ds)
    assert answers == []
    assert final.Status == Status.OUT_OF_RESOURCES
    assert final.ErrorComment == f"identifier larger than {MAX_IDENTIFIER_BYTES} bytes"
    answers, final = find(assoc, query())
    assert final.Status == Status.SUCCESS and accessions(answers) == ["A1"]


def test_a_deflated_identifier_is_measured_inflated(
    store: WorklistStore, server: DicomServer
) -> None:
    put(store, entry("A1", "CT1", "20261125"))
    context = (ModalityWorklistInformationFind, DeflatedExplicitVRLittleEndian)
    with associate(server, context) as association:
        ds = query()
        ds.add_new(0x00091010, "UT", " " * (4 * MAX_IDENTIFIER_BYTES))  # a few KiB deflated
        answers, final = find(association, ds)
        assert answers == []
        assert final.Status == Status.OUT_OF_RESOURCES
        answers, final = find(association, query())
        assert final.Status == Status.SUCCESS and accessions(answers) == ["A1"]
