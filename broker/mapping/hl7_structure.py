"""What the HL7 v2 standard says a message can hold, from hl7apy's version libraries.

Used when a mapping file is loaded to check its HL7 paths (``OBR-4.2``)
against the message types it handles: the segment must be one the message
structure can contain, through all its groups (HL7 v2.5.1 §2.5 message
framework; each trigger event's structure is given in its chapter: ch. 3 ADT,
ch. 4 orders), the field must be one the segment has in that version, and a
component or subcomponent one its data type has (ch. 2A data types).

hl7apy (``hl7apy.load_library``, ``hl7apy.load_reference``) gives each
version's message structures, segments, fields and data types; it does not
carry the trigger-event column of HL7 table 0354 (message structure), so
events that share a structure (``ADT^A04`` is sent as ``ADT_A01``) are
listed in :data:`_SHARED_STRUCTURES`. A message type hl7apy does not know in
a version falls back to "any segment of that version's library". Z-segments
are site-defined (HL7 v2.5.1 ch. 2, local extensions) and never checked.

Everything is cached: each (version, segment) is read from hl7apy once.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import hl7apy
from hl7apy.exceptions import ChildNotFound

from broker.hl7.paths import HL7Path

__all__ = [
    "SUPPORTED_VERSIONS",
    "DataType",
    "Target",
    "check_path",
    "default_versions",
    "message_segments",
    "message_structure",
    "segment_fields",
    "segment_library",
]


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


SUPPORTED_VERSIONS: tuple[str, ...] = tuple(sorted(hl7apy.SUPPORTED_LIBRARIES, key=_version_key))
"""The HL7 v2.x versions hl7apy has a library for (2.1 … 2.8.2)."""

_DEFAULT_VERSIONS = {
    "ORM^O01": ("2.3.1",),  # IHE RAD TF-2 RAD-4/RAD-13 ORM^O01 is HL7 v2.3.1
    "OMI^O23": ("2.5.1",),  # IHE RAD TF-2 RAD-4/RAD-13 in v2.5.1 (IPC, TQ1)
    "OMG^O19": ("2.5.1",),
}
_FALLBACK_VERSION = "2.5.1"  # ADT (IHE RAD-1/RAD-12 in v2.5.1) and any other type

# HL7 table 0354 (message structure; v2.5.1 ch. 3): events sent in another
# event's structure, in the order tried (ADT_A05 exists from v2.4; before it,
# A05/A14/A28/A31 are sent as ADT_A01).
_SHARED_STRUCTURES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("ADT^A04", "ADT^A08", "ADT^A13"), ("ADT_A01",)),
    **dict.fromkeys(("ADT^A05", "ADT^A14", "ADT^A28", "ADT^A31"), ("ADT_A05", "ADT_A01")),
    "ADT^A07": ("ADT_A06",),
    **dict.fromkeys(("ADT^A10", "ADT^A11"), ("ADT_A09",)),
    **dict.fromkeys(
        ("ADT^A22", "ADT^A23", "ADT^A25", "ADT^A26", "ADT^A27", "ADT^A29", "ADT^A32", "ADT^A33"),
        ("ADT_A21",),
    ),
    **dict.fromkeys(
        ("ADT^A34", "ADT^A35", "ADT^A36", "ADT^A46", "ADT^A47", "ADT^A48", "ADT^A49"),
        ("ADT_A30",),
    ),
    **dict.fromkeys(("ADT^A40", "ADT^A41", "ADT^A42"), ("ADT_A39",)),
    "ADT^A44": ("ADT_A43",),
    "ADT^A51": ("ADT_A50",),
    "ADT^A53": ("ADT_A52",),
    "ADT^A55": ("ADT_A54",),
    "ADT^A62": ("ADT_A61",),
}
_SEGMENT_RE = re.compile(r"[A-Z][A-Z0-9]{2}")


@dataclass(frozen=True)
class Target:
    """One message type in one HL7 version that a mapping handles."""

    message_type: str  # "ORM^O01" (MSH-9.1^MSH-9.2)
    version: str  # "2.3.1"

    def __str__(self) -> str:
        return f"{self.message_type} v{self.version}"


@dataclass(frozen=True)
class DataType:
    """A field's or component's data type as used there (HL7 v2.5.1 ch. 2A).

    ``parts`` are its components (or a component's subcomponents): ``()`` for a
    primitive (ST, IS, DTM…), ``None`` when unknown (``varies``, as OBX-5).
    """

    name: str
    parts: tuple[DataType, ...] | None

    def has_part(self, number: int) -> bool:
        """True if component/subcomponent ``number`` exists (1 of a primitive is the value)."""
        if self.parts is None:
            return True
        return number <= max(len(self.parts), 1)

    def describe(self) -> str:
        """``with 6 components``, or ``(a primitive: no components)``."""
        count = len(self.parts or ())
        if not count:
            return "(a primitive: no components)"
        return f"with {count} component{'s' if count != 1 else ''}"


def default_versions(message_type: str) -> tuple[str, ...]:
    """The versions a message type's paths are checked against unless the mapping says."""
    return _DEFAULT_VERSIONS.get(message_type, (_FALLBACK_VERSION,))


@cache
def _library(version: str) -> Any:
    return hl7apy.load_library(version)


def _reference(name: str, kind: str, version: str) -> Any:
    try:
        return hl7apy.load_reference(name, kind, version)
    except ChildNotFound:
        return None


@cache
def segment_library(version: str) -> frozenset[str]:
    """Every segment id the version defines (its segment library, HL7 v2.5.1 §2.5.2)."""
    return frozenset(s for s in _library(version).SEGMENTS if _SEGMENT_RE.fullmatch(s))


@cache
def message_structure(message_type: str, version: str) -> str | None:
    """hl7apy's message structure id for ``"ADT^A04"`` in a version (``"ADT_A01"``), or None."""
    candidates = (message_type.replace("^", "_"), *_SHARED_STRUCTURES.get(message_type, ()))
    return next((c for c in candidates if _reference(c, "Message", version) is not None), None)


@cache
def message_segments(message_type: str, version: str) -> frozenset[str] | None:
    """The segments a message type's structure can contain, through all its groups.

    None when hl7apy has no structure for that type in that version.
    """
    structure = message_structure(message_type, version)
    if structure is None:
        return None
    found: set[str] = set()
    _collect(_reference(structure, "Message", version), found)
    return frozenset(found)


def _collect(ref: Any, found: set[str]) -> None:
    """Segment ids of a ``('sequence', ((name, ref, cardinality, 'SEG'|'GRP'), …))`` tree."""
    children = ref[1] if isinstance(ref, tuple | list) and len(ref) > 1 else ()
    for child in children:
        if not isinstance(child, tuple | list) or len(child) < 4:
            continue
        name, sub, _, kind = child[:4]
        if kind == "GRP":
            _collect(sub, found)
        elif kind == "SEG" and isinstance(name, str) and _SEGMENT_RE.fullmatch(name):
            found.add(name)


@cache
def segment_fields(segment: str, version: str) -> tuple[DataType | None, ...] | None:
    """Each field's data type (index 0 is field 1); None for a withdrawn, unlisted field.

    None when the version has no such segment, ``()`` when hl7apy lists no fields.
    """
    ref = _reference(segment, "Segment", version)
    if ref is None:
        return None
    by_number: dict[int, DataType | None] = {}
    for child in ref[1] if len(ref) > 1 else ():
        match = re.fullmatch(rf"{segment}_(\d+)", str(child[0])) if child else None
        if match is not None:
            by_number[int(match[1])] = _datatype(child[1] if len(child) > 1 else None)
    return tuple(by_number.get(n) for n in range(1, max(by_number, default=0) + 1))


def _datatype(ref: Any) -> DataType | None:
    """``('leaf', None, 'ST', …)`` or ``('sequence', (components…), 'CE', …)`` → DataType."""
    if not isinstance(ref, tuple | list) or len(ref) < 3 or not isinstance(ref[2], str):
        return None
    if ref[0] == "leaf":
        return DataType(ref[2], None if ref[2] == "varies" else ())
    children = ref[1] if isinstance(ref[1], tuple | list) else ()
    parts = tuple(_datatype(c[1]) for c in children if isinstance(c, tuple | list) and len(c) > 1)
    if not parts or any(p is None for p in parts):
        return DataType(ref[2], None)
    return DataType(ref[2], tuple(p for p in parts if p is not None))


def _segments_of(target: Target) -> frozenset[str]:
    segments = message_segments(target.message_type, target.version)
    return segment_library(target.version) if segments is None else segments


def _names(targets: Iterable[Target]) -> str:
    """``ORM^O01 v2.3.1 or OMG^O19/OMI^O23 v2.5.1``: the types, grouped by version."""
    by_version: dict[str, list[str]] = {}
    for target in targets:
        by_version.setdefault(target.version, []).append(target.message_type)
    groups = [f"{'/'.join(types)} v{v}" for v, types in by_version.items()]
    return " or ".join(filter(None, [", ".join(groups[:-1]), *groups[-1:]]))


def _versions(versions: Iterable[str]) -> str:
    return " and ".join(f"v{v}" for v in versions)


def _did_you_mean(word: str, choices: Iterable[str], n: int = 3) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=n, cutoff=0.6)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def _parts_text(where: str, types: dict[str, DataType | None], sub: bool) -> str:
    """``OBR-4 is CE in v2.3.1 and v2.5.1 with 6 components``, per distinct type."""
    by_kind: dict[tuple[str, str], list[str]] = {}
    for version, datatype in types.items():
        if datatype is not None:
            parts = datatype.describe()
            if sub:
                parts = parts.replace("component", "subcomponent")
            by_kind.setdefault((datatype.name, parts), []).append(version)
    described = [f"{name} in {_versions(vs)} {parts}" for (name, parts), vs in by_kind.items()]
    return f"{where} is {', '.join(described)}"


