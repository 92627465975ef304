"""What the message log keeps about one received HL7 message, and how it is queried.

The router fills an :class:`IntakeNotes` while it processes a message (which
mapping, which entries, duplicate or not, which error, which warnings) and, once the ACK is
built, hands an :class:`Intake` to a :class:`MessageRecorder`. Reading back
gives :class:`MessageRecord`; listing takes a :class:`MessageQuery` and returns
a :class:`MessagePage` of :class:`MessageSummary` rows, newest first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from broker.errors import HL7Error
from broker.hl7.ack import AckWarning
from broker.hl7.message import ParsedMessage, peek_header
from broker.store.steps import Steps
from broker.worklist.model import (
    ApplyOutcome,
    LogRecord,
    MappingResult,
    OrderAction,
    PatientResult,
)

__all__ = [
    "REPROCESS_PEER",
    "ErrorInfo",
    "Intake",
    "IntakeNotes",
    "MessagePage",
    "MessageQuery",
    "MessageRecord",
    "MessageRecorder",
    "MessageSummary",
    "Outcome",
    "WarningInfo",
    "intake_from",
]


REPROCESS_PEER = "reprocess of message "  # a reprocessing's peer: this, then the original's id


class Outcome(StrEnum):
    """What became of a message."""

    ACCEPTED = "accepted"  # AA: applied to the worklist
    DUPLICATE = "duplicate"  # a resend, answered with the first ACK; nothing changed
    ERROR = "error"  # refused for its content (AE/AR with ERR); kept on the error list
    STORE_FAILURE = "store-failure"  # AR: Redis unavailable; the sender resends
    INTERNAL_ERROR = "internal-error"  # AE 207: a broker fault; kept on the error list
    REJECTED = "rejected"  # AR by the transport (frame too large): only a prefix is kept
    OUT_OF_ORDER = "out-of-order"  # AA, but an order change older (MSH-7) than its order's
    # state was skipped (broker.worklist.ordering); the sender did nothing wrong

    @property
    def listed_as_error(self) -> bool:
        """Whether a message with this outcome waits on the error list for a person."""
        return self in (Outcome.ERROR, Outcome.INTERNAL_ERROR)


@dataclass(frozen=True)
class ErrorInfo:
    """The error answered in the ACK: MSA-1, ERR-3 (table 0357), ERR-2 and the text."""

    ack_code: str
    err_code: str
    location: str
    text: str

    @classmethod
    def of(cls, error: HL7Error) -> ErrorInfo:
        return cls(error.ack_code.value, error.err_code.value, error.location or "", error.text)


@dataclass(frozen=True)
class WarningInfo:
    """A warning answered in an accepting ACK (ERR-4 W): ERR-3 (table 0357), ERR-2, the text."""

    err_code: str
    location: str
    text: str

    @classmethod
    def of(cls, warning: AckWarning) -> WarningInfo:
        return cls(warning.err_code.value, warning.location or "", warning.text)


@dataclass
class IntakeNotes:
    """Filled in by the router while it processes one message (one per message)."""

    mapping_name: str = ""
    mapping_version: str = ""
    order_keys: list[str] = field(default_factory=list)
    entry_ids: list[str] = field(default_factory=list)
    created: int = 0
    removed: int = 0
    duplicate: bool = False
    stale: int = 0  # order changes skipped as older (MSH-7) than their order's state
    outcome: Outcome | None = None
    error: HL7Error | None = None
    warnings: tuple[AckWarning, ...] = ()  # values cut to fit their VR, told in the AA
    application_ack: bytes = b""  # enhanced mode: the AA/AE/AR MSH-16 asks for (not sent)
    logged: bool = False  # recorded in the message log already, with its changes

    def mapped(
        self, result: MappingResult | PatientResult, entry_id: Callable[[str, int], str]
    ) -> None:
        """Note the mapping used, the values it cut and the orders/entries it produced;
        ``entry_id`` gives an order's n-th entry its id (``KeySchema.entry_id``)."""
        self.mapping_name = result.mapping_name
        self.mapping_version = result.mapping_version
        self.warnings = tuple(AckWarning.of(cut) for cut in result.truncations)
        if isinstance(result, PatientResult):
            return
        for change in result.changes:
            self.order_keys.append(change.order_key)
            if change.action is OrderAction.SCHEDULE:
                self.entry_ids.extend(
                    entry_id(change.order_key, n) for n in range(1, len(change.entries) + 1)
                )

    def applied(self, outcome: ApplyOutcome) -> None:
        """Note what the store did (or that it found the message already applied)."""
        if outcome.duplicate is not None:
            self.duplicate = True
            return
        self.created, self.removed = outcome.created, outcome.removed
        self.stale = outcome.stale
        self.logged = outcome.logged is not None

    def failed(self, error: HL7Error, outcome: Outcome = Outcome.ERROR) -> None:
        """Note the error answered in the ACK."""
        self.error, self.outcome = error, outcome

    def final_outcome(self) -> Outcome:
        if self.outcome is not None:
            return self.outcome
        if self.duplicate:
            return Outcome.DUPLICATE
        return Outcome.OUT_OF_ORDER if self.stale else Outcome.ACCEPTED


