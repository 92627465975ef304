"""The DICOMweb MPPS service's pure part (PS3.18 chapter 15): request payloads, the HTTP
status of each refusal, the Warning header field, includefield and the Retrieve answer."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.dataset import Dataset

from broker.common import jsontext
from broker.dicom import mpps_web
from broker.worklist.mpps import MppsRecord
from broker.worklist.mpps_rules import (
    NO_LONGER_UPDATABLE,
    NO_LONGER_UPDATABLE_ERROR_ID,
    MppsRefusal,
    MppsStatus,
)

UID = "1.2.826.0.1.3680043.10.1234.7"
IN_PROGRESS = {"00400252": {"vr": "CS", "Value": ["IN PROGRESS"]}}


def body(value: Any) -> bytes:
    return jsontext.dumps(value).encode()


def refused(data: bytes, uid: str | None = UID) -> MppsRefusal:
    with pytest.raises(MppsRefusal) as caught:
        mpps_web.payload(data, uid=uid)
    return caught.value


def test_a_payload_is_one_dicom_json_object_or_an_array_of_one() -> None:
    for value in (IN_PROGRESS, [IN_PROGRESS]):
        ds = mpps_web.payload(body(value), uid=UID)
        assert ds.PerformedProcedureStepStatus == "IN PROGRESS"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"{not json", "not JSON"),
        (body([IN_PROGRESS, IN_PROGRESS]), "holds 2 datasets"),
        (body([]), "holds 0 datasets"),
        (body("IN PROGRESS"), "not a DICOM JSON object"),
        (body({"00400252": {"vr": "CS", "BulkDataURI": "http://x/1"}}), "BulkDataURI"),
        (body({"00400252": {"vr": "XX", "Value": ["A"]}}), "not valid DICOM JSON"),
        (body({"00400252": "IN PROGRESS"}), "not valid DICOM JSON"),
        (body({**IN_PROGRESS, "00080018": {"vr": "UI", "Value": ["1.2.3"]}}), "differs"),
        (body({**IN_PROGRESS, "00080016": {"vr": "UI", "Value": ["1.2.3"]}}), "SOP Class"),
    ],
)
def test_a_bad_payload_is_400_with_a_reason(data: bytes, why: str) -> None:
    refusal = refused(data)
    assert refusal.status is MppsStatus.INVALID_ATTRIBUTE_VALUE
    assert why in refusal.comment
    assert mpps_web.problem(refusal, "b").status == 400


@pytest.mark.parametrize("depth", [20, 22, 150, 100_000])
def test_a_payload_nested_too_deep_is_400_not_a_crash(depth: int) -> None:
    """Sequence items nested ``depth`` deep, up to past the JSON parser's limit."""
    text = b'{"00400340": {"vr": "SQ", "Value": [' * depth + b"{}" + b"]}}" * depth
    if depth <= 20:
        assert "PerformedSeriesSequence" in mpps_web.payload(text, uid=UID)
    else:
        assert mpps_web.http_status(refused(text)) == 400


def test_the_payloads_own_uids_are_checked_then_dropped() -> None:
    sop = {
        "00080016": {"vr": "UI", "Value": [mpps_web.MPPS_SOP_CLASS]},
        "00080018": {"vr": "UI", "Value": [UID]},
    }
    ds = mpps_web.payload(body({**IN_PROGRESS, **sop}), uid=UID)
    assert "SOPInstanceUID" not in ds and "SOPClassUID" not in ds


@pytest.mark.parametrize(
    ("status", "error_id", "http"),
    [
        (MppsStatus.INVALID_ATTRIBUTE_VALUE, None, 400),
        (MppsStatus.MISSING_ATTRIBUTE, None, 400),
        (MppsStatus.MISSING_ATTRIBUTE_VALUE, None, 400),
        (MppsStatus.DUPLICATE_SOP_INSTANCE, None, 409),
        (MppsStatus.NO_SUCH_SOP_INSTANCE, None, 404),
        (MppsStatus.NOT_AUTHORIZED, None, 403),
        (MppsStatus.PROCESSING_FAILURE, NO_LONGER_UPDATABLE_ERROR_ID, 409),
        (MppsStatus.PROCESSING_FAILURE, None, 500),
    ],
)
def test_each_refusal_has_its_http_status(
    status: MppsStatus, error_id: int | None, http: int
) -> None:
    assert mpps_web.http_status(MppsRefusal(status, "why", error_id)) == http


def test_the_warning_header_field_carries_the_dicom_status_and_comment() -> None:
    refusal = MppsRefusal(
        MppsStatus.PROCESSING_FAILURE, NO_LONGER_UPDATABLE, NO_LONGER_UPDATABLE_ERROR_ID
    )
    answer = mpps_web.problem(refusal, "mwl-broker")
    assert (answer.status, answer.title, answer.detail) == (409, "Conflict", NO_LONGER_UPDATABLE)
    assert answer.warning == f"299 mwl-broker: 0110 (A710) {NO_LONGER_UPDATABLE}"
    down = mpps_web.store_unavailable("mwl-broker")
    assert (down.status, down.warning) == (503, "299 mwl-broker: 0110 worklist store unavailable")
    odd = mpps_web.problem(MppsRefusal(MppsStatus.NOT_AUTHORIZED, "caf\u00e9"), "b")
    assert odd.warning.isascii()


def test_ignored_attributes_are_named_in_a_warning() -> None:
    assert mpps_web.ignored_warning((), "b") is None
    warning = mpps_web.ignored_warning(("PatientID", "Modality"), "b")
    assert warning == "299 b: attributes an update may not change ignored: PatientID, Modality"


def test_includefield_takes_keywords_tags_or_all() -> None:
    assert mpps_web.included_tags([]) is None
    assert mpps_web.included_tags(["all"]) is None
    asked = mpps_web.included_tags(["PatientID,00400252", " Modality "])
    assert asked == frozenset({0x00100020, 0x00400252, 0x00080060})
    for bad in (["all", "PatientID"], ["NoSuchKeyword"], ["0040025"]):
        with pytest.raises(MppsRefusal) as caught:
            mpps_web.included_tags(bad)
        assert mpps_web.http_status(caught.value) == 400


def test_retrieve_answers_one_dicom_json_object_with_the_instance_uids() -> None:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "COMPLETED"
    ds.PatientID = "P-1"
    record = MppsRecord(UID, "COMPLETED", ds, ("e1",), "CT1", 1.0, 2.0)
    (everything,) = mpps_web.retrieve_json(record)
    assert everything["00080016"]["Value"] == [mpps_web.MPPS_SOP_CLASS]
    assert everything["00080018"]["Value"] == [UID]
    assert everything["00100020"]["Value"] == ["P-1"]
    (some,) = mpps_web.retrieve_json(record, frozenset({0x00400252}))
    assert some == {"00400252": {"vr": "CS", "Value": ["COMPLETED"]}}
