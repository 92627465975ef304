"""The DICOMweb worklist Search Transaction's query: QIDO-RS parameters in, the C-FIND
identifier out (PS3.18 §14.4, with the Query Parameters of §8.3.4).

``parse_query`` turns the request's parameters (in order, repeats kept) into a
``QidoQuery``: the very ``Dataset`` a Modality Worklist C-FIND identifier is (PS3.4
K.6), which the DIMSE SCP's code matches (``broker.dicom.plan``,
``broker.dicom.matching``), plus paging. Anything it cannot take is a ``QidoError``
naming the parameter and why (an HTTP 400).

Where the Search Transaction differs from C-FIND, and what is done about it:

- **Match parameters** (§8.3.4.1): ``{attributeID}={value}``, the attribute by
  keyword or by tag (8 hex digits), a sequence path joined by ``.``
  (``ScheduledProcedureStepSequence.Modality=CT``, ``00400100.00080060=CT``). An empty
  value is universal matching (a return key). UIDs may be listed with ``,`` (List of
  UID Matching, PS3.4 C.2.2.2.2). An attribute given twice is refused.
- **Combined date-time** (§8.3.4.1; FACTS.md): QIDO-RS matches a DA + TM pair as one
  date-time whenever both are given. C-FIND here does so only when both are ranges of
  the same form (PS3.4 C.2.2.2.5.4); so when SPS Start Date is a range and SPS Start
  Time is given in another form, the time is rewritten into the date's form
  (``_combine``), which makes the shared matcher combine them.
- **fuzzymatching** (§8.3.4.4): ``true`` matches person names case-insensitively
  whatever the site's ``dicom_pn_case_insensitive`` says; there is no phonetic
  matching. ``false`` (the default) leaves the site's rule.
- **Return keys** (§14.4; PS3.4 K.6.1.2.2): every match parameter, the required return
  keys of the worklist (``DEFAULT_RETURN_KEYS``: the Type 1 and 2 keys of Table K.6-1 the
  broker stores), and each ``includefield`` (repeated or ``,``-separated); ``all``
  returns every attribute of the entry.
- **offset, limit** (§8.3.4.5): paging over the answers in a fixed order; the limit is
  bounded by the scanner profile's answer limit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from pydicom import config
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag

from broker.dicom.limits import check_identifier
from broker.errors import DicomServiceError

__all__ = ["DEFAULT_RETURN_KEYS", "QidoError", "QidoQuery", "parse_query"]

_SPS = "ScheduledProcedureStepSequence"
# PS3.4 Table K.6-1, the Type 1 and 2 return keys (R+ / R) the broker's entries hold.
DEFAULT_RETURN_KEYS: tuple[str, ...] = (
    "AccessionNumber",
    "ReferringPhysicianName",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "RequestedProcedureID",
    "RequestedProcedureDescription",
    "RequestedProcedureCodeSequence",
    f"{_SPS}.ScheduledStationAETitle",
    f"{_SPS}.ScheduledProcedureStepStartDate",
    f"{_SPS}.ScheduledProcedureStepStartTime",
    f"{_SPS}.Modality",
    f"{_SPS}.ScheduledPerformingPhysicianName",
    f"{_SPS}.ScheduledProcedureStepDescription",
    f"{_SPS}.ScheduledStationName",
    f"{_SPS}.ScheduledProcedureStepLocation",
    f"{_SPS}.ScheduledProtocolCodeSequence",
    f"{_SPS}.ScheduledProcedureStepID",
    f"{_SPS}.ScheduledProcedureStepStatus",
)

MAX_PATH_DEPTH = 3  # sequence levels a path may cross: the worklist nests two
MAX_PAGE = 1_000_000  # offset and limit above this are refused rather than parsed
_TAG_RE = re.compile(r"[0-9A-Fa-f]{8}")
_NUMBER_RE = re.compile(r"\d{1,7}")
_RESERVED = ("includefield", "fuzzymatching", "offset", "limit")
# Qualify the query or the answer's encoding rather than select entries.
_REFUSED = {
    Tag(0x0008, 0x0005): "Specific Character Set is not a query key: DICOMweb text is UTF-8",
    Tag(0x0008, 0x0052): "Query/Retrieve Level is not a query key of the worklist",
}
_DA = r"\d{8}"
_TM = r"\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?"
_DT = r"\d{4}(?:\d{2}){0,5}(?:\.\d{1,6})?(?:[+-]\d{4})?"
# PS3.4 C.2.2.2.5: a single value, or a range with either end open.
_RANGE_FORMS = {
    vr: re.compile(rf"(?:{form})|(?:{form})?-(?:{form})?")
    for vr, form in (("DA", _DA), ("TM", _TM), ("DT", _DT))
}
# Command, file meta information and item delimitation elements are not in an identifier.
_NOT_DATA_GROUPS = frozenset({0x0000, 0x0002, 0xFFFA, 0xFFFC, 0xFFFE})
_SPS_START_DATE = Tag(0x0040, 0x0002)
_SPS_START_TIME = Tag(0x0040, 0x0003)


class QidoError(ValueError):
    """A Search Transaction parameter that cannot be used: ``parameter`` names it (as
    sent), ``reason`` says why; an HTTP 400 problem+json (PS3.18 §8.6.1.2)."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.reason = reason


