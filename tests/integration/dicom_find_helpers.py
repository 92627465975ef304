"""The MWL C-FIND tests' SCU side: entries put in the store, a modality's query, a server on
127.0.0.1 port 0, an association, one C-FIND's answers and final status (also sent with
hand-made identifier bytes). Statuses are PS3.4 C.4.1.1.4 values, named in
``broker.dicom.status``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from typing import Any

from pydicom import config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.dimse_primitives import C_FIND

from broker.dicom.server import DicomServer, configure_pynetdicom_logging
from broker.dicom.status import Status
from broker.store.worklist import WorklistStore
from broker.worklist.model import OrderAction, OrderChange
from tests.scu import ModalityWorklistInformationFind, established

AE_TITLE = "MWL_TEST"
CALLING = "MODALITY_1"


def entry(
    acc: str, station: str, date: str, *, name: str = "DOE^JOHN", time: str = "080000"
) -> Dataset:
    ds = Dataset()
    ds.PatientName = name
    ds.PatientID = f"P-{acc}"
    ds.AccessionNumber = acc
    sps = Dataset()
    sps.ScheduledStationAETitle = station
    sps.Modality = station[:2]
    sps.ScheduledProcedureStepStartDate = date
    sps.ScheduledProcedureStepStartTime = time
    sps.ScheduledProcedureStepID = f"SPS-{acc}"
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def put(store: WorklistStore, *entries: Dataset) -> None:
    changes = [OrderChange(f"O-{e.AccessionNumber}", OrderAction.SCHEDULE, (e,)) for e in entries]
    store.apply(changes, None)


def query(**sps_keys: str) -> Dataset:
    """A modality's query: the usual return keys, and SPS keys as given.

    Keys are set without pydicom's value validation: a range such as
    ``20261125-20261126`` is a valid key but not a valid DA value.
    """
    ds = Dataset()
    ds.PatientName = ""
    ds.PatientID = ""
    ds.AccessionNumber = ""
    item = Dataset()
    keys = {
        "ScheduledStationAETitle": "",
        "Modality": "",
        "ScheduledProcedureStepStartDate": "",
        **sps_keys,
        "ScheduledProcedureStepID": "",
    }
    for keyword, value in keys.items():
        tag = tag_for_keyword(keyword)
        assert tag is not None
        item.add(DataElement(tag, dictionary_VR(tag), value, validation_mode=config.IGNORE))
    ds.ScheduledProcedureStepSequence = [item]
    return ds


def start_server(find_service: Any) -> DicomServer:
    configure_pynetdicom_logging()
    server = DicomServer(ae_title=AE_TITLE, host="127.0.0.1", port=0, find_service=find_service)
    server.start()
    return server


@contextmanager
def associate(
    server: DicomServer, *contexts: tuple[Any, ...], as_pynetdicom_makes_it: bool = False
) -> Iterator[Any]:
    """An established association to ``server`` with the given presentation contexts, its
    responses left to its requests (``tests.scu``) unless ``as_pynetdicom_makes_it``."""
    ae = AE(ae_title=CALLING)
    for context in contexts:
        ae.add_requested_context(*context)
    if not as_pynetdicom_makes_it:
        with established(ae, server.port, AE_TITLE) as association:
            yield association
        return
    association = ae.associate("127.0.0.1", server.port, ae_title=AE_TITLE)
    assert association.is_established
    try:
        yield association
    finally:
        if association.is_established:
            association.release()


def find(association: Any, identifier: Dataset) -> tuple[list[Dataset], Dataset]:
    """All pending answers and the final status dataset of one C-FIND."""
    answers: list[Dataset] = []
    final: Dataset | None = None
    for status, ds in association.send_c_find(identifier, ModalityWorklistInformationFind):
        assert status is not None, "no response from the SCP"
        if status.Status in (Status.PENDING, Status.PENDING_WARNING):
            answers.append(ds)
        else:
            final = status
    assert final is not None
    return answers, final


def accessions(answers: list[Dataset]) -> list[str]:
    return sorted(a.AccessionNumber for a in answers)


def send_raw_find(association: Any, identifier: bytes, msg_id: int) -> Any:
    """A C-FIND-RQ whose identifier bytes are sent as given; returns the response."""
    context_id = next(
        cx.context_id
        for cx in association.accepted_contexts
        if cx.abstract_syntax == ModalityWorklistInformationFind
    )
    req = C_FIND()
    req.MessageID = msg_id
    req.AffectedSOPClassUID = ModalityWorklistInformationFind
    req.Priority = 2
    req.Identifier = BytesIO(identifier)
    # As pynetdicom's own send_c_*: pause the association's reactor so that it
    # does not take the response for an unexpected message.
    association._reactor_checkpoint.clear()
    while not association._is_paused:
        time.sleep(0.0001)
    try:
        association.dimse.send_msg(req, context_id)
        _, rsp = association.dimse.get_msg(block=True)
    finally:
        association._reactor_checkpoint.set()
    assert rsp is not None, "no response from the SCP"
    return rsp
