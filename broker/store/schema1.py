"""Schema 1's key names, read back: for the migration to schema 2 (``broker.store.keys``).

Schema 1 (the broker before pseudonyms) wrote received values into key names,
escaped (``\\`` → ``\\\\``, ``:`` → ``\\:``, ``|`` → ``\\|``): ``{p}:idx:pid:{id}``,
``{p}:idx:acc:{acc}``, ``{p}:patient:{id}``, ``{p}:alias:{id}``,
``{p}:order:{order key}``, ``{p}:mpps-idx:study:{uid}``, ``{p}:mpps-idx:acc:{acc}``;
plain order keys and Patient IDs as the fields of ``{p}:order-status``,
``{p}:order-time`` and ``{p}:patient-time``; and entry ids that are 32 hexadecimal
digits (:func:`broker.store.keys.schema1_entry_id`). Schema 2 puts ``=`` after
the kind and makes entry ids 30 digits long, so no name or id of one schema
is ever one of the other: whatever looks like schema 1 is schema 1, also when a
migration stopped halfway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from broker.store.keys import KeySchema

__all__ = ["Kind", "Schema1", "is_schema1_id", "unescape"]

_ENTRY_ID = re.compile(r"^[0-9a-f]{32}$")
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def is_schema1_id(value: str) -> bool:
    """An entry id as schema 1 made them (schema 2's are 30 hexadecimal digits)."""
    return _ENTRY_ID.match(value) is not None


def unescape(part: str) -> str:
    """The value a schema-1 key part was made from."""
    return _ESCAPED.sub(r"\1", part)


class Kind(StrEnum):
    """What a schema-1 key is, for the migration."""

    ENTRY = "entry hashes"  # renamed to the new id; its idx refs rewritten
    PATIENT_INDEX = "Patient ID index sets"  # renamed; members rewritten
    ACCESSION_INDEX = "accession index sets"
    ORDER = "order sets"
    OTHER_INDEX = "station, modality and all-entries sets"  # members rewritten
    SORTED_INDEX = "date and ended sorted sets"  # members rewritten, scores kept
    PATIENT = "patient records"  # renamed
    ALIAS = "patient aliases"  # renamed, given a TTL, recorded in their target's merged set
    MPPS = "MPPS instances"  # entries and refs rewritten
    MPPS_STUDY = "MPPS study index sets"  # renamed
    MPPS_ACCESSION = "MPPS accession index sets"  # renamed
    MESSAGE = "message-log records"  # entry_ids rewritten


@dataclass(frozen=True)
class Schema1:
    """Schema 1's names under the prefix of ``keys``, and their schema-2 forms."""

    keys: KeySchema

    @property
    def _p(self) -> str:
        return self.keys.prefix + ":"

    def classify(self, name: str) -> tuple[Kind, str] | None:
        """The kind of a key named as schema 1 did (with its value, unescaped), or None for a
        name that is schema 2's or does not change."""
        p, k = self._p, self.keys
        if not name.startswith(p):
            return None
        rest = name[len(p) :]
        if rest.startswith("entry:"):
            return (Kind.ENTRY, rest[6:]) if is_schema1_id(rest[6:]) else None
        for start, kind in _RENAMED:
            if rest.startswith(start):
                return kind, unescape(rest[len(start) :])
        if rest.startswith(("idx:aet:", "idx:mod:")) or name == k.all_entries():
            return Kind.OTHER_INDEX, ""
        if name in (k.by_date(), k.entries_ended()):
            return Kind.SORTED_INDEX, ""
        if rest.startswith("mpps:"):
            return Kind.MPPS, ""
        if rest.startswith("msg:") and rest[4:].isdigit():
            return Kind.MESSAGE, ""
        return None

    def new_name(self, kind: Kind, value: str) -> str:
        """The schema-2 name of a renamed key, from its value."""
        k = self.keys
        build = {
            Kind.PATIENT_INDEX: k.by_patient,
            Kind.ACCESSION_INDEX: k.by_accession,
            Kind.ORDER: k.order,
            Kind.PATIENT: k.patient,
            Kind.ALIAS: k.patient_alias,
            Kind.MPPS_STUDY: k.mpps_by_study,
            Kind.MPPS_ACCESSION: k.mpps_by_accession,
        }[kind]
        return build(value)

    def entry_id(self, entry_id: str) -> str:
        """Schema 2's id for an id either schema made (a schema-2 id is returned as it is)."""
        return self.keys.entry_id_from_schema1(entry_id) if is_schema1_id(entry_id) else entry_id

    def entry_ids(self, ids: list[Any]) -> list[Any]:
        return [self.entry_id(i) if isinstance(i, str) else i for i in ids]

    def ref(self, name: str) -> str:
        """Schema 2's name for an index key an entry's ``idx`` or an MPPS ``refs`` lists."""
        found = self.classify(name)
        if found is None or found[0] not in _RENAMED_KINDS:
            return name
        return self.new_name(*found)

    def refs(self, refs: list[Any]) -> list[Any]:
        """An ``idx`` / ``refs`` list (``["s", key]``, ``["z", key, score]``) in schema 2."""
        out = []
        for ref in refs:
            if isinstance(ref, list) and len(ref) >= 2 and isinstance(ref[1], str):
                ref = [ref[0], self.ref(ref[1]), *ref[2:]]
            out.append(ref)
        return out


# Schema-1 name starts (after the prefix) of keys whose name holds a value.
_RENAMED = (
    ("idx:pid:", Kind.PATIENT_INDEX),
    ("idx:acc:", Kind.ACCESSION_INDEX),
    ("order:", Kind.ORDER),
    ("patient:", Kind.PATIENT),
    ("alias:", Kind.ALIAS),
    ("mpps-idx:study:", Kind.MPPS_STUDY),
    ("mpps-idx:acc:", Kind.MPPS_ACCESSION),
)
_RENAMED_KINDS = frozenset(kind for _, kind in _RENAMED)