@dataclass(frozen=True)
class Intake:
    """One message as received and answered: everything the log records."""

    raw: bytes
    peer: str
    received_at: float  # seconds since the epoch
    ack: bytes
    outcome: Outcome
    sending_application: str = ""  # MSH-3 as received
    sending_facility: str = ""  # MSH-4
    message_type: str = ""  # "ORM^O01"
    control_id: str = ""  # MSH-10
    version: str = ""  # MSH-12
    charset: str = ""  # Python codec the message was decoded with ("" if it was not)
    error: ErrorInfo | None = None
    warnings: tuple[WarningInfo, ...] = ()  # told in the AA (values cut to fit their VR)
    mapping_name: str = ""
    mapping_version: str = ""
    order_keys: tuple[str, ...] = ()
    entry_ids: tuple[str, ...] = ()
    created: int = 0
    removed: int = 0
    reprocess_of: str = ""  # id of the logged message this is a reprocessing of
    application_ack: bytes = b""  # enhanced mode: application ACK due but not sent yet


def intake_from(
    raw: bytes,
    peer: str,
    received_at: float,
    msg: ParsedMessage | None,
    ack: bytes,
    notes: IntakeNotes,
) -> Intake:
    """Build the record of one message from what the router knows after answering it."""
    if msg is not None:
        header = {
            "sending_application": msg.sending_application,
            "sending_facility": msg.sending_facility,
            "message_type": msg.message_type,
            "control_id": msg.control_id,
            "version": msg.version,
        }
        charset = msg.charset
    else:
        peeked = peek_header(raw) or {}
        header = {k: peeked.get(k, "") for k in ("sending_application", "sending_facility")}
        header |= {k: peeked.get(k, "") for k in ("message_type", "control_id", "version")}
        charset = ""
    return Intake(
        raw=raw,
        peer=peer,
        received_at=received_at,
        ack=ack,
        outcome=notes.final_outcome(),
        charset=charset,
        error=None if notes.error is None else ErrorInfo.of(notes.error),
        warnings=tuple(WarningInfo.of(w) for w in notes.warnings),
        mapping_name=notes.mapping_name,
        mapping_version=notes.mapping_version,
        order_keys=tuple(notes.order_keys),
        entry_ids=tuple(notes.entry_ids),
        created=notes.created,
        removed=notes.removed,
        application_ack=notes.application_ack,
        **header,
    )


class MessageRecorder(Protocol):
    """Where the router reports each message once its ACK is known."""

    def record_steps(self, intake: Intake) -> Steps[str]:
        """Record one message (as ``broker.store.steps``); return its id in the log."""
        ...

    def applied_record(self, intake: Intake) -> LogRecord:
        """The record of an order message, for the script that applies its changes to write
        (its outcome and counts are set there)."""
        ...

    def written(self, message_id: str) -> None:
        """Told the id an :meth:`applied_record` got when the script wrote it."""
        ...


@dataclass(frozen=True)
class MessageSummary:
    """One row of a message listing (no message content)."""

    id: str
    received_at: float
    peer: str
    outcome: Outcome
    ack_code: str
    message_type: str
    control_id: str
    sending_application: str
    sending_facility: str
    error: ErrorInfo | None
    created: int
    removed: int
    on_error_list: bool
    resolution: str  # how it left the error list ("" while on it, or if never on it)
    warnings: int = 0  # how many warnings (ERR-4 W) its ACK carried


@dataclass(frozen=True)
class MessageRecord:
    """Everything the log holds about one message."""

    summary: MessageSummary
    raw: bytes
    ack: bytes
    version: str
    charset: str
    mapping_name: str
    mapping_version: str
    order_keys: tuple[str, ...]
    entry_ids: tuple[str, ...]
    application_ack: bytes = b""  # enhanced mode: the application ACK, not sent yet
    warnings: tuple[WarningInfo, ...] = ()  # told in its ACK (values cut to fit their VR)
    raw_size: int = 0  # the message's length as received; ``raw`` may be only its start

    @property
    def reprocess_of(self) -> str:
        """The id of the message this one is a reprocessing of ("" if it was received)."""
        peer = self.summary.peer
        return peer.removeprefix(REPROCESS_PEER) if peer.startswith(REPROCESS_PEER) else ""

    @property
    def kept_whole(self) -> bool:
        """Whether ``raw`` is the whole message (not only its first bytes)."""
        return self.raw_size <= len(self.raw)


@dataclass(frozen=True)
class MessageQuery:
    """A filter over the log; every field is optional and they combine with AND."""

    errors_only: bool = False  # only messages on the error list
    warnings_only: bool = False  # only messages answered with warnings
    outcome: Outcome | None = None
    message_type: str | None = None  # "ORM^O01"
    sending_application: str | None = None  # MSH-3 as received
    sending_facility: str | None = None  # MSH-4 as received
    control_id: str | None = None  # MSH-10, exact
    since: float | None = None  # received at or after (epoch seconds)
    until: float | None = None  # received at or before
    before_id: int | None = None  # paging: only ids lower than this
    limit: int = 50


@dataclass(frozen=True)
class MessagePage:
    """A page of a listing; pass ``next_before`` as ``before_id`` for the next page."""

    items: tuple[MessageSummary, ...]
    next_before: int | None
