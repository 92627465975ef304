"""The rules of an MPPS request, whatever the face: refusals, decoding, the checks of PS3.4 F.7.

PS3.4 F.7: what a create (N-CREATE, PS3.18 15.4) or an update (N-SET, PS3.18 15.5)
must hold, how its attributes are decoded (``decoded``: to Unicode, an unknown character
set refused), which attributes an update may not change (``NOT_SETTABLE``), and why a
request is refused (``MppsRefusal``: a status of PS3.7 Annex C and an Error Comment).
The statuses are the standard's own vocabulary of MPPS failures: the DIMSE face answers
them as they are (``broker.dicom.mpps_rules``), the DICOMweb face maps them to HTTP
statuses (``broker.dicom.mpps_web``). Pure: no I/O.
"""

from __future__ import annotations

from enum import IntEnum

from pydicom.charset import python_encoding
from pydicom.dataset import Dataset
from pydicom.uid import UID, generate_uid

from broker.worklist import dicom_json
from broker.worklist.mpps import PerformedStatus, StepRef

__all__ = [
    "ERROR_COMMENT_MAX",
    "NOT_SETTABLE",
    "NO_LONGER_UPDATABLE",
    "NO_LONGER_UPDATABLE_ERROR_ID",
    "MppsRefusal",
    "MppsStatus",
    "creation",
    "decoded",
    "performed_status",
    "settable",
    "step_refs",
    "text",
]

ERROR_COMMENT_MAX = 64  # PS3.7 Error Comment (0000,0902) is an LO


class MppsStatus(IntEnum):
    """Statuses of the MPPS SCP (PS3.4 F.7.2.1.3 / F.7.2.2.4, PS3.7 Annex C): what DIMSE
    answers, and what ``broker.dicom.mpps_web`` maps to an HTTP status."""

    SUCCESS = 0x0000
    INVALID_ATTRIBUTE_VALUE = 0x0106
    PROCESSING_FAILURE = 0x0110
    DUPLICATE_SOP_INSTANCE = 0x0111
    NO_SUCH_SOP_INSTANCE = 0x0112
    MISSING_ATTRIBUTE = 0x0120
    MISSING_ATTRIBUTE_VALUE = 0x0121
    NOT_AUTHORIZED = 0x0124  # Refused: not authorized (PS3.7 Annex C)


# PS3.4 Table F.7.2-2: the Specific Error Comment and Error ID of an N-SET on an
# instance that is no longer IN PROGRESS.
NO_LONGER_UPDATABLE = "Performed Procedure Step Object may no longer be updated"
NO_LONGER_UPDATABLE_ERROR_ID = 0xA710

# Attributes an N-SET may not carry (PS3.4 Table F.7.2-1, N-SET "Not allowed"): the
# instance's identity, its patient and its link to the worklist. Sent anyway, they are
# ignored (the created values stay), with a warning.
NOT_SETTABLE = frozenset(
    {
        "SOPClassUID", "SOPInstanceUID", "ScheduledStepAttributesSequence",
        "PatientName", "PatientID", "IssuerOfPatientID", "IssuerOfPatientIDQualifiersSequence",
        "OtherPatientIDsSequence", "PatientBirthDate", "PatientSex", "ReferencedPatientSequence",
        "AdmissionID", "IssuerOfAdmissionIDSequence", "PerformedProcedureStepID",
        "PerformedStationAETitle", "PerformedStationName", "PerformedLocation",
        "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime", "Modality",
        "StudyID", "SpecificCharacterSet",
    }
)  # fmt: skip


class MppsRefusal(Exception):
    """A request the SCP refuses, with the status and comment that say why (any face)."""

    def __init__(self, status: MppsStatus, comment: str, error_id: int | None = None) -> None:
        super().__init__(f"0x{status:04X}: {comment}")
        self.status = status
        self.comment = comment
        self.error_id = error_id


def text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _charset_terms(ds: Dataset) -> list[str]:
    """Specific Character Set terms, read without pydicom's conversion (which warns
    and falls back to ASCII on an unknown term)."""
    elem = ds.get_item("SpecificCharacterSet")
    value = None if elem is None else elem.value
    if value is None:
        return []
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    values = [value] if isinstance(value, str) else [str(v) for v in value]
    return [part.strip() for v in values for part in v.split("\\")]