@dataclass(frozen=True, repr=False)
class QidoQuery:
    """A parsed Search Transaction: the C-FIND identifier and the paging. Its repr names
    the keys, never their values (patient data)."""

    identifier: Dataset  # match and return keys, as a Modality Worklist C-FIND has them
    include_all: bool = False  # includefield=all: every attribute of each entry
    fuzzy: bool = False  # fuzzymatching=true: person names case-insensitively
    offset: int = 0
    limit: int | None = None  # None: the profile's (or the site's) answer limit

    def __repr__(self) -> str:
        keys = ",".join(e.keyword or str(e.tag) for e in self.identifier.iterall())
        return (
            f"QidoQuery(keys=[{keys}], include_all={self.include_all}, fuzzy={self.fuzzy}, "
            f"offset={self.offset}, limit={self.limit})"
        )


def _attribute(parameter: str, name: str) -> tuple[BaseTag, str]:
    """One path component: a keyword or 8 hex digits, as a tag and its VR (PS3.18 §8.3.4.1)."""
    if _TAG_RE.fullmatch(name):
        tag = Tag(int(name, 16))
    else:
        found = tag_for_keyword(name)
        if found is None:
            raise QidoError(parameter, f"{name!r} is not a DICOM keyword or tag")
        tag = Tag(found)
    if tag.is_private:
        raise QidoError(parameter, "private attributes are not query keys here")
    try:
        vr = str(dictionary_VR(tag))
    except KeyError:
        raise QidoError(parameter, f"{name} is not an attribute of the DICOM dictionary") from None
    if tag.group in _NOT_DATA_GROUPS:
        raise QidoError(parameter, f"{name} is not an attribute of a dataset")
    if tag.element == 0 or len(vr) != 2 or vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
        raise QidoError(parameter, f"{name} ({vr}) cannot be a query key")
    return tag, vr


def _path(parameter: str, text: str) -> list[tuple[BaseTag, str]]:
    """An attribute path: sequences joined by ``.``, each but the last a sequence."""
    parts = text.split(".")
    if len(parts) > MAX_PATH_DEPTH or not all(parts):
        raise QidoError(parameter, "not an attribute path (keywords or tags joined by '.')")
    path = [_attribute(parameter, part) for part in parts]
    for tag, vr in path[:-1]:
        if vr != "SQ":
            raise QidoError(parameter, f"{keyword_for_tag(tag) or tag} is not a sequence")
    return path


def _item(ds: Dataset, tag: BaseTag) -> Dataset:
    """The one item of sequence ``tag`` in ``ds``, made if absent."""
    elem = ds.get(tag)
    if elem is None or not elem.value:
        ds.add(DataElement(tag, "SQ", [Dataset()]))
        elem = ds[tag]
    item: Dataset = elem.value[0]
    return item


def _put(ds: Dataset, path: list[tuple[BaseTag, str]], value: str | list[str] | None) -> bool:
    """Set the key at ``path``; a return key (``value`` None) never replaces a key already
    there. False when a match key is already set."""
    for tag, _ in path[:-1]:
        ds = _item(ds, tag)
    tag, vr = path[-1]
    existing = ds.get(tag)
    if existing is not None:
        if value is None or (existing.VR == "SQ" and not value):
            return True  # a return key, or a sequence already there: nothing to add
        if existing.VR == "SQ" or existing.value not in (None, "", []):
            return False
    if vr == "SQ":
        ds.add(DataElement(tag, "SQ", []))
    else:
        ds.add(DataElement(tag, vr, value or "", validation_mode=config.IGNORE))
    return True


