"""Answers with their text values encoded in advance (``encoded_response``) are, byte for
byte once pynetdicom encodes them, ``build_response``'s answers: over generated entries,
return keys, character sets, fitting policies and transfer syntaxes (each answer built
for the transfer syntax it is sent in, as the C-FIND service does)."""

from __future__ import annotations

import copy
import warnings

from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.charset import python_encoding
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pynetdicom.dsutils import encode

from broker.dicom.encoded import encoded_response
from broker.dicom.response import build_response, projection
from broker.worklist import dicom_json
from tests.unit.matching_helpers import make, sps

LETTERS = st.sampled_from(list("ABCxyz019 .-ÄÖÜäöüßéçøŁłЖжΩω山田太郎カナ한글ـعبש"))
TEXT = st.text(LETTERS, max_size=9)
PN = st.lists(TEXT.map(lambda t: t.replace(" ", "^")), min_size=1, max_size=3).map("=".join)
PLAIN = ["ISO_IR 100", "ISO_IR 144", "ISO_IR 192", "GB18030"]  # the sets encoded in advance
SYNTAXES = [(True, True), (False, True), (False, False)]

# keyword: (values drawn, how many values at most)
TOP = {
    "PatientName": (PN, 2), "ReferringPhysicianName": (PN, 1), "PatientID": (TEXT, 1),
    "AccessionNumber": (TEXT, 1), "PatientBirthDate": (st.just("19700101"), 1),
    "PatientSex": (st.sampled_from(["M", "F", "O"]), 1), "OtherPatientIDs": (TEXT, 3),
    "StudyInstanceUID": (st.sampled_from(["1.2.3", "1.2.34", "1.2.840.5"]), 1),
    "RequestedProcedureDescription": (TEXT, 1), "PatientComments": (TEXT, 1),
    "PatientWeight": (st.sampled_from(["70", "81.5"]), 1), "PatientAge": (st.just("042Y"), 1),
}  # fmt: skip
STEP = {
    "Modality": (st.sampled_from(["CT", "MR"]), 1), "ScheduledStationAETitle": (TEXT, 2),
    "ScheduledProcedureStepStartDate": (st.just("20261201"), 1),
    "ScheduledProcedureStepStartTime": (st.sampled_from(["0930", "101500"]), 1),
    "ScheduledPerformingPhysicianName": (PN, 1), "ScheduledProcedureStepDescription": (TEXT, 1),
    "ScheduledProcedureStepLocation": (TEXT, 1),
}  # fmt: skip
CODE = {"CodeValue": (TEXT, 1), "CodingSchemeDesignator": (TEXT, 1), "CodeMeaning": (TEXT, 1)}


@st.composite
def values(
    draw: st.DrawFn, keys: dict[str, tuple[st.SearchStrategy[str], int]]
) -> dict[str, object]:
    out: dict[str, object] = {}
    for keyword in draw(st.lists(st.sampled_from(sorted(keys)), unique=True)):
        strategy, most = keys[keyword]
        drawn = draw(st.lists(strategy, min_size=0, max_size=most))
        out[keyword] = drawn[0] if len(drawn) == 1 else drawn
    return out


@st.composite
def entries(draw: st.DrawFn) -> Dataset:
    """An entry as the C-FIND service reads it: through its stored DICOM JSON."""
    spec = draw(values(TOP))
    if draw(st.booleans()):
        step = draw(values(STEP))
        if draw(st.booleans()):
            step["ScheduledProtocolCodeSequence"] = draw(st.lists(values(CODE), max_size=2))
        spec.update(sps(**step))
    return dicom_json.dataset_from_json(dicom_json.dataset_json(make(spec)))


@st.composite
def queries(draw: st.DrawFn) -> Dataset:
    spec: dict[str, object] = dict.fromkeys(draw(st.lists(st.sampled_from(sorted(TOP)))), "")
    shape = draw(st.sampled_from(["none", "zero", "empty", "keys"]))
    if shape == "zero":
        spec["ScheduledProcedureStepSequence"] = []
    elif shape == "empty":
        spec.update(sps())
    elif shape == "keys":
        step: dict[str, object] = dict.fromkeys(
            draw(st.lists(st.sampled_from(sorted(STEP)), min_size=1)), ""
        )
        if draw(st.booleans()):
            step["ScheduledProtocolCodeSequence"] = [{}]
        spec.update(sps(**step))
    return make(spec)


def sent(ds: Dataset, syntax: tuple[bool, bool]) -> tuple[bytes | None, list[str]]:
    """The answer as pynetdicom encodes it, with what pydicom warned of meanwhile."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        raw = encode(ds, *syntax)
    return raw, sorted(str(w.message) for w in seen)


@settings(max_examples=400, deadline=None)
@given(
    entries(),
    queries(),
    st.sampled_from(sorted(t for t in python_encoding if t)) | st.sampled_from(PLAIN),
    st.sampled_from(["utf8", "utf8", "replace", "transliterate"]),
    st.sampled_from(SYNTAXES),
)
def test_encoded_answers_are_build_responses_byte_for_byte(
    entry: Dataset,
    query: Dataset,
    charset: str,
    policy: str,
    syntax: tuple[bool, bool],
) -> None:
    before = copy.deepcopy(entry)
    built = build_response(
        query, copy.deepcopy(entry), character_set=charset, unrepresentable=policy
    )
    expected = sent(built, syntax)
    answer = encoded_response(
        query, entry, character_set=charset, unrepresentable=policy, plan=projection(query),
        encoding=syntax,
    )  # fmt: skip
    assert sent(answer, syntax) == expected
    # Encoding it again sends the same (a person name keeps what it was first encoded to,
    # so pydicom does not warn twice of what it replaced).
    assert sent(answer, syntax)[0] == expected[0]
    assert entry == before


def test_text_values_of_a_plain_character_set_are_sent_as_encoded() -> None:
    entry = make({"PatientName": "Müller^Hans", "PatientID": "P1", **sps(Modality="CT")})
    query = make({"PatientName": "", "PatientID": "", **sps(Modality="")})
    answer = encoded_response(query, entry, character_set="ISO_IR 100")
    assert answer.SpecificCharacterSet == "ISO_IR 100"
    name = answer.get_item(0x00100010)
    assert isinstance(name, RawDataElement)
    assert name.value == "Müller^Hans ".encode("latin_1")
    step = answer.get_item(0x00400100).value[0]
    assert isinstance(step.get_item(0x00080060), RawDataElement)


def test_iso_2022_answers_are_build_responses() -> None:
    entry = make({"PatientName": "Yamada^Tarou=山田^太郎", "PatientID": "P1"})
    query = make({"PatientName": "", "PatientID": ""})
    answer = encoded_response(query, entry, character_set="ISO 2022 IR 87")
    assert not any(isinstance(answer.get_item(tag), RawDataElement) for tag in answer.keys())  # noqa: SIM118
    assert encode(answer, True, True) == encode(
        build_response(query, entry, character_set="ISO 2022 IR 87"), True, True
    )
