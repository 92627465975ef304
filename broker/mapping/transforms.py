"""Named, pure value transforms a mapping rule can apply (``transform: date``).

Each transform takes one repetition as read by an HL7 path (its parts, see
:mod:`broker.hl7.paths`) and returns the DICOM text. Scalar transforms
use the first part (HL7 v2.5.1 §2.11); ``pn`` and ``xcn_pn`` use them all.
A value that cannot be converted raises :class:`TransformError`; the engine
turns it into an ERR with the rule's HL7 location. No transform ever
invents data: a value it cannot express is an error, not an empty string.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

from broker.hl7.paths import Value, scalar

__all__ = [
    "TRANSFORMS",
    "Transform",
    "TransformError",
    "date",
    "datetime",
    "id_from_seed",
    "person_name_groups",
    "pn",
    "priority",
    "sex",
    "time",
    "trim",
    "uid",
    "uid_from_seed",
    "upper",
    "xcn_pn",
]

Transform = Callable[[Value], str]


class TransformError(ValueError):
    """A value cannot be transformed; ``table`` marks a code missing from a code table."""

    def __init__(self, message: str, *, table: bool = False) -> None:
        super().__init__(message)
        self.table = table


# HL7 v2.5.1 §2A.22 DTM / §2A.77 TS: YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]
_TS_RE = re.compile(
    r"(?P<Y>\d{4})(?P<m>\d{2})?(?P<d>\d{2})?(?P<H>\d{2})?(?P<M>\d{2})?(?P<S>\d{2})?"
    r"(?:\.(?P<f>\d{1,4}))?(?P<tz>[+-]\d{4})?"
)
_TS_SHAPE = "YYYY[MM[DD[HH[MM[SS[.SSSS]]]]]][+/-ZZZZ]"


def _timestamp(value: Value) -> re.Match[str] | None:
    """The parsed HL7 TS/DTM in ``value``; None when empty; TransformError when malformed."""
    text = scalar(value).strip()
    if not text:
        return None
    match = _parse_ts(text)
    if match is None:
        raise TransformError(f"is not an HL7 date/time ({_TS_SHAPE})")
    return match


def _parse_ts(text: str) -> re.Match[str] | None:
    match = _TS_RE.fullmatch(text.strip())
    if match is None:
        return None
    # Each part is only allowed when the one before it is present.
    order = ["m", "d", "H", "M", "S", "f"]
    seen_gap = False
    for key in order:
        if match[key] is None:
            seen_gap = True
        elif seen_gap:
            return None
    return match


def date(value: Value) -> str:
    """HL7 DT/DTM/TS → DICOM DA ``YYYYMMDD`` (PS3.5 Table 6.2-1).

    The time and any time zone are dropped (the date is the sender's local
    date). A reduced-precision value (``YYYY`` or ``YYYYMM``, allowed by HL7
    v2.5.1 §2A.22) has no DICOM DA form: it raises rather than becoming empty
    or gaining an invented day.
    """
    match = _timestamp(value)
    if match is None:
        return ""
    if match["d"] is None:
        raise TransformError("has year or month precision only; a DICOM date (DA) needs YYYYMMDD")
    try:
        dt.date(int(match["Y"]), int(match["m"]), int(match["d"]))
    except ValueError:
        raise TransformError("is not a calendar date") from None
    return f"{match['Y']}{match['m']}{match['d']}"


def time(value: Value) -> str:
    """HL7 TS/DTM → DICOM TM ``HH[MM[SS[.FFFF]]]`` (PS3.5 Table 6.2-1).

    Keeps the precision sent (``HH`` and ``HHMM`` are valid TM); a value
    with date precision only has no time and gives an empty TM. The time
    zone offset is stripped without conversion: the time stays the sender's
    local time.
    """
    match = _timestamp(value)
    if match is None:
        return ""
    hour, minute, second = match["H"], match["M"], match["S"]
    if hour is None:
        return ""
    if int(hour) > 23 or (minute and int(minute) > 59) or (second and int(second) > 60):
        raise TransformError("is not a valid time of day")
    result = hour + (minute or "") + (second or "")
    if match["f"]:
        result += "." + match["f"]
    return result


def datetime(value: Value) -> str:
    """HL7 TS/DTM → DICOM DT ``YYYYMMDD[HH[MM[SS[.F]]]][&ZZXX]`` (PS3.5 Table 6.2-1).

    The precision sent is kept and so is the time zone offset (DT carries one,
    unlike DA and TM), so a scanner in another zone reads the right instant. A
    date or time that does not exist is an error.
    """
    match = _timestamp(value)
    if match is None:
        return ""
    if match["d"] is not None:
        date(value)  # checks the calendar date
    if match["H"] is not None:
        time(value)  # checks the time of day
    tz = match["tz"] or ""
    if tz and (int(tz[1:3]) > 14 or int(tz[3:]) > 59):
        raise TransformError("has a time zone offset outside -1200..+1400")
    digits = "".join(match[k] or "" for k in ("Y", "m", "d", "H", "M", "S"))
    return digits + (f".{match['f']}" if match["f"] else "") + tz


# HL7 table 4000 (name/address representation, XPN-8 and XCN-15) → DICOM PN component
# group (PS3.5 §6.2.1.2): alphabetic, ideographic, phonetic.
_NAME_GROUPS = {"A": 0, "I": 1, "P": 2}


def person_name_groups(repetitions: Sequence[Value], *, xcn: bool = False) -> str:
    """All repetitions of an XPN (or XCN) field → one DICOM PN with its component groups.

    Each repetition goes to the group its name representation code says (XPN-8,
    XCN-15: ``A`` alphabetic, ``I`` ideographic, ``P`` phonetic); a repetition
    without one is alphabetic. The first repetition of each group wins (HL7
    lists the preferred name first). Japanese sites send ``漢字^名^^^^^L^I~
    カナ^メイ^^^^^L^P``, which becomes ``=漢字^名=カナ^メイ``.
    """
    groups = ["", "", ""]
    code_at = 14 if xcn else 7
    for value in repetitions:
        code = value[code_at].strip().upper() if len(value) > code_at else ""
        group = _NAME_GROUPS.get(code, 0)
        if groups[group]:
            continue
        groups[group] = xcn_pn(value) if xcn else pn(value)
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups)


def _person_name(
    family: str, given: str, middle: str, suffix: str, prefix: str, degree: str
) -> str:
    # PS3.5 §6.2.1.1: family^given^middle^prefix^suffix; a degree is part of the suffix.
    full_suffix = " ".join(p for p in (suffix.strip(), degree.strip()) if p)
    parts = [family.strip(), given.strip(), middle.strip(), prefix.strip(), full_suffix]
    for part in parts:
        if any(ch in part for ch in "^=\\"):
            raise TransformError("contains '^', '=' or '\\', which a DICOM person name cannot hold")
    while parts and not parts[-1]:
        parts.pop()
    return "^".join(parts)


def _pad(value: Value, size: int) -> list[str]:
    return list(value[:size]) + [""] * (size - len(value[:size]))


def pn(value: Value) -> str:
    """HL7 XPN ``family^given^middle^suffix^prefix^degree`` → DICOM PN.

    PN is ``family^given^middle^prefix^suffix`` (PS3.5 §6.2.1.1), trailing
    empty components removed; the degree is appended to the suffix. One
    repetition gives one component group; a ``[*]`` path (all repetitions)
    gives them all, see :func:`person_name_groups`.
    """
    return _person_name(*_pad(value, 6))


def xcn_pn(value: Value) -> str:
    """HL7 XCN ``id^family^given^middle^suffix^prefix^degree`` → DICOM PN (as :func:`pn`)."""
    return _person_name(*_pad(value, 7)[1:])


def upper(value: Value) -> str:
    """Upper-case the value (e.g. for CS values such as Modality, PS3.5 Table 6.2-1)."""
    return scalar(value).upper()


def trim(value: Value) -> str:
    """Remove leading and trailing spaces and collapse runs of white space to one space."""
    return " ".join(scalar(value).split())


# HL7 table 0001 Administrative Sex → PS3.3 C.7.1.1 Patient's Sex (0010,0040): M, F, O.
_SEX = MappingProxyType({"M": "M", "F": "F", "O": "O", "A": "O", "U": "", "N": ""})


def sex(value: Value) -> str:
    """HL7 table 0001 sex → DICOM Patient's Sex (PS3.3 C.7.1.1): M, F, O or empty.

    A (ambiguous) becomes O (other); U (unknown) and N (not applicable)
    become empty (Type 2: unknown). Any other code is a table error.
    """
    code = scalar(value).strip().upper()
    if not code:
        return ""
    if code not in _SEX:
        raise TransformError(f"{code!r} is not an HL7 table 0001 sex code", table=True)
    return _SEX[code]


# HL7 TQ-6 priority (table 0027) / TQ1-9 (table 0485) → DICOM Requested Procedure
# Priority (0040,1003), as in the IHE RAD TF-2 order mappings (RAD-4/RAD-13).
_PRIORITY = MappingProxyType(
    {
        "S": "STAT",
        "A": "HIGH",
        "P": "HIGH",
        "C": "HIGH",
        "R": "ROUTINE",
        "T": "MEDIUM",
        "PRN": "LOW",
        # Already DICOM: idempotent.
        "STAT": "STAT",
        "HIGH": "HIGH",
        "ROUTINE": "ROUTINE",
        "MEDIUM": "MEDIUM",
        "LOW": "LOW",
    }
)
_TIMING_CRITICAL = re.compile(
    r"T[SMHDWL]\d*"
)  # table 0485 TS<n>, TM<n>, TH<n>, TD<n>, TW<n>, TL<n>


def priority(value: Value) -> str:
    """HL7 priority → DICOM Requested Procedure Priority (PS3.3 C.4.11, (0040,1003)).

    S → STAT; A (ASAP), P (pre-op), C (callback) → HIGH; R → ROUTINE;
    T and the timing-critical codes of table 0485 (TS, TM<n>…) → MEDIUM;
    PRN (as needed) → LOW. Another code is a table error.
    """
    code = scalar(value).strip().upper()
    if not code:
        return ""
    if code in _PRIORITY:
        return _PRIORITY[code]
    if _TIMING_CRITICAL.fullmatch(code):
        return "MEDIUM"
    raise TransformError(
        f"{code!r} is not an HL7 priority code (S, A, P, C, R, T, PRN)", table=True
    )


# Fixed for ever: changing it would change every generated Study Instance UID.
_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:mwl-broker:generated-uid")


def uid_from_seed(seed: str) -> str:
    """A deterministic UUID-derived UID ``2.25.<uuid5 as integer>`` (PS3.5 §B.2).

    The same seed always gives the same UID, so a resent or updated order
    keeps its Study Instance UID.
    """
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, seed).int}"


GENERATED_ID_PREFIX = "G"
"""First character of every generated identifier: tells a person it was not sent."""
_ID_HASH_CHARS = 15  # base32 characters: 75 bits of SHA-256


def id_from_seed(seed: str) -> str:
    """A deterministic 16-character identifier for an SH element (PS3.5 §6.2, VR SH).

    ``G`` and the first 15 base32 characters (``A-Z2-7``, 75 bits) of the
    SHA-256 of the seed: valid in SH, LO and even CS, stable for a given seed,
    and with 100,000 entries the chance that two seeds share an id is about
    one in 10^13. IHE RAD TF-2 (RAD-5, MWL keys) makes the Requested
    Procedure ID and the Scheduled Procedure Step ID type 1: an entry must
    have them even when the RIS sends none.
    """
    digest = base64.b32encode(hashlib.sha256(seed.encode("utf-8")).digest()).decode("ascii")
    return GENERATED_ID_PREFIX + digest[:_ID_HASH_CHARS]


def uid(value: Value) -> str:
    """Turn the value into a deterministic UID (see :func:`uid_from_seed`); empty stays empty."""
    text = scalar(value).strip()
    return uid_from_seed(text) if text else ""


TRANSFORMS: Mapping[str, Transform] = MappingProxyType(
    {
        "date": date,
        "time": time,
        "datetime": datetime,
        "pn": pn,
        "xcn_pn": xcn_pn,
        "upper": upper,
        "trim": trim,
        "sex": sex,
        "priority": priority,
        "uid": uid,
    }
)
"""Every transform a mapping may name, by name."""
