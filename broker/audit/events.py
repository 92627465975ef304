"""Audit events: who did what, from where, with what outcome — and where patient data may be.

One :class:`AuditEvent` per security-relevant act: a connection or association refused
or accepted, a C-FIND, an MPPS change, an HL7 message refused at the door, a mapping
published or rolled back, a command that changes the worklist (reprocess, purge,
import), the broker starting and stopping, the audit trail read or losing records, a
login or logout of the admin console, a user or an API token added or changed, a worklist
entry edited, its status set or deleted by hand, a record holding patient data read through
the console or a command (a received message, an entry, a CSV export: ids and counts).

Fields (all text is made printable and bounded before it is stored):

    type      what happened (:class:`AuditType`)
    outcome   success, refused (a policy said no) or failed (something broke)
    time      when, UTC (the broker's clock)
    address   the peer's source address (network events)
    ae        the calling AE title, printable ASCII, at most 16 characters
    user      the operating-system user of a command (``getpass.getuser()``), or the
              console user (or ``token:<id>``) acting
    sender    an HL7 sender: MSH-3^MSH-4 as received
    target    what was acted on: a mapping version, a message-log id, an MPPS SOP
              Instance UID, a folder
    reason    why it was refused or failed, in the broker's words
    details   counts, statuses, names of DICOM keys, HL7 fields: never their values
    phi       the one field that may hold patient data: a C-FIND's key values, and
              only with ``log_phi = true`` (test systems); absent otherwise
    node      the host the broker or command ran on

A C-FIND is recorded by the tags of its keys and how each was used (``details.keys``,
see :func:`query_keys`), not by its values: ``00100010*`` says a name was searched
with a wild card, never which name (:func:`readable_key` gives ``PatientName*``). Tags,
not keywords, because a query is recorded for every poll of every scanner: a station
poll of 19 keys takes ≈ 450 bytes of Redis memory with tags, ≈ 900 with keywords. No
other field is built from a message's or a query's content, so no other field can
carry patient data.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterator, Mapping, MutableSequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset

from broker.common.clock import SYSTEM_CLOCK
from broker.common.jsontext import dumps, loads
from broker.common.logsafety import printable

__all__ = [
    "KEY_LIMIT",
    "AuditEvent",
    "AuditType",
    "Outcome",
    "StoredEvent",
    "from_fields",
    "iso_time",
    "query_keys",
    "readable_key",
    "to_fields",
]

FIELD_LIMIT = 256  # characters of one text field; the rest is cut and marked
KEY_LIMIT = 64  # query keys recorded per C-FIND; more are counted
VALUE_LIMIT = 64  # characters of one query value (``phi``, with log_phi only)
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_TEXT_FIELDS = ("address", "ae", "user", "sender", "target", "reason", "node")
_WILD = frozenset("*?")
_HEX = frozenset("0123456789ABCDEFabcdef")
_RANGE_VRS = frozenset({"DA", "TM", "DT"})


class AuditType(StrEnum):
    """What happened. The values are stable: they are stored and filtered on."""

    APPLICATION_START = "application-start"
    APPLICATION_STOP = "application-stop"
    CONNECTION_REFUSED = "connection-refused"  # MLLP or DICOM, before any protocol
    ASSOCIATION_ACCEPTED = "association-accepted"
    ASSOCIATION_REJECTED = "association-rejected"
    QUERY = "query"  # one MWL C-FIND
    MPPS_CREATE = "mpps-create"
    MPPS_SET = "mpps-set"
    MESSAGE_REFUSED = "message-refused"  # HL7: sender, header or clock refused
    MAPPING_SEED = "mapping-seed"
    MAPPING_PUBLISH = "mapping-publish"
    MAPPING_ROLLBACK = "mapping-rollback"
    MESSAGE_REPROCESS = "message-reprocess"
    MESSAGE_DISMISS = "message-dismiss"
    PURGE = "purge"
    IMPORT = "import"
    AUDIT_READ = "audit-read"
    AUDIT_DROPPED = "audit-dropped"  # records lost: the queue was full or Redis away
    LOGIN = "login"  # the admin console: success, or refused (bad password, throttled)
    LOGOUT = "logout"
    USER_ADD = "user-add"
    USER_PASSWORD = "user-password"  # noqa: S105 - an event name
    USER_DISABLE = "user-disable"
    USER_ENABLE = "user-enable"
    USER_ROLE = "user-role"
    TOKEN_CREATE = "token-create"  # noqa: S105
    TOKEN_REVOKE = "token-revoke"  # noqa: S105
    ENTRY_EDIT = "entry-edit"  # the console: one attribute of a worklist entry changed by hand
    ENTRY_STATUS = "entry-status"  # a worklist entry's SPS status set by hand (cancel too)
    ENTRY_DELETE = "entry-delete"  # a worklist entry taken off the worklist by hand
    BACKUP = "backup"  # mwl-broker backup: the data written to a file (counts)
    RESTORE = "restore"  # mwl-broker restore: a backup file written into the Redis (counts)
    OUTBOUND_RETRY = "outbound-retry"  # a parked status message for the RIS queued again
    OUTBOUND_DISCARD = "outbound-discard"  # a parked status message dropped for good
    OUTBOUND_READ = "outbound-read"  # a status message's text shown (it holds patient data)
    MESSAGE_READ = "message-read"  # a received HL7 message shown (its text: patient data)
    ENTRY_READ = "entry-read"  # a worklist entry shown whole (DICOM JSON or its dump)
    ENTRY_EXPORT = "entry-export"  # a console search's entries written out as CSV


class Outcome(StrEnum):
    """How it ended."""

    SUCCESS = "success"
    REFUSED = "refused"  # the broker's policy said no
    FAILED = "failed"  # something went wrong


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit record; see the module docstring for what each field may hold."""

    type: AuditType
    outcome: Outcome = Outcome.SUCCESS
    address: str = ""
    ae: str = ""
    user: str = ""
    sender: str = ""
    target: str = ""
    reason: str = ""
    details: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    phi: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    time: float = field(default_factory=SYSTEM_CLOCK.now)
    node: str = ""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back from the stream, with its stream id."""

    id: str
    event: AuditEvent


def iso_time(epoch: float) -> str:
    """``epoch`` as RFC 3339 / ISO 8601 UTC with milliseconds (RFC 5424 TIMESTAMP)."""
    millis = round(epoch * 1000)
    seconds, ms = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"


def _epoch(text: str) -> float:
    """The inverse of :func:`iso_time` (0.0 for anything else)."""
    try:
        base, _, rest = text.partition(".")
        millis = int(rest.rstrip("Z") or 0)
        return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + millis / 1000
    except (ValueError, OverflowError):
        return 0.0


def _clean(text: str) -> str:
    """Printable (``logsafety.printable``) and at most ``FIELD_LIMIT`` characters."""
    safe = printable(text)
    return safe if len(safe) <= FIELD_LIMIT else safe[: FIELD_LIMIT - 1] + "…"


def to_fields(event: AuditEvent, node: str = "") -> dict[str, str]:
    """The stream entry for ``event``: empty fields left out, ``details`` and ``phi`` as
    JSON, ``node`` filled in when the event has none."""
    fields = {"type": event.type.value, "outcome": event.outcome.value}
    fields["time"] = iso_time(event.time)
    for name in _TEXT_FIELDS:
        value = getattr(event, name) or (node if name == "node" else "")
        if value:
            fields[name] = _clean(value)
    if event.details:
        fields["details"] = dumps(event.details)
    if event.phi:
        fields["phi"] = dumps(dict(event.phi))
    return fields


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def from_fields(entry_id: str, raw: Mapping[Any, Any] | None) -> StoredEvent | None:
    """The event of a stream entry, or None for an entry that is not one."""
    f = {_text(k): _text(v) for k, v in (raw or {}).items()}
    try:
        kind, outcome = AuditType(f.get("type", "")), Outcome(f.get("outcome", ""))
    except ValueError:
        return None
    event = AuditEvent(
        type=kind,
        outcome=outcome,
        time=_epoch(f.get("time", "")),
        details=_json_object(f.get("details")),
        phi=_json_object(f.get("phi")),
        **{name: f.get(name, "") for name in _TEXT_FIELDS},
    )
    return StoredEvent(entry_id, event)


def _json_object(text: str | None) -> Mapping[str, Any]:
    if not text:
        return _EMPTY
    try:
        value = loads(text)
    except ValueError:
        return _EMPTY
    return value if isinstance(value, dict) else _EMPTY


def query_keys(identifier: Dataset, values: bool = False) -> tuple[list[str], dict[str, str]]:
    """A C-FIND identifier's keys, by tag and use, and (``values``) their values.

    Each key is its tag (``ggggeeee``, as DICOM JSON writes it), the keys of a sequence
    item after the sequence's tag and a dot, with a mark for how it is
    matched (PS3.4 C.2.2.2): ``=`` a value (single value or list), ``-`` a range (DA, TM,
    DT), ``*`` a wild card (``*`` or ``?``), none for a return key (universal matching).
    At most ``KEY_LIMIT`` keys; ``+N`` counts the rest. The values, with ``values``
    (``log_phi``), are the key's text, at most ``VALUE_LIMIT`` characters each.
    """
    keys: list[str] = []
    given: dict[str, str] = {}
    more = 0
    for name, mark, value in _walk(identifier, ""):
        if len(keys) >= KEY_LIMIT:
            more += 1
            continue
        keys.append(name + mark)
        if values and mark:
            given[name] = value[:VALUE_LIMIT]
    if more:
        keys.append(f"+{more}")
    return keys, given


def _walk(ds: Dataset, prefix: str) -> Iterator[tuple[str, str, str]]:
    """(name, mark, value text) of every key of ``ds``, sequence items included."""
    for elem in ds.elements():  # as stored: no conversion, no copy
        tag = elem.tag
        if tag == 0x00080005:  # Specific Character Set: not a key
            continue
        name = f"{prefix}{tag:08X}"
        if elem.VR == "SQ":
            items = [item for item in (elem.value or [])[:1] if isinstance(item, Dataset)]
            if not items:
                yield name, "", ""
            for item in items:  # MWL: one item (PS3.4 K.6.1.2.2)
                yield from _walk(item, name + ".")
            continue
        yield name, *_mark(str(elem.VR), elem.value)


def readable_key(key: str) -> str:
    """A recorded key with keywords for its tags: ``00400100.00080060=`` is
    ``ScheduledProcedureStepSequence.Modality=`` (``(gggg,eeee)`` for a tag pydicom does
    not know)."""
    path, mark = key.rstrip("=-*"), key[len(key.rstrip("=-*")) :]
    names = []
    for part in path.split("."):
        if len(part) != 8 or not all(c in _HEX for c in part):
            return key  # "+N", or not a recorded key
        tag = int(part, 16)
        names.append(keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})")
    return ".".join(names) + mark


def _mark(vr: str, value: Any) -> tuple[str, str]:
    """How a key is matched, and its value as text."""
    if value is None or value == "" or value == b"":
        return "", ""
    if isinstance(value, bytes):  # not decoded yet: matching marks are ASCII anyway
        value = value[: 4 * VALUE_LIMIT].decode("latin-1")
    many = isinstance(value, MutableSequence | tuple)  # pydicom's MultiValue, a list
    text = "\\".join(str(v) for v in value) if many else str(value)
    if not text.strip():
        return "", ""
    if _WILD & set(text):
        return "*", text
    if vr in _RANGE_VRS and "-" in text:
        return "-", text
    return "=", text
