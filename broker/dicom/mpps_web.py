"""The DICOMweb Modality Performed Procedure Step service, its pure part (PS3.18 chapter 15).

What the HTTP routes of ``/modality-performed-procedure-steps/{mppsUID}`` need apart from
HTTP itself: the request payload of a Create (15.4) or an Update (15.5) as a Dataset
(``payload``: application/dicom+json, PS3.18 F.2), a refusal of the MPPS state machine
(``broker.services.mpps``) as an HTTP status and Warning header field (``problem``), and
the Retrieve (15.6) answer as DICOM JSON (``retrieve_json``, with ``includefield``).

The refusals keep their DICOM status (PS3.7 Annex C): PS3.18 10.5.3.2 recommends a
Warning text with the status and a reason (``Warning: A700 <service>: Out of memory``).

    MppsStatus                         HTTP (Tables 15.4.3-1, 15.5.3-1)
    0x0106 / 0x0120 / 0x0121           400 Bad Request (the payload or the UID)
    0x0111 Duplicate SOP Instance      409 Conflict (the UID is in use)
    0x0112 No such SOP Instance        404 Not Found
    0x0124 Refused: not authorized     403 Forbidden (outside the token's scanner profile)
    0x0110 + Error ID A710             409 Conflict (COMPLETED or DISCONTINUED already:
                                       "Performed Procedure Step Object may no longer be
                                       updated", PS3.4 Table F.7.2-2)
    0x0110 otherwise                   500 Internal Server Error
    the store unavailable (StoreError) 503 Service Unavailable (``store_unavailable``)

An update's attributes that may not be changed (PS3.4 Table F.7.2-1) are ignored, as over
DIMSE, and the 200 answer says so in its Warning header field (``ignored_warning``). Pure:
no HTTP framework, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.valuerep import VR

from broker.common import jsontext
from broker.worklist import dicom_json
from broker.worklist.mpps import MppsRecord
from broker.worklist.mpps_rules import NO_LONGER_UPDATABLE_ERROR_ID, MppsRefusal, MppsStatus

__all__ = [
    "MEDIA_TYPE",
    "MPPS_SOP_CLASS",
    "Problem",
    "http_status",
    "ignored_warning",
    "included_tags",
    "payload",
    "problem",
    "retrieve_json",
    "store_unavailable",
]

MEDIA_TYPE = "application/dicom+json"
MPPS_SOP_CLASS = "1.2.840.10008.3.1.2.3.3"  # Modality Performed Procedure Step SOP Class

_HTTP = {
    MppsStatus.INVALID_ATTRIBUTE_VALUE: 400,
    MppsStatus.MISSING_ATTRIBUTE: 400,
    MppsStatus.MISSING_ATTRIBUTE_VALUE: 400,
    MppsStatus.DUPLICATE_SOP_INSTANCE: 409,
    MppsStatus.NO_SUCH_SOP_INSTANCE: 404,
    MppsStatus.NOT_AUTHORIZED: 403,
}
_TITLES = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_SOP_UIDS = ("SOPClassUID", "SOPInstanceUID")
_MAX_DEPTH = 64
_VRS = frozenset(str(vr.value) for vr in VR)  # PS3.5 6.2


@dataclass(frozen=True)
class Problem:
    """An HTTP answer to a refused request: status, title and detail of the
    application/problem+json body (RFC 9457), and the Warning header field value."""

    status: int
    title: str
    detail: str
    warning: str


def http_status(refusal: MppsRefusal) -> int:
    """The HTTP status of ``refusal`` (PS3.18 Tables 15.4.3-1 and 15.5.3-1)."""
    if refusal.status is MppsStatus.PROCESSING_FAILURE:
        return 409 if refusal.error_id == NO_LONGER_UPDATABLE_ERROR_ID else 500
    return _HTTP.get(refusal.status, 500)


def problem(refusal: MppsRefusal, service: str) -> Problem:
    """``refusal`` as an HTTP answer; ``service`` names the origin server in the Warning
    header field (``299 <service>: <status> <comment>``, PS3.18 8.4 / 10.5.3.2)."""
    status = http_status(refusal)
    code = f"{int(refusal.status):04X}"
    if refusal.error_id is not None:
        code += f" ({refusal.error_id:04X})"
    return Problem(
        status, _TITLES[status], refusal.comment, _warning(service, code, refusal.comment)
    )


def store_unavailable(service: str) -> Problem:
    """The answer while the worklist store cannot be reached (503, Table 15.4.3-1)."""
    comment = "worklist store unavailable"
    code = f"{int(MppsStatus.PROCESSING_FAILURE):04X}"
    return Problem(503, _TITLES[503], comment, _warning(service, code, comment))


def ignored_warning(ignored: Sequence[str], service: str) -> str | None:
    """The Warning header field of an update whose not-settable attributes were ignored
    (PS3.4 Table F.7.2-1), or None when none were."""
    if not ignored:
        return None
    return _warning(
        service, "", "attributes an update may not change ignored: " + ", ".join(ignored)
    )


def _warning(service: str, code: str, text: str) -> str:
    """``299 <service>: <code> <text>``, the form of PS3.18's Warning header fields (8.4,
    10.5.3.2); ASCII only, as a header field value must be."""
    body = f"{code} {text}".strip()
    return f"299 {service}: {body}".encode("ascii", "replace").decode("ascii")


def payload(body: bytes, *, uid: str | None) -> Dataset:
    """A Create or Update request payload (PS3.18 15.4.1.4, 15.5.1.4) as a Dataset: one
    DICOM JSON object (PS3.18 F.2), or an array holding exactly one. Else MppsRefusal
    0x0106 (400). A SOP Class UID or SOP Instance UID in it must be the MPPS class and
    the target ``uid``; they are dropped (the target is the URL's)."""
    try:
        value = jsontext.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
        raise _bad("the payload is not JSON") from None
    if isinstance(value, list):
        if len(value) != 1:
            raise _bad(f"the payload holds {len(value)} datasets, not one")
        value = value[0]
    if not isinstance(value, dict):
        raise _bad("the payload is not a DICOM JSON object")
    try:
        _check_json(value, 0)
        ds = Dataset.from_json(value)
        unknown = [e for e in ds.iterall() if e.VR not in _VRS]
    except MppsRefusal:
        raise
    except Exception as e:  # RecursionError too: sequences nested too deep
        raise _bad(f"the payload is not valid DICOM JSON: {type(e).__name__}") from e
    if unknown:
        raise _bad(f"the payload is not valid DICOM JSON: VR of {unknown[0].tag} unknown")
    _check_identity(ds, uid)
    for keyword in _SOP_UIDS:
        ds.pop(keyword, None)
    return ds


def _bad(comment: str) -> MppsRefusal:
    return MppsRefusal(MppsStatus.INVALID_ATTRIBUTE_VALUE, comment)


def _check_json(value: Any, depth: int) -> None:
    """No BulkDataURI anywhere (nested sequences too), and no nesting past ``_MAX_DEPTH``
    JSON levels (about 20 sequence levels; an MPPS has a few)."""
    if depth > _MAX_DEPTH:
        raise _bad(f"the payload is nested deeper than {_MAX_DEPTH} JSON levels")
    if isinstance(value, dict):
        if "BulkDataURI" in value:
            raise _bad("BulkDataURI is not supported; send the value inline")
        for item in value.values():
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)


