"""Named DICOM status codes used by the broker's services, and A-ASSOCIATE-RJ codes.

Values from PS3.4 Annex C.4.1.1.4 (C-FIND), Annex F.7 / F.8 (MPPS N-CREATE,
N-SET), PS3.7 Annex C (general status codes) and PS3.8 Table 9-21
(A-ASSOCIATE-RJ PDU).
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["RejectReason", "RejectResult", "RejectSource", "Status"]


class Status(IntEnum):
    """DIMSE status values the broker returns."""

    SUCCESS = 0x0000
    PENDING = 0xFF00
    PENDING_WARNING = 0xFF01  # optional keys not supported (PS3.4 C.4.1.1.4)
    CANCEL = 0xFE00
    OUT_OF_RESOURCES = 0xA700
    IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    UNABLE_TO_PROCESS = 0xC001  # C-FIND "Unable to process" (failure, Cxxx range)
    PROCESSING_FAILURE = 0x0110
    INVALID_ATTRIBUTE_VALUE = 0x0106
    MISSING_ATTRIBUTE = 0x0120


class RejectResult(IntEnum):
    """A-ASSOCIATE-RJ Result (PS3.8 Table 9-21)."""

    PERMANENT = 0x01
    TRANSIENT = 0x02


class RejectSource(IntEnum):
    """A-ASSOCIATE-RJ Source (PS3.8 Table 9-21)."""

    SERVICE_USER = 0x01
    SERVICE_PROVIDER_ACSE = 0x02
    SERVICE_PROVIDER_PRESENTATION = 0x03


class RejectReason(IntEnum):
    """A-ASSOCIATE-RJ Reason/Diag. when the Source is the DICOM UL service user (PS3.8
    Table 9-21). There is no reason for a source address: "no reason given" stands for it."""

    NO_REASON_GIVEN = 0x01
    APPLICATION_CONTEXT_NAME_NOT_SUPPORTED = 0x02
    CALLING_AE_TITLE_NOT_RECOGNIZED = 0x03
    CALLED_AE_TITLE_NOT_RECOGNIZED = 0x07
