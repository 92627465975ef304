"""An MPPS refusal as a DIMSE answer: the status Dataset of an N-CREATE/N-SET-RSP.

The rules themselves (statuses, refusals, decoding, PS3.4 F.7) are the same for every
face and live in ``broker.worklist.mpps_rules``; the names the DIMSE face answers with
are re-exported here. ``failure`` turns a :class:`MppsRefusal` into what pynetdicom sends:
Status, Error Comment (0000,0902) and Error ID (0000,0903) (PS3.7 10.1.1.1, 10.1.5.1).
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from broker.worklist.mpps_rules import (
    ERROR_COMMENT_MAX,
    NO_LONGER_UPDATABLE,
    NO_LONGER_UPDATABLE_ERROR_ID,
    MppsRefusal,
    MppsStatus,
)

__all__ = [
    "NO_LONGER_UPDATABLE",
    "NO_LONGER_UPDATABLE_ERROR_ID",
    "MppsRefusal",
    "MppsResult",
    "MppsStatus",
    "failure",
]

# (status, attribute list): a status int, or a status Dataset holding Status and
# ErrorComment (and ErrorID), which pynetdicom copies into the N-CREATE/N-SET-RSP.
MppsResult = tuple[int | Dataset, Dataset | None]


def failure(refusal: MppsRefusal) -> MppsResult:
    """The DIMSE answer to ``refusal``: its status, comment (an LO, cut) and Error ID."""
    ds = Dataset()
    ds.Status = int(refusal.status)
    ds.ErrorComment = refusal.comment[:ERROR_COMMENT_MAX]
    if refusal.error_id is not None:
        ds.ErrorID = refusal.error_id
    return ds, None
