"""Named transforms, table-driven: HL7 value parts in, DICOM text out."""

from __future__ import annotations

import re

import pytest

from broker.mapping.transforms import (
    TRANSFORMS,
    TransformError,
    date,
    id_from_seed,
    person_name_groups,
    pn,
    priority,
    sex,
    time,
    trim,
    uid,
    uid_from_seed,
    upper,
    xcn_pn,
)

CASES = [
    # date: HL7 DT/DTM/TS -> DA
    (date, ("20261125",), "20261125"),
    (date, ("202611250930",), "20261125"),
    (date, ("20261125093015.1234+0100",), "20261125"),
    (date, ("202402210152-0500",), "20240221"),
    (date, ("19980704", "D"), "19980704"),  # v2.3 TS degree of precision ignored
    (date, ("",), ""),
    (date, (), ""),
    # time: HL7 TS -> TM, precision kept, zone stripped
    (time, ("200008161510",), "1510"),
    (time, ("20000816151030",), "151030"),
    (time, ("20000816151030.12",), "151030.12"),
    (time, ("2000081615",), "15"),
    (time, ("200008161510+0200",), "1510"),
    (time, ("20000816",), ""),
    (time, ("",), ""),
    # pn: XPN -> PN
    (pn, ("Doe", "John", "Q", "Jr", "Dr", "MD"), "Doe^John^Q^Dr^Jr MD"),
    (pn, ("Doe", "John"), "Doe^John"),
    (pn, ("Doe", "", "", "", "", ""), "Doe"),
    (pn, ("Smith", "Lucy", "Mark"), "Smith^Lucy^Mark"),
    (pn, ("VANILL\u00c9", "LAURA", "", "", "Mme"), "VANILL\u00c9^LAURA^^Mme"),
    (pn, (" Doe ", " John "), "Doe^John"),
    (pn, ("",), ""),
    # xcn_pn: XCN -> PN
    (xcn_pn, ("5101", "NELL", "FREDERICK", "P", "", "DR"), "NELL^FREDERICK^P^DR"),
    (xcn_pn, ("", "Berg", "Ola", "", "", "Dr."), "Berg^Ola^^Dr."),
    (xcn_pn, ("4711", "Weber", "Lena"), "Weber^Lena"),
    (xcn_pn, ("4711",), ""),
    # simple ones
    (upper, ("ct",), "CT"),
    (trim, ("  a   b\tc ",), "a b c"),
    # sex: table 0001 -> PS3.3 (0010,0040)
    (sex, ("M",), "M"),
    (sex, ("F", "Female", "HL70001"), "F"),
    (sex, ("f",), "F"),
    (sex, ("O",), "O"),
    (sex, ("A",), "O"),
    (sex, ("U",), ""),
    (sex, ("N",), ""),
    (sex, ("",), ""),
    # priority -> (0040,1003)
    (priority, ("S",), "STAT"),
    (priority, ("A",), "HIGH"),
    (priority, ("P",), "HIGH"),
    (priority, ("C",), "HIGH"),
    (priority, ("R",), "ROUTINE"),
    (priority, ("T",), "MEDIUM"),
    (priority, ("TM30",), "MEDIUM"),
    (priority, ("PRN",), "LOW"),
    (priority, ("s",), "STAT"),
    (priority, ("ROUTINE",), "ROUTINE"),
    (priority, ("",), ""),
]


@pytest.mark.parametrize(("transform", "value", "expected"), CASES)
def test_transform(transform: object, value: tuple[str, ...], expected: str) -> None:
    assert callable(transform)
    assert transform(value) == expected


