"""The caps of the DICOM transport guard by PDU type (PS3.8 9.3), its A-ABORT, and the
pynetdicom it was written against."""

from __future__ import annotations

import pynetdicom
import pytest

from broker.dicom.transport import (
    MAX_ASSOCIATE_RQ_BYTES,
    MAX_PDU_BYTES,
    PYNETDICOM_READ,
    AbortReason,
    PduType,
    abort_pdu,
    pdu_limit,
    require_hooks,
)


def test_the_guard_follows_the_installed_pynetdicom() -> None:
    """The guard hooks into pynetdicom's reading of PDUs (dul.py, transport.py); on
    another version, read them again, adjust broker/dicom/transport.py, then this."""
    assert pynetdicom.__version__ == PYNETDICOM_READ
    require_hooks()


@pytest.mark.parametrize(
    ("pdu_type", "announced", "limit"),
    [
        (PduType.ASSOCIATE_RQ, 16382, MAX_ASSOCIATE_RQ_BYTES),
        (PduType.ASSOCIATE_AC, 16382, MAX_ASSOCIATE_RQ_BYTES),
        (PduType.ASSOCIATE_RJ, 16382, 4),
        (PduType.P_DATA_TF, 16382, 16388),  # the maximum, and a PDV item header
        (PduType.P_DATA_TF, 0, MAX_PDU_BYTES),  # "no maximum" announced
        (PduType.P_DATA_TF, 10 * MAX_PDU_BYTES, MAX_PDU_BYTES),
        (PduType.RELEASE_RQ, 16382, 4),
        (PduType.RELEASE_RP, 16382, 4),
        (PduType.ABORT, 16382, 4),
        (0x08, 16382, None),  # not a PDU type: pynetdicom aborts it unread
    ],
)
def test_every_pdu_type_has_its_cap(pdu_type: int, announced: int, limit: int | None) -> None:
    assert pdu_limit(pdu_type, announced) == limit


def test_the_guard_aborts_as_the_service_provider() -> None:
    """PS3.8 9.3.8: type 07H, length 4, two reserved bytes, source 2, reason."""
    assert abort_pdu(AbortReason.INVALID_PARAMETER_VALUE) == bytes.fromhex("07000000000400000206")
    assert abort_pdu(AbortReason.UNEXPECTED_PDU)[-1] == 2