@lru_cache(maxsize=4096)
def check_path(path: HL7Path, targets: tuple[Target, ...]) -> str | None:
    """Why ``path`` exists in none of ``targets``, or None when one of them has it.

    A path is valid when some (message type, version) has its segment, the
    field in that segment, and the component and subcomponent in the field's
    data type. The message says what would be valid there.
    """
    segment = path.segment
    if segment.startswith("Z") or not targets:
        return None
    having = [t for t in targets if segment in _segments_of(t)]
    if not having:
        known = set().union(*(_segments_of(t) for t in targets))
        unknown = [t for t in targets if message_segments(t.message_type, t.version) is None]
        library = f" (no structure known for {_names(unknown)}: any segment of its version)"
        return (
            f"{segment} is not a segment of {_names(targets)}{library if unknown else ''}"
            f"{_did_you_mean(segment, known)}"
        )
    versions = sorted({t.version for t in having}, key=_version_key)
    fields = {v: segment_fields(segment, v) for v in versions}
    with_field = [v for v in versions if not fields[v] or path.field <= len(fields[v] or ())]
    if not with_field:
        counts = [f"{len(fields[v] or ())} in v{v}" for v in versions]
        counts[0] = counts[0].replace(" in ", " fields in ")
        most = max(len(f or ()) for f in fields.values())
        choices = [f"{segment}-{n}" for n in range(1, most + 1)]
        return (
            f"{path.field_location} does not exist in {_names(having)} "
            f"({segment} has {', '.join(counts)})"
            f"{_did_you_mean(path.field_location, choices, n=1)}"
        )
    if path.component is None:
        return None
    types = {v: _field_type(fields[v], path.field) for v in with_field}
    with_component = [v for v, t in types.items() if t is None or t.has_part(path.component)]
    if not with_component:
        return f"{path}: {_parts_text(path.field_location, types, sub=False)}"
    if path.subcomponent is None:
        return None
    components = {v: _part(types[v], path.component) for v in with_component}
    if any(c is None or c.has_part(path.subcomponent) for c in components.values()):
        return None
    where = f"{path.field_location}.{path.component}"
    return f"{path}: {_parts_text(where, components, sub=True)}"


def _field_type(fields: tuple[DataType | None, ...] | None, number: int) -> DataType | None:
    return fields[number - 1] if fields and number <= len(fields) else None


def _part(datatype: DataType | None, number: int) -> DataType | None:
    """Component ``number`` of a type; a primitive's component 1 is the primitive itself."""
    if datatype is None or datatype.parts is None:
        return None
    return datatype.parts[number - 1] if datatype.parts else datatype