def decoded(ds: Dataset | None, what: str) -> Dataset:
    """``ds`` with every value decoded to text (via DICOM JSON), or 0x0106.

    An unknown Specific Character Set is refused rather than decoded with
    pydicom's fallback; the result holds Unicode only, so it is stored with
    Specific Character Set ISO_IR 192 (PS3.4 F.7.2.2.3 lets the SCP convert).
    """
    if ds is None:
        raise MppsRefusal(MppsStatus.MISSING_ATTRIBUTE, f"the request has no {what}")
    try:
        unknown = [t for t in _charset_terms(ds) if t and t not in python_encoding]
        if unknown:
            raise MppsRefusal(
                MppsStatus.INVALID_ATTRIBUTE_VALUE,
                f"Specific Character Set {unknown[0][:16]!a} not supported",
            )
        result = Dataset.from_json(dicom_json.dataset_json(ds))
    except MppsRefusal:
        raise
    except Exception as e:
        raise MppsRefusal(
            MppsStatus.INVALID_ATTRIBUTE_VALUE, f"cannot decode the {what}: {type(e).__name__}"
        ) from e
    result.SpecificCharacterSet = "ISO_IR 192"
    return result


def performed_status(ds: Dataset, *, required: bool) -> PerformedStatus | None:
    """Performed Procedure Step Status (0040,0252), checked against its defined terms."""
    if "PerformedProcedureStepStatus" not in ds:
        if required:
            raise MppsRefusal(
                MppsStatus.MISSING_ATTRIBUTE, "Performed Procedure Step Status (0040,0252) missing"
            )
        return None
    value = text(ds, "PerformedProcedureStepStatus")
    if not value:
        raise MppsRefusal(
            MppsStatus.MISSING_ATTRIBUTE_VALUE, "Performed Procedure Step Status (0040,0252) empty"
        )
    try:
        return PerformedStatus(value)
    except ValueError:
        raise MppsRefusal(
            MppsStatus.INVALID_ATTRIBUTE_VALUE,
            f"Performed Procedure Step Status (0040,0252) {value[:16]!a} invalid",
        ) from None


def step_refs(ds: Dataset) -> list[StepRef]:
    """The Scheduled Step Attributes Sequence (0040,0270) items (PS3.4 Table F.7.2-1)."""
    return [
        StepRef(
            study_uid=text(item, "StudyInstanceUID"),
            accession=text(item, "AccessionNumber"),
            requested_procedure_id=text(item, "RequestedProcedureID"),
            sps_id=text(item, "ScheduledProcedureStepID"),
        )
        for item in ds.get("ScheduledStepAttributesSequence") or []
    ]


def creation(requested: str | None, ds: Dataset | None) -> tuple[str, Dataset]:
    """The instance UID (the caller's, or one assigned) and the decoded attributes of a
    create, whose status must be IN PROGRESS (PS3.4 F.7.2.1.1); else MppsRefusal.

    PS3.7 10.1.5.1.4: without an Affected SOP Instance UID the SCP assigns one.
    """
    uid = str(requested).strip() if requested else ""
    if requested is not None and not UID(uid).is_valid:
        raise MppsRefusal(
            MppsStatus.INVALID_ATTRIBUTE_VALUE, "Affected SOP Instance UID is not a valid UID"
        )
    decoded_ds = decoded(ds, "Attribute List")
    status = performed_status(decoded_ds, required=True)
    if status is not PerformedStatus.IN_PROGRESS:
        raise MppsRefusal(
            MppsStatus.INVALID_ATTRIBUTE_VALUE,
            "Performed Procedure Step Status (0040,0252) must be IN PROGRESS",
        )
    return uid or str(generate_uid()), decoded_ds


def settable(changes: Dataset | None) -> tuple[Dataset, list[str]]:
    """An update's decoded modifications without the attributes it may not change, and
    the keywords of those ignored (PS3.4 Table F.7.2-1, N-SET "Not allowed"; Specific
    Character Set is not counted: the stored instance is Unicode).

    Its Performed Procedure Step Status, when present, must be a defined term.
    """
    result = decoded(changes, "Modification List")
    performed_status(result, required=False)
    ignored = sorted(e.keyword for e in result if e.keyword in NOT_SETTABLE)
    for keyword in ignored:
        del result[keyword]
    return result, [k for k in ignored if k != "SpecificCharacterSet"]
