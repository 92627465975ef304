"""Fuzz smoke: whatever bytes or keys arrive, each face ends in an answer or a protocol error.

Three targets, with no sockets: MLLP framing (any bytes, any split), HL7 decode + map
(mutations of the project's own messages, and text built from HL7's delimiters), and a
C-FIND identifier through its checks, the plan, matching and the answer. A crash is any
exception other than the protocol's own (``FrameTooLarge``, ``HL7Error``,
``DicomServiceError``); a hang would trip pytest-timeout. ``make fuzz`` runs the same
properties with many more examples (the ``fuzz`` hypothesis profile).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from broker.dicom.limits import check_identifier
from broker.dicom.plan import excluded, make_plan
from broker.dicom.profiles import DEFAULT_PROFILE
from broker.dicom.response import build_response
from broker.errors import DicomServiceError
from broker.hl7.message import MessageDecoder
from broker.mapping.registry import MappingRegistry
from broker.mllp.framing import FrameTooLarge, MLLPDecoder
from broker.services.preview import preview, render
from tests.messages import own_messages
from tests.unit.test_matching_date_time import element

REPO = Path(__file__).resolve().parents[2]
REGISTRY = MappingRegistry.load(REPO / "mappings")
DECODER = MessageDecoder(sender_charsets={"RIS": "8859/1"})
SEEDS = [raw for _name, raw in own_messages()]
SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]

# -- MLLP framing --------------------------------------------------------------------------

FRAMING_BYTES = st.sampled_from([b"\x0b", b"\x1c", b"\r", b"\x1c\r", b"MSH|^~\\&|", b"\x00"])
CHUNKS = st.lists(st.one_of(st.binary(max_size=200), FRAMING_BYTES), max_size=40)


@given(CHUNKS, st.integers(min_value=1, max_value=512))
def test_framing_any_bytes_in_any_split(chunks: list[bytes], limit: int) -> None:
    decoder = MLLPDecoder(limit)
    for chunk in chunks:
        try:
            frames = decoder.feed(chunk)
        except FrameTooLarge:
            decoder = MLLPDecoder(limit)  # the server answers AR and closes
            continue
        assert all(len(frame) <= limit for frame in frames)
        assert decoder.buffered_bytes <= limit + 2


# -- HL7 decode + map ----------------------------------------------------------------------

DELIMITERS = st.sampled_from([*"|^~\\&\r\n", "\\F\\", "\\X41\\", "\\.br\\", "\x1b$B"])
FIELD_TEXT = st.lists(st.one_of(st.characters(codec="utf-8"), DELIMITERS), max_size=30).map("".join)
SEGMENT_IDS = st.sampled_from(["PID", "PV1", "ORC", "OBR", "IPC", "TQ1", "MRG", "EVN", "ZDS"])


@st.composite
def built_messages(draw: st.DrawFn) -> bytes:
    """An MSH with fuzzed header fields and segments of fuzzed fields."""
    mtype = draw(st.sampled_from(["ORM^O01", "OMI^O23", "OMG^O19", "ADT^A08", "ADT^A40", "X"]))
    header = [draw(FIELD_TEXT) for _ in range(6)]
    msh = (
        f"MSH|^~\\&|{header[0]}|{header[1]}|MWL|HOSP|{header[2]}||{mtype}|{header[3]}|P|"
        f"{draw(st.sampled_from(['2.3', '2.5.1', '']))}||||||{header[4]}"
    )
    segments = [msh]
    for _ in range(draw(st.integers(0, 8))):
        fields = draw(st.lists(FIELD_TEXT, max_size=25))
        segments.append(draw(SEGMENT_IDS) + "|" + "|".join(fields))
    encoding = draw(st.sampled_from(["utf-8", "latin-1"]))
    return "\r".join(segments).encode(encoding, "replace")


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    """One of the project's own messages with bytes replaced, cut or inserted."""
    raw = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.integers(0, len(raw)))
        cut = draw(st.integers(0, 8))
        raw[where : where + cut] = draw(
            st.one_of(st.binary(max_size=12), DELIMITERS.map(str.encode))
        )
    return bytes(raw)


@settings(suppress_health_check=SLOW)
@given(st.one_of(built_messages(), mutated_messages(), st.binary(max_size=400)))
def test_decode_and_map_answer_every_message(raw: bytes) -> None:
    """The preview runs the router's decode and mapping; an HL7Error is its outcome."""
    result = preview(raw, REGISTRY, DECODER)
    text = render(result)
    assert text.startswith("Message")
    if result.error is not None:
        assert result.error.ack_code.value in ("AE", "AR")


# -- C-FIND identifier -> plan -> matching -> answer ----------------------------------------

KEYS = ["PatientName", "PatientID", "AccessionNumber", "PatientBirthDate", "PatientSex",
        "StudyInstanceUID", "RequestedProcedureID", "ReferringPhysicianName"]  # fmt: skip
SPS_KEYS = ["Modality", "ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
            "ScheduledProcedureStepStartTime", "ScheduledProcedureStepStatus",
            "ScheduledProcedureStepID", "ScheduledPerformingPhysicianName"]  # fmt: skip
QUERY_TEXT = st.one_of(
    st.text(st.sampled_from(list("*?\\-^=.0123456789AZaz ÄÜé山")), max_size=80),
    st.sampled_from(["", "*", "?", "20261125-20261127", "-0900", "1000-", "CT", "Doe^J*"]),
)


@st.composite
def identifiers(draw: st.DrawFn) -> Dataset:
    ds = Dataset()
    for keyword in draw(st.lists(st.sampled_from(KEYS), unique=True)):
        ds.add(element(keyword, draw(QUERY_TEXT)))
    if draw(st.booleans()):
        items = []
        for _ in range(draw(st.integers(0, 3))):
            item = Dataset()
            for keyword in draw(st.lists(st.sampled_from(SPS_KEYS), unique=True)):
                item.add(element(keyword, draw(QUERY_TEXT)))
            items.append(item)
        ds.ScheduledProcedureStepSequence = items
    return ds


def stored(accession: str, name: str, date: str, station: str) -> Dataset:
    entry = Dataset()
    entry.PatientName, entry.PatientID, entry.AccessionNumber = name, f"P-{accession}", accession
    entry.PatientBirthDate = "19650412"
    step = Dataset()
    step.Modality, step.ScheduledStationAETitle = "CT", station
    step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime = date, "093000"
    step.ScheduledProcedureStepStatus, step.ScheduledProcedureStepID = "SCHEDULED", "S1"
    entry.ScheduledProcedureStepSequence = [step]
    return entry


ENTRIES = [
    stored("A1", "Müller^Jürgen^^Dr.", "20261126", "CT1"),
    stored("A2", "Yamada^Tarou=山田^太郎", "20261127", "MR1"),
    stored("A3", "Doe^Jane", "20261125", ""),
]


@settings(suppress_health_check=SLOW)
@given(identifiers())
def test_any_identifier_is_answered_or_refused_with_a_status(query: Dataset) -> None:
    try:
        check_identifier(query)
        plan = make_plan(query, DEFAULT_PROFILE, dt.date(2026, 11, 26), frozenset(), 100)
        for entry in ENTRIES:
            if excluded(query, entry, plan, pn_case_insensitive=True) is None:
                answer = build_response(
                    query, entry, character_set="ISO_IR 100", unrepresentable="utf8"
                )
                assert "AccessionNumber" not in query or "AccessionNumber" in answer
    except DicomServiceError as e:
        assert e.status and e.comment
