"""The message log as an admin works with it: find, read, and dismiss from the error list.

Every received HL7 message is kept with its ACK and outcome (``broker.store.msglog``);
messages refused for their content wait on the error list until they are
reprocessed (``broker.services.reprocess``) or dismissed. A dismissal is on the
audit trail.
"""

from __future__ import annotations

from broker.audit.events import AuditEvent, AuditType
from broker.audit.writer import NO_AUDIT, AuditSink
from broker.errors import BrokerError
from broker.store.message_records import MessagePage, MessageQuery, MessageRecord
from broker.store.msglog import MessageLog

__all__ = ["MessageService", "unknown_message"]


def unknown_message(message_id: str) -> BrokerError:
    """The error for an id the log does not hold."""
    return BrokerError(
        f"no message {message_id} in the message log (unknown id, or past retention)"
    )


class MessageService:
    """Reads and dismissals on one message log."""

    def __init__(self, log: MessageLog, audit: AuditSink = NO_AUDIT) -> None:
        self._log = log
        self._audit = audit

    def __repr__(self) -> str:
        return f"MessageService({self._log!r})"

    def find(self, query: MessageQuery) -> MessagePage:
        """One page of messages, newest first."""
        return self._log.find(query)

    def count(self, *, errors_only: bool = False, warnings_only: bool = False) -> int:
        """How many messages the log holds (on the error list; answered with warnings)."""
        return self._log.count(errors_only=errors_only, warnings_only=warnings_only)

    def get(self, message_id: str) -> MessageRecord:
        """One message; BrokerError for an unknown id."""
        record = self._log.get(message_id)
        if record is None:
            raise unknown_message(message_id)
        return record

    def dismiss(self, message_id: str) -> None:
        """Take a message off the error list without reprocessing it (audited)."""
        if not self._log.dismiss(message_id):
            self.get(message_id)  # says so if the id is unknown
            raise BrokerError(f"message {message_id} is not on the error list")
        self._audit.record(AuditEvent(AuditType.MESSAGE_DISMISS, target=message_id))
