"""Hostile input to the Search Transaction's pure parts: any parameters are a query or a
``QidoError`` naming one of them; any Accept header is a media type or ``NotAcceptable``;
any text an answer holds is well-formed XML or refused as XML cannot carry it."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from broker.common.jsontext import loads
from broker.dicom.dicomweb import DICOM_JSON, MULTIPART_XML, NotAcceptable, negotiate, render
from broker.dicom.native_xml import to_xml
from broker.dicom.qido import QidoError, parse_query

NAMES = st.one_of(
    st.sampled_from(
        [
            "PatientID",
            "PatientName",
            "00100020",
            "ScheduledProcedureStepSequence.Modality",
            "00400100.00400002",
            "00400100.00400003",
            "StudyInstanceUID",
            "includefield",
            "fuzzymatching",
            "offset",
            "limit",
        ]
    ),
    st.text(max_size=40),
)
VALUES = st.one_of(
    st.sampled_from(["", "*", "CT", "2026-", "1.2,3", "all", "1", "true"]), st.text(max_size=70)
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(NAMES, VALUES), max_size=6))
def test_any_parameters_are_a_query_or_a_refusal_naming_one(
    params: list[tuple[str, str]],
) -> None:
    try:
        query = parse_query(params)
    except QidoError as e:
        assert e.reason
        assert e.parameter in {name for name, _ in params} | {"includefield", "query"}
        return
    assert query.offset >= 0 and (query.limit is None or query.limit >= 1)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_accept_header_is_a_media_type_or_not_acceptable(accept: str) -> None:
    try:
        assert negotiate(accept) in (DICOM_JSON, MULTIPART_XML)
    except NotAcceptable as e:
        assert e.reason


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.text(max_size=30))
def test_any_text_is_well_formed_xml_or_refused(comment: str, name: str) -> None:
    ds = Dataset()
    ds.PatientComments = comment
    ds.PatientName = name.replace("\\", "")
    try:
        document = to_xml(ds)
    except ValueError:
        return
    root = ET.fromstring(document)
    assert root.tag.endswith("NativeDicomModel")
    back = loads(render([ds], DICOM_JSON).body)
    assert len(back) == 1
