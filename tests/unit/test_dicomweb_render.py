"""Search answers as DICOM JSON (PS3.18 F.2), Native DICOM Model XML (PS3.19 A.1) and
multipart/related, and the Accept header's negotiation (PS3.18 §8.7)."""

from __future__ import annotations

import email.parser
import email.policy
import xml.etree.ElementTree as ET

import pytest
from pydicom.dataset import Dataset

from broker.common.jsontext import loads
from broker.dicom.dicomweb import (
    DICOM_JSON,
    MULTIPART_XML,
    NotAcceptable,
    more_results_warning,
    negotiate,
    render,
    to_multipart,
)
from broker.dicom.native_xml import NAMESPACE, to_xml

NS = f"{{{NAMESPACE}}}"


def _answer() -> Dataset:
    ds = Dataset()
    ds.PatientName = "Müller^Hans^^Dr=山田^太郎"
    ds.PatientID = 'A&<B>"'
    ds.AccessionNumber = "ACC1"
    ds.PatientWeight = "72.5"
    ds.OtherPatientIDs = ["X1", "X2"]
    step = Dataset()
    step.Modality = "CT"
    step.ScheduledProcedureStepStartDate = "20260105"
    protocol = Dataset()
    protocol.CodeValue = "P1"
    step.ScheduledProtocolCodeSequence = [protocol]
    ds.ScheduledProcedureStepSequence = [step]
    ds.private_block(0x0009, "ACME", create=True).add_new(0x10, "LO", "private value")
    return ds


def test_json_round_trips_through_pydicom() -> None:
    answers = [_answer(), _answer()]
    rendered = render(answers, DICOM_JSON)
    assert rendered.content_type == DICOM_JSON
    back = [Dataset.from_json(item) for item in loads(rendered.body)]
    assert back == answers
    assert str(back[0].PatientName) == "Müller^Hans^^Dr=山田^太郎"


def test_xml_is_a_native_dicom_model_document() -> None:
    root = ET.fromstring(to_xml(_answer()))
    assert root.tag == NS + "NativeDicomModel"
    attributes = root.findall(NS + "DicomAttribute")
    tags = [str(a.get("tag")) for a in attributes]
    assert tags == sorted(tags)
    by_keyword = {a.get("keyword"): a for a in attributes}
    pid = by_keyword["PatientID"]
    assert (pid.get("tag"), pid.get("vr")) == ("00100020", "LO")
    assert [(v.get("number"), v.text) for v in pid] == [("1", 'A&<B>"')]
    others = by_keyword["OtherPatientIDs"]
    assert [(v.get("number"), v.text) for v in others] == [("1", "X1"), ("2", "X2")]
    private = next(a for a in attributes if a.get("tag") == "00091010")
    assert private.get("privateCreator") == "ACME" and private.get("keyword") is None


def test_xml_person_names_are_split_into_groups_and_components() -> None:
    root = ET.fromstring(to_xml(_answer()))
    pn = root.find(f"{NS}DicomAttribute[@keyword='PatientName']/{NS}PersonName")
    assert pn is not None and pn.get("number") == "1"
    alphabetic = pn.find(NS + "Alphabetic")
    assert alphabetic is not None
    parts = {child.tag.removeprefix(NS): child.text for child in alphabetic}
    assert parts == {"FamilyName": "Müller", "GivenName": "Hans", "NamePrefix": "Dr"}
    ideographic = pn.find(NS + "Ideographic")
    assert ideographic is not None
    assert [c.text for c in ideographic] == ["山田", "太郎"]
    assert pn.find(NS + "Phonetic") is None


def test_xml_sequences_nest_numbered_items() -> None:
    root = ET.fromstring(to_xml(_answer()))
    sps = root.find(f"{NS}DicomAttribute[@keyword='ScheduledProcedureStepSequence']")
    assert sps is not None and sps.get("vr") == "SQ"
    items = sps.findall(NS + "Item")
    assert [i.get("number") for i in items] == ["1"]
    code = items[0].find(
        f"{NS}DicomAttribute[@keyword='ScheduledProtocolCodeSequence']/{NS}Item/"
        f"{NS}DicomAttribute[@keyword='CodeValue']/{NS}Value"
    )
    assert code is not None and code.text == "P1"


def test_xml_refuses_what_xml_cannot_carry() -> None:
    ds = Dataset()
    ds.PatientComments = "bell \x07"
    with pytest.raises(ValueError, match=r"XML 1\.0"):
        to_xml(ds)


def test_multipart_has_one_xml_part_per_answer() -> None:
    rendered = to_multipart([_answer(), _answer()], boundary="b0undary")
    assert rendered.content_type == f'{MULTIPART_XML}; boundary="b0undary"'
    raw = f"Content-Type: {rendered.content_type}\r\n\r\n".encode() + rendered.body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["application/dicom+xml"] * 2
    for part in parts:
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        assert ET.fromstring(payload).tag == NS + "NativeDicomModel"


def test_multipart_of_no_answers_is_the_closing_delimiter() -> None:
    assert to_multipart([], boundary="b").body == b"--b--\r\n"


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, DICOM_JSON),
        ("", DICOM_JSON),
        ("*/*", DICOM_JSON),
        ("application/*", DICOM_JSON),
        ("application/json", DICOM_JSON),
        ("application/dicom+json", DICOM_JSON),
        ("application/dicom+xml", MULTIPART_XML),
        ('multipart/related; type="application/dicom+xml"', MULTIPART_XML),
        ("multipart/related; type=application/dicom+xml; q=0.9", MULTIPART_XML),
        ("multipart/related", MULTIPART_XML),
        ("application/dicom+json; q=0.5, application/dicom+xml", MULTIPART_XML),
        ("application/dicom+xml; q=0.5, application/dicom+json", DICOM_JSON),
        ("text/html, */*; q=0.1", DICOM_JSON),
        ("Application/DICOM+JSON", DICOM_JSON),
        ("bogus, application/dicom+json", DICOM_JSON),
    ],
)
def test_negotiation(accept: str | None, chosen: str) -> None:
    assert negotiate(accept) == chosen


@pytest.mark.parametrize(
    "accept",
    [
        "text/html",
        "application/dicom",
        'multipart/related; type="application/dicom"',
        "application/dicom+json; q=0",
        "application/dicom+json; q=2",
        "application/dicom+json; q=x",
        "image/*",
        "a" * 5000,
    ],
)
def test_nothing_acceptable_says_why(accept: str) -> None:
    with pytest.raises(NotAcceptable) as raised:
        negotiate(accept)
    assert raised.value.reason


def test_the_more_results_warning_is_an_rfc_7234_warning() -> None:
    assert more_results_warning("https://mwl.example/dicom-web") == (
        '299 https://mwl.example/dicom-web "There are additional results that can be requested"'
    )
    text = '"There are additional results that can be requested"'
    assert more_results_warning('bad " \r\nagent') == f"299 badagent {text}"
    assert more_results_warning(" ") == f"299 - {text}"


def test_lone_surrogates_are_refused_in_xml() -> None:
    ds = Dataset()
    ds.PatientComments = "half \ud800"
    with pytest.raises(ValueError, match="cannot carry"):
        to_xml(ds)
