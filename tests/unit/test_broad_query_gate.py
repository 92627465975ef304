"""Broad queries take turns (``broker.dicom.gate``); narrow ones never wait."""

from __future__ import annotations

import threading

import pytest

from broker.dicom.gate import BroadQueryGate
from broker.dicom.status import Status
from broker.errors import DicomServiceError


def test_narrow_queries_pass_while_every_slot_is_held() -> None:
    gate = BroadQueryGate(threshold=100, slots=1, wait=0)
    with gate.admit(101, "10.0.0.1"), gate.admit(100, "10.0.0.2"), gate.admit(5, "10.0.0.1"):
        pass


def test_one_broad_query_per_address_at_a_time() -> None:
    gate = BroadQueryGate(threshold=10, slots=4, wait=5)
    with gate.admit(11, "10.0.0.1"):
        with pytest.raises(DicomServiceError) as refused, gate.admit(500, "10.0.0.1"):
            pass
        assert refused.value.status == Status.OUT_OF_RESOURCES
        assert "from this address" in refused.value.comment
        with gate.admit(11, "10.0.0.2"):  # another caller has slots left
            pass
    with gate.admit(11, "10.0.0.1"):  # its turn again once the first ended
        pass


def test_a_broad_query_waits_for_a_slot_then_is_refused() -> None:
    gate = BroadQueryGate(threshold=10, slots=1, wait=0.05)
    with (
        gate.admit(11, "10.0.0.1"),
        pytest.raises(DicomServiceError) as refused,
        gate.admit(11, "10.0.0.2"),
    ):
        pass
    assert "busy with other broad queries" in refused.value.comment


def test_a_waiting_query_gets_the_slot_when_it_is_released() -> None:
    gate = BroadQueryGate(threshold=10, slots=1, wait=30)
    holding, release, ran = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with gate.admit(11, "10.0.0.1"):
            holding.set()
            release.wait(30)

    def second() -> None:
        with gate.admit(11, "10.0.0.2"):
            ran.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert holding.wait(30)
    threads[1].start()
    assert not ran.wait(0.1)  # waiting for the slot
    release.set()
    assert ran.wait(30)
    for t in threads:
        t.join(30)


def test_a_refused_query_frees_its_address() -> None:
    gate = BroadQueryGate(threshold=10, slots=1, wait=0)
    with gate.admit(11, "10.0.0.1"), pytest.raises(DicomServiceError), gate.admit(11, "10.0.0.2"):
        pass
    with gate.admit(11, "10.0.0.2"):
        pass
