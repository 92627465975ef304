"""The message log as an admin works with it: find, read, and dismiss from the error list.

Showing a message (its text holds patient data) is audited, ``message-read``;
a page of summaries is not (no patient data: ids, types, control ids, outcomes).

Every received HL7 message is kept with its ACK and outcome (``broker.store.msglog``);
messages refused for their content wait on the error list until they are
reprocessed (``broker.services.reprocess``) or dismissed. A dismissal is on the
audit trail, with who did it.
"""

from __future__ import annotations

from collections.abc import Callable

from broker.audit.events import AuditEvent, AuditType
from broker.audit.writer import NO_AUDIT, AuditSink
from broker.errors import BrokerError
from broker.store.message_records import MessagePage, MessageQuery, MessageRecord
from broker.store.msglog import MessageLog
from broker.store.worklist import WorklistStore

__all__ = [
    "MessageConflict",
    "MessageService",
    "UnknownMessage",
    "message_lines",
    "unknown_message",
]


class UnknownMessage(BrokerError):
    """The log does not hold this id (never did, or it is past retention)."""


class MessageConflict(BrokerError):
    """The message is not in a state the action makes sense in (e.g. dismissed already)."""


def unknown_message(message_id: str) -> UnknownMessage:
    """The error for an id the log does not hold."""
    return UnknownMessage(
        f"no message {message_id} in the message log (unknown id, or past retention)"
    )


def message_lines(data: bytes, charset: str) -> list[str]:
    """A message or ACK as text lines, one per segment: decoded with the codec intake
    used (``charset``), latin-1 when it was not decoded (every byte shows as itself)."""
    try:
        text = data.decode(charset or "latin-1")
    except (LookupError, UnicodeDecodeError):
        text = data.decode("latin-1")
    lines = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    return [line for line in lines if line]


class MessageService:
    """Reads and dismissals on one message log."""

    def __init__(
        self,
        log: MessageLog,
        audit: AuditSink = NO_AUDIT,
        store: Callable[[], WorklistStore] | None = None,
    ) -> None:
        self._log = log
        self._audit = audit
        self._store = store  # where a message's entries are looked up (entry_statuses)

    def __repr__(self) -> str:
        return f"MessageService({self._log!r})"

    def find(self, query: MessageQuery) -> MessagePage:
        """One page of messages, newest first."""
        return self._log.find(query)

    def count(self, *, errors_only: bool = False, warnings_only: bool = False) -> int:
        """How many messages the log holds (on the error list; answered with warnings)."""
        return self._log.count(errors_only=errors_only, warnings_only=warnings_only)

    def get(self, message_id: str) -> MessageRecord:
        """One message; :class:`UnknownMessage` for an unknown id."""
        record = self._log.get(message_id)
        if record is None:
            raise unknown_message(message_id)
        return record

    def show(self, message_id: str, *, view: str, by: str = "") -> MessageRecord:
        """One message as shown to someone (its text: patient data), so audited
        (``message-read``: ``by`` the user, the id, ``view`` and the bytes kept, never
        a value); :class:`UnknownMessage` for an unknown id (nothing shown, nothing
        recorded)."""
        record = self.get(message_id)
        details = {"view": view, "bytes": len(record.raw)}
        self._audit.record(
            AuditEvent(AuditType.MESSAGE_READ, user=by, target=message_id, details=details)
        )
        return record

    def entry_statuses(self, record: MessageRecord) -> dict[str, str | None]:
        """What became of the entries ``record`` wrote: each one's SPS status now, None
        for one no longer on the worklist (cancelled, replaced, purged)."""
        if self._store is None or not record.entry_ids:
            return {}
        return self._store().entry_statuses(record.entry_ids)

    def dismiss(self, message_id: str, *, by: str = "") -> None:
        """Take a message off the error list without reprocessing it (audited, ``by`` the
        user); :class:`MessageConflict` if it is not on the list (dismissed or resolved
        already, or never refused)."""
        if not self._log.dismiss(message_id):
            self.get(message_id)  # says so if the id is unknown
            raise MessageConflict(f"message {message_id} is not on the error list")
        self._audit.record(AuditEvent(AuditType.MESSAGE_DISMISS, user=by, target=message_id))
