"""The per-query work budget over the network: candidates examined, time spent searching.

A pynetdicom SCU against the real DicomServer on a real redis-server store,
with budgets tiny enough to be reached by a handful of entries. A query past
its budget ends with 0xA700 Refused: Out of resources and an Error Comment
(PS3.4 K.4.1.1.4), and says so in the log; a query inside it is not affected;
the association goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from broker.dicom.find import WorklistFindService
from broker.dicom.gate import BroadQueryGate
from broker.dicom.profiles import ProfileSet
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
from tests.scu import ModalityWorklistInformationFind, Verification


@contextmanager
def serving(service: WorklistFindService) -> Iterator[Any]:
    """An association to a DicomServer answering with ``service``."""
    server = start_server(service)
    try:
        with associate(server, (ModalityWorklistInformationFind,), (Verification,)) as assoc:
            yield assoc
    finally:
        server.stop()


def fill(store: WorklistStore) -> None:
    """Ten entries for CT1, two for MR1."""
    put(store, *(entry(f"C{n}", "CT1", "20261125") for n in range(10)))
    put(store, entry("M1", "MR1", "20261125"), entry("M2", "MR1", "20261126"))


def summary(caplog: pytest.LogCaptureFixture) -> str:
    (line,) = [
        r.getMessage()
        for r in caplog.records
        if r.name == "broker.dicom.find" and r.levelno == logging.INFO
    ]
    return line


def test_past_the_candidate_budget_the_query_is_refused(
    store: WorklistStore, caplog: pytest.LogCaptureFixture
) -> None:
    fill(store)
    with serving(WorklistFindService(store, max_answers=100, max_candidates=5)) as assoc:
        with caplog.at_level(logging.INFO, logger="broker.dicom.find"):
            answers, final = find(assoc, query())  # every entry is a candidate
        assert final.Status == Status.OUT_OF_RESOURCES
        assert final.ErrorComment == "over 5 candidate entries; narrow the query"
        assert len(answers) == 5  # answers sent before the budget ran out stand
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "over 5 candidate entries" in warnings[0]
        assert "5 candidates" in summary(caplog)  # it stopped there: 7 were never matched
        # a station poll, which the index narrows to two candidates, is answered
        answers, final = find(assoc, query(ScheduledStationAETitle="MR1"))
        assert final.Status == Status.SUCCESS
        assert accessions(answers) == ["M1", "M2"]


def test_a_sorted_query_past_the_budget_is_refused_before_reading_any_entry(
    store: WorklistStore, caplog: pytest.LogCaptureFixture
) -> None:
    fill(store)
    profiles = ProfileSet.parse({"*": {"sort": ["start", "accession"]}})
    service = WorklistFindService(store, max_answers=100, max_candidates=5, profiles=profiles)
    with serving(service) as assoc:
        with caplog.at_level(logging.INFO, logger="broker.dicom.find"):
            answers, final = find(assoc, query())
        assert answers == []
        assert final.Status == Status.OUT_OF_RESOURCES
        assert final.ErrorComment == "over 5 candidate entries; narrow the query"
        assert "0 candidates" in summary(caplog)
        answers, final = find(assoc, query(ScheduledStationAETitle="MR1"))
        assert final.Status == Status.SUCCESS
        assert [a.AccessionNumber for a in answers] == ["M1", "M2"]


def test_past_the_time_budget_the_query_is_refused(
    store: WorklistStore, caplog: pytest.LogCaptureFixture
) -> None:
    fill(store)
    # A nanosecond of processor time: spent before the first candidate, whatever the machine.
    with serving(WorklistFindService(store, max_answers=100, query_cpu_seconds=1e-9)) as assoc:
        with caplog.at_level(logging.INFO, logger="broker.dicom.find"):
            answers, final = find(assoc, query())
        assert answers == []
        assert final.Status == Status.OUT_OF_RESOURCES
        assert final.ErrorComment == "over 1e-09 CPU seconds of searching; narrow the query"
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "CPU seconds of searching" in warnings[0]
        assert "0 candidates" in summary(caplog)
        assert assoc.send_c_echo().Status == Status.SUCCESS


class CostlySending(WorklistFindService):
    """The real service, each answer costing processor time in the query's thread after
    it is yielded, as pynetdicom's encoding of a large answer does."""

    def handle(self, event: Any) -> Iterator[Any]:
        for result in super().handle(event):
            yield result
            busy_until = time.thread_time() + 0.3  # the service's generator is suspended
            while time.thread_time() < busy_until:
                pass


def test_processor_time_spent_sending_answers_does_not_count(store: WorklistStore) -> None:
    put(store, *(entry(f"S{n}", "CT1", "20261125") for n in range(6)))  # 1.8 s of sending
    with serving(CostlySending(store, max_answers=100, query_cpu_seconds=1.0)) as assoc:
        answers, final = find(assoc, query())
    assert final.Status == Status.SUCCESS
    assert len(answers) == 6


def test_broad_queries_take_turns_and_polls_never_wait(store: WorklistStore) -> None:
    """A query over more candidates than the gate's threshold needs a slot; another broad
    query holds the only one, so it is refused, while a station poll is answered."""
    fill(store)
    gate = BroadQueryGate(threshold=5, slots=1, wait=0)
    service = WorklistFindService(store, max_answers=100, gate=gate)
    with serving(service) as assoc:
        with gate.admit(1000, "10.9.9.9"):  # a broad query from another scanner runs
            answers, final = find(assoc, query())  # 12 candidates: broad
            assert final.Status == Status.OUT_OF_RESOURCES and answers == []
            assert "busy with other broad queries" in final.ErrorComment
            answers, final = find(assoc, query(ScheduledStationAETitle="MR1"))
            assert final.Status == Status.SUCCESS and accessions(answers) == ["M1", "M2"]
        answers, final = find(assoc, query())  # its turn
        assert final.Status == Status.SUCCESS and len(answers) == 12


def test_one_broad_query_per_address(store: WorklistStore) -> None:
    fill(store)
    gate = BroadQueryGate(threshold=5, slots=4, wait=0)
    with serving(WorklistFindService(store, max_answers=100, gate=gate)) as assoc:
        with gate.admit(1000, assoc.requestor.address):  # this address's query still runs
            answers, final = find(assoc, query())
        assert final.Status == Status.OUT_OF_RESOURCES and answers == []
        assert "another broad query from this address" in final.ErrorComment
