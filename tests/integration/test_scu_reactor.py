"""The tests' SCU keeps every C-FIND response (``tests.scu.leave_responses_to_requests``).

pynetdicom's requestor runs a reactor thread that may poll the received messages once
after a request went out, when it was let go at the end of the previous request and not
scheduled again before the next one paused it. A response already in is then taken and
dropped: the soak's modality saw a stored entry answered with Success alone, about once
in 2,000 queries. Here that poll is made to happen at the worst moment, every time: the
request is sent, its responses are in, and the reactor is let go once before they are read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from broker.dicom.find import WorklistFindService
from broker.dicom.server import DicomServer
from broker.store.worklist import WorklistStore
from tests.crash.modality import _find_query
from tests.integration.dicom_find_helpers import associate, entry, put, start_server
from tests.scu import ModalityWorklistInformationFind, leave_responses_to_requests
from tests.waiting import wait_for

FIND = (ModalityWorklistInformationFind,)


@pytest.fixture
def server(store: WorklistStore) -> Iterator[DicomServer]:
    put(store, entry("ACC-1", "CT1", "20261231"))
    server = start_server(WorklistFindService(store, max_answers=10))
    try:
        yield server
    finally:
        server.stop()


def _find_with_a_late_reactor(assoc: Any) -> list[int]:
    """One C-FIND whose responses are all received before they are read, the reactor
    polling once in between (as when it ran late); the statuses read."""
    polled = threading.Event()
    poll = assoc.dimse.get_msg

    def counted(block: bool = False) -> Any:
        reply = poll(block)
        if not block:  # the reactor's poll: once, then it pauses again
            assoc._reactor_checkpoint.clear()
            polled.set()
        return reply

    assoc.dimse.get_msg = counted
    responses = assoc.send_c_find(_find_query("ACC-1"), ModalityWorklistInformationFind)  # sent now
    wait_for(lambda: assoc.dimse.msg_queue.qsize() == 2, "the pending and final responses")
    polled.clear()
    assoc._reactor_checkpoint.set()  # the reactor, paused for the request, runs once
    wait_for(polled.is_set, "the reactor's poll")
    return [int(status.Status) for status, _ in responses]


def test_a_reactor_running_late_leaves_the_responses_to_the_request(
    server: DicomServer,
) -> None:
    with associate(server, FIND, as_pynetdicom_makes_it=True) as assoc:
        leave_responses_to_requests(assoc)
        assert _find_with_a_late_reactor(assoc) == [0xFF00, 0x0000]
        statuses = [int(s.Status) for s, _ in assoc.send_c_find(_find_query("ACC-1"), *FIND)]
        assert statuses == [0xFF00, 0x0000]  # the association goes on as before


def test_without_it_pynetdicom_drops_the_pending_answer(server: DicomServer) -> None:
    """What the soak's modality met (pynetdicom 3.0.4): only the final Success. Once a
    pynetdicom upgrade fails this, its reactor leaves responses alone and the workaround
    can go."""
    with associate(server, FIND, as_pynetdicom_makes_it=True) as assoc:
        assert _find_with_a_late_reactor(assoc) == [0x0000]
