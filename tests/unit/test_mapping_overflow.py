"""Values too long for their VR: cut on a character boundary (display values) or refused
(identifiers), per rule with ``on_overflow`` (broker.mapping.overflow, conform, engine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hl7
import pytest
from pydicom import charset
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.valuerep import PersonName

from broker.errors import MappingError
from broker.hl7.codes import ErrorCode
from broker.mapping.conform import conform
from broker.mapping.overflow import OnOverflow, cut, cut_person_name, default_policy
from broker.mapping.parser import load_mapping
from broker.mapping.patient import map_patient_message
from broker.mapping.patient_spec import PatientSpec, load_any_mapping
from broker.mapping.registry import MappingRegistry
from broker.mapping.spec import MappingSpec, ValueRule
from broker.services.preview import preview, render
from broker.worklist.model import Truncation
from tests.unit.mapping_files import GOOD_ATTRIBUTES, config_error, write
from tests.unit.mapping_helpers import DECODER, ORM_PV1, mapping_error, orm, run, sps

ADT_MSH = "MSH|^~\\&|HIS|HOSP|MWL|RAD|20261125083000||ADT^A08^ADT_A01|ADT-1|P|2.5.1"

# -- cutting ---------------------------------------------------------------------


def test_ascii_is_cut_at_the_limit() -> None:
    assert cut("A" * 20, 16) == "A" * 16
    assert cut("A" * 16, 16) == "A" * 16
    assert cut("ABCDEFGHIJKLMNO PQR", 16) == "ABCDEFGHIJKLMNO"  # no trailing space left


def test_multi_byte_utf8_characters_are_counted_and_kept_whole() -> None:
    """PS3.5 §6.2 counts characters: 63 ASCII + 2 'é' (67 UTF-8 bytes) keeps one whole 'é'."""
    text = "x" * 63 + "éé"
    result = cut(text, 64)
    assert result == "x" * 63 + "é"
    assert len(result.encode("utf-8")) == 65  # more bytes than characters, none split
    assert cut("患" * 17, 16) == "患" * 16
    assert cut("😀" * 17, 16).encode("utf-8").decode("utf-8") == "😀" * 16


def test_a_combining_mark_is_not_parted_from_its_base() -> None:
    text = "a" * 15 + "e\u0301" + "b"  # e + combining acute: one letter, two code points
    assert cut(text, 16) == "a" * 15
    assert cut(text, 17) == "a" * 15 + "e\u0301"


def test_person_name_groups_are_cut_each_to_the_limit() -> None:
    alphabetic = "ReferringPhysicianFN^ReferringPhysicianGN^ReferringPhysicianMN^DR^Md"
    assert len(alphabetic) == 68
    value = f"{alphabetic}=山田^太郎=やまだ^たろう"
    assert cut_person_name(value, 64) == (
        "ReferringPhysicianFN^ReferringPhysicianGN^ReferringPhysicianMN^D=山田^太郎=やまだ^たろう"
    )
    # no component separator left dangling at the cut; the empty first group keeps its place
    assert cut_person_name("A" * 63 + "^BBBBB", 64) == "A" * 63
    assert cut_person_name("=" + "漢" * 70, 64) == "=" + "漢" * 64


def test_a_cut_name_encodes_whole_in_iso_2022_ir_87() -> None:
    """The cut is made on Unicode text; the ISO 2022 escapes come with encoding, around it."""
    encodings = charset.convert_encodings(["", "ISO 2022 IR 87"])
    value = cut_person_name("Yamada^Taro=" + "山" * 40 + "^" + "太" * 30 + "=やまだ^たろう", 64)
    ideographic = value.split("=")[1]
    assert len(ideographic) == 64 and ideographic == "山" * 40 + "^" + "太" * 23
    encoded = PersonName(value).encode(encodings)
    assert encoded.count(b"\x1b$B") == encoded.count(b"\x1b(B") == 4  # every escape closed
    assert charset.decode_bytes(encoded, encodings, {ord("^"), ord("=")}) == value
    text = cut("検査" * 40, 64)
    assert charset.decode_bytes(charset.encode_string(text, encodings), encodings, set()) == text


# -- which values may be cut -------------------------------------------------------


@pytest.mark.parametrize(
    ("keyword", "policy"),
    [
        ("PatientName", OnOverflow.TRUNCATE),
        ("ReferringPhysicianName", OnOverflow.TRUNCATE),
        ("RequestedProcedureDescription", OnOverflow.TRUNCATE),
        ("CodeMeaning", OnOverflow.TRUNCATE),
        ("CodingSchemeDesignator", OnOverflow.TRUNCATE),
        ("CurrentPatientLocation", OnOverflow.TRUNCATE),
        ("ScheduledProcedureStepLocation", OnOverflow.TRUNCATE),
        ("RequestedProcedureComments", OnOverflow.TRUNCATE),
        ("PatientID", OnOverflow.REFUSE),
        ("IssuerOfPatientID", OnOverflow.REFUSE),
        ("AccessionNumber", OnOverflow.REFUSE),
        ("RequestedProcedureID", OnOverflow.REFUSE),
        ("ScheduledProcedureStepID", OnOverflow.REFUSE),
        ("PlacerOrderNumberImagingServiceRequest", OnOverflow.REFUSE),
        ("FillerOrderNumberImagingServiceRequest", OnOverflow.REFUSE),
        ("AdmissionID", OnOverflow.REFUSE),
        ("CodeValue", OnOverflow.REFUSE),
        ("StudyInstanceUID", OnOverflow.REFUSE),
        ("ScheduledStationAETitle", OnOverflow.REFUSE),
        ("Modality", OnOverflow.REFUSE),
        ("PatientBirthDate", OnOverflow.REFUSE),
    ],
)
def test_default_policy(keyword: str, policy: OnOverflow) -> None:
    tag = tag_for_keyword(keyword)
    assert tag is not None
    assert default_policy(keyword, dictionary_VR(tag)) is policy


def rule(keyword: str, vr: str, policy: OnOverflow) -> ValueRule:
    return ValueRule(f"attributes.{keyword}", keyword, 0, vr, False, on_overflow=policy)


def test_conform_cuts_and_notes_only_when_the_rule_says_truncate() -> None:
    cuts: list[Truncation] = []
    name = rule("ReferringPhysicianName", "PN", OnOverflow.TRUNCATE)
    assert conform("A" * 40 + "^" + "B" * 30, name, "PV1-8", cuts) == "A" * 40 + "^" + "B" * 23
    assert cuts == [Truncation("PV1-8", "ReferringPhysicianName", "PN", 71, 64)]
    assert cuts[0].text == (
        "PV1-8 (ReferringPhysicianName) had 71 characters; "
        "VR PN allows at most 64 per name group: cut to 64"
    )
    scheme = rule("CodingSchemeDesignator", "SH", OnOverflow.TRUNCATE)
    assert conform("TLR_OBR_PROCEDURE", scheme, "OBR-4.3", cuts) == "TLR_OBR_PROCEDUR"
    assert cuts[1] == Truncation("OBR-4.3", "CodingSchemeDesignator", "SH", 17, 16)
    assert conform("fits", scheme, "OBR-4.3", cuts) == "fits" and len(cuts) == 2


@pytest.mark.parametrize("collect", [True, False])
def test_conform_refuses_with_104_otherwise(collect: bool) -> None:
    """A refusing rule, or a caller that collects no cuts (the parser's constants)."""
    policy = OnOverflow.REFUSE if collect else OnOverflow.TRUNCATE
    cuts: list[Truncation] | None = [] if collect else None
    with pytest.raises(MappingError) as info:
        conform("A" * 65, rule("PatientName", "PN", policy), "PID-5", cuts)
    assert (info.value.err_code, info.value.location) == (ErrorCode.VALUE_TOO_LONG, "PID-5")
    assert info.value.text == (
        "PID-5 (PatientName) has 65 characters; VR PN allows at most 64 characters per name group"
    )
    assert not cuts


# -- through the engine with the default mapping -----------------------------------


def test_order_with_long_display_values_is_mapped_with_cuts(spec: MappingSpec) -> None:
    long_name = "4711^" + "A" * 40 + "^" + "B" * 30
    pv1 = ORM_PV1.replace("1234^Schmidt^Anna^^^Dr.", long_name)
    segments = orm()
    obr = segments[4].replace("^CT head^LOCAL^", "^" + "x" * 63 + "éé^LOCAL_SCHEME_1234^")
    segments[2], segments[4] = pv1, obr
    result = run(spec, *segments)
    (entry,) = result.changes[0].entries
    assert str(entry.ReferringPhysicianName) == "A" * 40 + "^" + "B" * 23
    assert entry.RequestedProcedureDescription == "x" * 63 + "é"
    (code,) = entry.RequestedProcedureCodeSequence
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("CTHEAD", "LOCAL_SCHEME_123")
    assert code.CodeMeaning == "x" * 63 + "é"
    assert entry.AccessionNumber == "ACC-1001" and sps(entry).Modality == "CT"
    assert result.truncations == (
        Truncation("PV1-8", "ReferringPhysicianName", "PN", 71, 64),
        Truncation("OBR-4.2", "RequestedProcedureDescription", "LO", 65, 64),
        Truncation("OBR-4.3", "CodingSchemeDesignator", "SH", 17, 16),
        Truncation("OBR-4.2", "CodeMeaning", "LO", 65, 64),
    )


@pytest.mark.parametrize(
    ("field", "location"),
    [("PID|||" + "P" * 65 + "^^^HOSP||Doe^Jane", "PID-3"), ("PID|||P1^^^" + "H" * 65, "PID-3.4")],
)
def test_identifiers_are_still_refused(spec: MappingSpec, field: str, location: str) -> None:
    error = mapping_error(spec, *orm(pid=field))
    assert (error.err_code, error.location) == (ErrorCode.VALUE_TOO_LONG, location)
    assert error.text.endswith("VR LO allows at most 64 characters")


def test_a_field_read_for_every_entry_is_reported_once(spec: MappingSpec) -> None:
    """Two OBR of one order with the same over-long referring physician: one truncation."""
    pv1 = ORM_PV1.replace("1234^Schmidt^Anna^^^Dr.", "1^" + "N" * 70)
    segments = orm()
    segments[2] = pv1
    second = segments[4].replace("OBR|1|", "OBR|2|").replace("SPS-1001", "SPS-1002")
    result = run(spec, *segments[:5], second, *segments[5:])
    assert len(result.changes[0].entries) == 2
    assert result.truncations == (Truncation("PV1-8", "ReferringPhysicianName", "PN", 70, 64),)


@pytest.fixture(scope="module")
def spec() -> MappingSpec:
    return load_mapping(Path(__file__).resolve().parents[2] / "mappings" / "orders.yaml")


# -- the on_overflow option of a rule ----------------------------------------------


def rules_of(path: Path) -> dict[str, ValueRule]:
    return {r.keyword: r for r in load_mapping(path).rules if isinstance(r, ValueRule)}


def test_on_overflow_is_read_and_defaults_by_keyword(tmp_path: Path) -> None:
    extra = """\
PatientName: {path: PID-5, on_overflow: refuse}
IssuerOfPatientID: {path: PID-3.4, on_overflow: truncate}
RequestedProcedureDescription: OBR-4.2
AdmissionID: PV1-19
CurrentPatientLocation:
  - {when: {PV1-2: E}, value: EMERGENCY}
  - {path: PV1-3, on_overflow: refuse}
"""
    rules = rules_of(write(tmp_path, GOOD_ATTRIBUTES + extra))
    assert rules["PatientName"].on_overflow is OnOverflow.REFUSE
    assert rules["IssuerOfPatientID"].on_overflow is OnOverflow.TRUNCATE
    assert rules["RequestedProcedureDescription"].on_overflow is OnOverflow.TRUNCATE
    assert rules["AdmissionID"].on_overflow is OnOverflow.REFUSE
    assert rules["PatientID"].on_overflow is OnOverflow.REFUSE
    assert rules["CurrentPatientLocation"].on_overflow is OnOverflow.REFUSE  # the attribute's


@pytest.mark.parametrize(
    ("extra", "rule", "message"),
    [
        (
            "PatientName: {path: PID-5, on_overflow: cut}",
            "attributes.PatientName",
            "on_overflow 'cut' is not one of refuse, truncate",
        ),
        (
            "AccessionNumber: {path: OBR-18, on_overflow: truncate}",
            "attributes.AccessionNumber",
            "on_overflow: truncate cannot apply to AccessionNumber: AccessionNumber is a key "
            "the worklist matches and links on: a cut value could name another patient or "
            "order, so it is always refused (AE 104)",
        ),
        (
            "StudyInstanceUID: {path: ZDS-1.1, on_overflow: truncate}",
            "attributes.StudyInstanceUID",
            "on_overflow: truncate cannot apply to StudyInstanceUID: StudyInstanceUID is a key",
        ),
        (
            "PatientSex: {path: PID-8, on_overflow: truncate}",
            "attributes.PatientSex",
            "on_overflow: truncate cannot apply to PatientSex: a cut value of VR CS",
        ),
        (
            "PatientName: {path: PID-5, fallback: {path: PID-9, on_overflow: refuse}}",
            "attributes.PatientName.fallback",
            "on_overflow goes on the rule itself (not in a fallback)",
        ),
        (
            "PatientName:\n  - {path: PID-5, on_overflow: refuse}\n"
            "  - {path: PID-9, on_overflow: truncate}",
            "attributes.PatientName",
            "on_overflow applies to the attribute: give its alternatives one value",
        ),
    ],
)
def test_bad_on_overflow_names_file_line_and_rule(
    tmp_path: Path, extra: str, rule: str, message: str
) -> None:
    error = config_error(write(tmp_path, GOOD_ATTRIBUTES + extra + "\n"))
    assert error.setting == f"test.yaml:11: {rule}"  # the line the rule starts on
    assert error.message.startswith(message)


def test_bad_on_overflow_on_its_own_line_names_that_line(tmp_path: Path) -> None:
    extra = "RequestedProcedureDescription:\n  path: OBR-4.2\n  on_overflow: [truncate]\n"
    error = config_error(write(tmp_path, GOOD_ATTRIBUTES + extra))
    assert error.setting == "test.yaml:13: attributes.RequestedProcedureDescription"
    assert error.message == "on_overflow ['truncate'] is not one of refuse, truncate"


# -- ADT and preview ---------------------------------------------------------------


def test_adt_with_a_long_name_is_mapped_with_a_cut() -> None:
    adt = load_any_mapping(Path(__file__).resolve().parents[2] / "mappings" / "adt.yaml")
    assert isinstance(adt, PatientSpec)
    pid = "PID|1||PAT-7^^^HOSP^MR||" + "Ö" * 50 + "^" + "Å" * 20 + "||19800102|F"
    message: Any = hl7.parse("\r".join([ADT_MSH, pid]))
    result = map_patient_message(message, adt, message_type="ADT^A08")
    (change,) = result.changes
    assert str(change.attributes.PatientName) == "Ö" * 50 + "^" + "Å" * 13
    assert result.truncations == (Truncation("PID-5", "PatientName", "PN", 71, 64),)


def test_preview_traces_the_cut_and_the_warning_the_sender_gets() -> None:
    registry = MappingRegistry.load(Path(__file__).resolve().parents[2] / "mappings")
    segments = orm()
    segments[2] = ORM_PV1.replace("1234^Schmidt^Anna^^^Dr.", "1^" + "N" * 70)
    shown = preview("\r".join(segments).encode(), registry, DECODER)
    assert shown.error is None and shown.outcome == "AA with 1 warning(s)"
    assert shown.warnings == (Truncation("PV1-8", "ReferringPhysicianName", "PN", 70, 64),)
    trace = shown.changes[0].entries[0].trace
    (row,) = [r for r in trace if r.attribute == "ReferringPhysicianName"]
    assert row.value == ("N" * 64,) and row.cuts == shown.warnings
    text = render(shown)
    assert "cut from 70 to 64 characters (VR PN per name group): warning 104" in text
    assert (
        "ACK      ERR-2 PV1^1^8, ERR-3 104^Value too long^HL70357, ERR-4 W, ERR-8 PV1-8 "
        "(ReferringPhysicianName) had 70 characters; VR PN allows at most 64 per name group: "
        "cut to 64"
    ) in text