def _check_identity(ds: Dataset, uid: str | None) -> None:
    """The payload's SOP Class UID and SOP Instance UID, when present, name this instance."""
    sop_class = str(ds.get("SOPClassUID", "") or "").strip()
    if sop_class and sop_class != MPPS_SOP_CLASS:
        raise _bad("SOP Class UID (0008,0016) is not Modality Performed Procedure Step")
    instance = str(ds.get("SOPInstanceUID", "") or "").strip()
    if instance and uid is not None and instance != uid:
        raise _bad("SOP Instance UID (0008,0018) differs from the target MPPS UID")


def included_tags(includefield: Iterable[str]) -> frozenset[int] | None:
    """The tags a Retrieve asks for (PS3.18 15.6.1.2: comma-separated keywords or tags, or
    "all"); None for every attribute (no includefield, or "all"). An unknown attribute
    is MppsRefusal 0x0106 (400)."""
    names = [n.strip() for value in includefield for n in value.split(",") if n.strip()]
    if not names or "all" in names:
        if "all" in names and len(names) > 1:
            raise _bad('includefield "all" may not be combined with attributes')
        return None
    return frozenset(_tag(name) for name in names)


def _tag(name: str) -> int:
    """A keyword or eight hexadecimal digits as a tag; else 400."""
    if len(name) == 8 and all(c in "0123456789abcdefABCDEF" for c in name):
        return int(name, 16)
    tag = tag_for_keyword(name)
    if tag is None:
        raise _bad(f"includefield {name[:32]!a} is not an attribute keyword or tag")
    return tag


def retrieve_json(record: MppsRecord, tags: frozenset[int] | None = None) -> list[dict[str, Any]]:
    """A Retrieve's payload (PS3.18 15.6.3, PS3.4 Table F.8.2-1): the instance as a DICOM
    JSON array of one object, with its SOP Class and Instance UIDs; ``tags`` keeps only
    those attributes (``included_tags``)."""
    ds = Dataset()
    ds.SOPClassUID = MPPS_SOP_CLASS
    ds.SOPInstanceUID = record.uid
    for elem in record.ds:
        if elem.tag not in (0x00080016, 0x00080018):
            ds.add(elem)
    if tags is not None:
        for elem in list(ds):
            if int(elem.tag) not in tags:
                del ds[elem.tag]
    return [dicom_json.dataset_json(ds)]