ERRORS = [
    (date, ("1998",), "year or month precision", False),
    (date, ("199807",), "year or month precision", False),
    (date, ("20001301",), "calendar date", False),
    (date, ("20010229",), "calendar date", False),
    (date, ("Aug 15, 1942",), "not an HL7 date", False),
    (date, ("2000081",), "not an HL7 date", False),
    (date, ("20000816.12",), "not an HL7 date", False),  # fraction without seconds
    (time, ("200008162510",), "valid time", False),
    (time, ("200008161575",), "valid time", False),
    (time, ("12:30",), "not an HL7 date", False),
    (pn, ("Doe^Jr", "John"), "cannot hold", False),
    (pn, ("A=B",), "cannot hold", False),
    (sex, ("X",), "table 0001", True),
    (priority, ("URGENTISSIMO",), "priority code", True),
]


@pytest.mark.parametrize(("transform", "value", "message", "table"), ERRORS)
def test_transform_errors(
    transform: object, value: tuple[str, ...], message: str, table: bool
) -> None:
    assert callable(transform)
    with pytest.raises(TransformError, match=message) as info:
        transform(value)
    assert info.value.table is table


def test_uid_is_deterministic_and_valid() -> None:
    first = uid_from_seed("PLACER:A101Z^RIS|RP1")
    assert first == uid_from_seed("PLACER:A101Z^RIS|RP1")
    assert first != uid_from_seed("PLACER:A101Z^RIS|RP2")
    assert re.fullmatch(r"2\.25\.(0|[1-9]\d*)", first)
    assert len(first) <= 64
    assert uid(("seed",)) == uid_from_seed("seed")
    assert uid(("",)) == ""


def test_registry_names() -> None:
    assert set(TRANSFORMS) == {
        "date", "time", "datetime", "pn", "xcn_pn", "upper", "trim", "sex", "priority", "uid",
    }  # fmt: skip


def test_generated_id_is_deterministic_short_and_sh_safe() -> None:
    first = id_from_seed("PLACER:PLC-1^RIS|ScheduledProcedureStepID|")
    assert first == id_from_seed("PLACER:PLC-1^RIS|ScheduledProcedureStepID|")
    assert re.fullmatch(r"G[A-Z2-7]{15}", first)  # 16 characters: fits SH, valid even in CS
    others = {id_from_seed(f"PLACER:PLC-{n}^RIS|ScheduledProcedureStepID|") for n in range(2000)}
    assert len(others) == 2000 and first in others
    assert id_from_seed("PLACER:PLC-1^RIS|RequestedProcedureID|") != first


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20261126093000+0100", "20261126093000+0100"),  # the offset is kept (DT has one)
        ("20261126093000.1234-0500", "20261126093000.1234-0500"),
        ("2026112609", "2026112609"),  # the precision sent
        ("2026", "2026"),
        ("", ""),
    ],
)
def test_datetime_keeps_precision_and_time_zone(text: str, expected: str) -> None:
    assert TRANSFORMS["datetime"]((text,)) == expected


@pytest.mark.parametrize(
    "text", ["20260230", "20261126250000", "20261126093000+1600", "2026-11-26", "20261126T09"]
)
def test_datetime_refuses_what_is_not_a_date_time(text: str) -> None:
    with pytest.raises(TransformError):
        TRANSFORMS["datetime"]((text,))


def test_person_name_groups_follow_the_representation_code() -> None:
    kanji = ("患者", "太郎", "", "", "", "", "L", "I")
    kana = ("カンジャ", "タロウ", "", "", "", "", "L", "P")
    assert person_name_groups([kanji, kana]) == "=患者^太郎=カンジャ^タロウ"
    roman = ("Kanja", "Taro", "", "", "", "", "L", "A")
    assert person_name_groups([kana, roman, kanji]) == "Kanja^Taro=患者^太郎=カンジャ^タロウ"
    # no code: alphabetic; the first of a group wins (the preferred name comes first)
    assert person_name_groups([("Doe", "Jane"), ("Doe", "J", "", "", "", "", "D")]) == "Doe^Jane"
    assert person_name_groups([roman, kanji]) == "Kanja^Taro=患者^太郎"
    xcn = ("1234", "山田", "花子", "", "", "", "", "", "", "", "", "", "", "", "I")
    assert person_name_groups([xcn], xcn=True) == "=山田^花子"
