"""Named DICOM status codes used by the broker's services.

Values from PS3.4 Annex C.4.1.1.4 (C-FIND), Annex F.7 / F.8 (MPPS N-CREATE,
N-SET) and PS3.7 Annex C (general status codes).
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["Status"]


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