def _match(identifier: Dataset, parameter: str, value: str) -> None:
    """A match parameter ``{attributeID}={value}`` (PS3.18 §8.3.4.1)."""
    path = _path(parameter, parameter)
    tag, vr = path[-1]
    if len(path) == 1 and tag in _REFUSED:
        raise QidoError(parameter, _REFUSED[tag])
    if vr == "SQ" and value:
        raise QidoError(parameter, "a sequence takes no value (match on its attributes)")
    if "\\" in value:
        raise QidoError(parameter, "'\\' is not allowed in a value (list UIDs with ',')")
    if vr in _RANGE_FORMS and value and not _RANGE_FORMS[vr].fullmatch(value):
        raise QidoError(parameter, f"not a {vr} value or range of {vr} values")
    values: str | list[str] = value
    if vr == "UI" and "," in value:
        values = value.split(",")
        if not all(values):
            raise QidoError(parameter, "an empty UID in the list")
    if not _put(identifier, path, values):
        raise QidoError(parameter, "the attribute is given more than once")


def _include(identifier: Dataset, value: str) -> bool:
    """``includefield`` (PS3.18 §8.3.4.3): paths, ``,``-separated; True for ``all``."""
    include_all = False
    for name in value.split(","):
        name = name.strip()
        if name == "all":
            include_all = True
        elif not name:
            raise QidoError("includefield", "an empty attribute in the list")
        else:
            _put(identifier, _path("includefield", name), None)
    return include_all


def _number(parameter: str, value: str, *, least: int) -> int:
    """``offset`` / ``limit`` (PS3.18 §8.3.4.5): a whole number, at least ``least``."""
    if not _NUMBER_RE.fullmatch(value) or int(value) > MAX_PAGE:
        raise QidoError(parameter, f"not a whole number from {least} to {MAX_PAGE}")
    if int(value) < least:
        raise QidoError(parameter, f"must be at least {least}")
    return int(value)


def _fuzzy(value: str) -> bool:
    """``fuzzymatching`` (PS3.18 §8.3.4.4): ``true`` or ``false``."""
    if value not in ("true", "false"):
        raise QidoError("fuzzymatching", "must be true or false")
    return value == "true"


def parse_query(params: Iterable[tuple[str, str]]) -> QidoQuery:
    """The Search Transaction's query parameters (PS3.18 §14.4.1.2, Table 8.3.4-1) as a
    C-FIND identifier and paging; ``QidoError`` names the first parameter refused."""
    identifier = Dataset()
    include_all, fuzzy, offset, limit = False, False, 0, None
    seen: set[str] = set()
    for name, value in params:
        if name in _RESERVED and name != "includefield":
            if name in seen:
                raise QidoError(name, "given more than once")
            seen.add(name)
        if name == "includefield":
            include_all = _include(identifier, value) or include_all
        elif name == "fuzzymatching":
            fuzzy = _fuzzy(value)
        elif name == "offset":
            offset = _number(name, value, least=0)
        elif name == "limit":
            limit = _number(name, value, least=1)
        else:
            _match(identifier, name, value)
    for key in DEFAULT_RETURN_KEYS:
        _put(identifier, _path(key, key), None)
    _combine(identifier)
    try:
        check_identifier(identifier)
    except DicomServiceError as e:
        raise QidoError(_offending(e, params), e.comment) from e
    return QidoQuery(identifier, include_all, fuzzy, offset, limit)


def _offending(error: DicomServiceError, params: Iterable[tuple[str, str]]) -> str:
    """The parameter naming the element ``check_identifier`` refused, else ``query``."""
    if error.offending is None:
        return "query"
    keyword = keyword_for_tag(error.offending)
    for name, _ in params:
        last = name.split(".")[-1]
        if last == keyword or (_TAG_RE.fullmatch(last) and int(last, 16) == error.offending):
            return name
    return keyword or "query"


def _text(ds: Dataset, tag: BaseTag) -> str:
    elem = ds.get(tag)
    return str(elem.value or "").strip() if elem is not None else ""


def _combine(identifier: Dataset) -> None:
    """QIDO-RS combined date-time matching of SPS Start Date and Time (PS3.18 §8.3.4.1,
    FACTS.md): with the date a range, the time is put in the date's form of range
    (``a-b``, ``a-`` or ``-b``), so that the matcher, which combines a pair of ranges of
    one form (PS3.4 C.2.2.2.5.4), takes them as one period. A single date with a time
    is the same either way; a time alone stays a time of day."""
    sps = identifier.get(_SPS)
    if not sps:
        return
    step = sps[0]
    date, time = _text(step, _SPS_START_DATE), _text(step, _SPS_START_TIME)
    if date.count("-") != 1 or not time or time in ("-", "*"):
        return
    low, _, high = time.partition("-") if "-" in time else (time, "-", time)
    date_low, _, date_high = date.partition("-")
    low = low or "000000"
    high = high or "235959.999999"
    form = (low if date_low else "") + "-" + (high if date_high else "")
    if form == "-":
        return
    step[_SPS_START_TIME].value = form
