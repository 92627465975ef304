"""pynetdicom's own log lines go through the broker's log filters: at DEBUG, with its
identifier logging and its PDU dumps switched on (the broker switches them off), a query
full of canaries and a caller whose AE title holds a control character leave no canary
and no control character in the log."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from pynetdicom import AE, _config

from broker.common.logsafety import safety_handler
from broker.dicom.server import configure_pynetdicom_logging
from broker.dicom.status import Status
from broker.store.worklist import WorklistStore
from tests.dicom_pdus import associate_rq
from tests.integration.dicom_find_helpers import entry, put, query
from tests.integration.test_dicom_guard import hung_up
from tests.integration.test_dicom_transport import AE_TITLE, connect, serving
from tests.scu import ModalityWorklistInformationFind, identifier_of

NAME, ACCESSION = "Zzcanary^Qqcanary", "CNRYACC1"
CANARIES = ("zzcanary", "qqcanary", "cnryacc", "cnryae")


@contextmanager
def pynetdicom_logging_everything() -> Iterator[io.StringIO]:
    """The broker's handler on the root logger at DEBUG, and pynetdicom logging all it can;
    everything as it was afterwards."""
    out = io.StringIO()
    handler = safety_handler(out, log_phi=False)
    root, library = logging.getLogger(), logging.getLogger("pynetdicom")
    levels = root.level, library.level
    switches = (
        _config.LOG_REQUEST_IDENTIFIERS,
        _config.LOG_RESPONSE_IDENTIFIERS,
        _config.LOG_HANDLER_LEVEL,
    )
    configure_pynetdicom_logging()
    _config.LOG_REQUEST_IDENTIFIERS = _config.LOG_RESPONSE_IDENTIFIERS = True
    _config.LOG_HANDLER_LEVEL = "standard"  # PDU and DIMSE dumps, bound when a server starts
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    library.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        library.setLevel(levels[1])
        (
            _config.LOG_REQUEST_IDENTIFIERS,
            _config.LOG_RESPONSE_IDENTIFIERS,
            _config.LOG_HANDLER_LEVEL,
        ) = switches


def test_pynetdicom_lines_hold_no_dataset_value_and_no_raw_ae_title(
    store: WorklistStore,
) -> None:
    put(store, entry(ACCESSION, "CT1", "20261125", name=NAME))
    with pynetdicom_logging_everything() as out, serving(store, broker_logging=False) as server:
        ae = AE(ae_title="FINDSCU")
        ae.add_requested_context(ModalityWorklistInformationFind)
        assoc = ae.associate("127.0.0.1", server.port, ae_title=AE_TITLE)
        assert assoc.is_established
        identifier = query(ScheduledStationAETitle="CT1")
        identifier.PatientName = "Zzcanary*"
        responses = list(assoc.send_c_find(identifier, ModalityWorklistInformationFind))
        assert [identifier_of(r[1]).AccessionNumber for r in responses[:-1]] == [ACCESSION]
        assert responses[-1][0].Status == Status.SUCCESS
        assoc.release()
        # pynetdicom cannot decode this AE title, and says so quoting it
        request = associate_rq("CNRYAE_X", AE_TITLE).replace(b"CNRYAE_X", b"CNRYAE\x01\n")
        with connect(server) as sock:
            sock.sendall(request)
            assert hung_up(sock) is not None
    text = out.getvalue()
    assert "DEBUG pynetdicom" in text and "Find SCP" in text  # it did log, at DEBUG
    assert "Invalid '…' value '…'" in text  # the AE title it could not decode, withheld
    hits = [line for line in text.splitlines() if any(c in line.lower() for c in CANARIES)]
    assert hits == [], "\n".join(hits[:20])
    assert "\x01" not in text
