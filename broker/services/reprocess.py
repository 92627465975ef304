"""Reprocess a logged message: its stored bytes through the router's own code path.

The message runs through :class:`broker.services.routing.HL7Router` with the
active mapping version, as a received message does (``broker.services.dispatch``:
decoded as it was from its sender), and is logged again as a reprocessing of the
original (``reprocess_of``). When it is accepted, the original leaves the error
list. Each reprocess is on the audit trail with the ACK code and the new id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from broker.audit import events as audit
from broker.audit.writer import NO_AUDIT, AuditSink
from broker.hl7.ack_summary import AckSummary, summarize_ack
from broker.services.dispatch import Dispatcher
from broker.services.messages import MessageConflict, unknown_message
from broker.services.routing import HL7Router, RouterConfig
from broker.store.mapping_live import LiveMappings
from broker.store.message_records import Intake, MessageRecord
from broker.store.msglog import MessageLog
from broker.store.steps import Steps
from broker.store.worklist import WorklistStore
from broker.worklist.model import LogRecord

__all__ = ["ReprocessService", "Reprocessed"]


@dataclass(frozen=True)
class Reprocessed:
    """The outcome of one reprocess."""

    original: MessageRecord
    new_id: str  # the id the reprocessed message got in the log; "" if it was not recorded
    ack: bytes  # the ACK the router made (not sent to anyone)
    summary: AckSummary
    resolved: bool  # the original was taken off the error list


class _Reprocessing:
    """Records the reprocessed message as such, and remembers the id it got."""

    def __init__(self, inner: MessageLog, original_id: str) -> None:
        self.inner = inner
        self.original_id = original_id
        self.message_id = ""

    def record_steps(self, intake: Intake) -> Steps[str]:
        inner = self.inner.record_steps(replace(intake, reprocess_of=self.original_id))
        self.message_id = yield from inner
        return self.message_id

    def applied_record(self, intake: Intake) -> LogRecord:
        return self.inner.applied_record(replace(intake, reprocess_of=self.original_id))

    def written(self, message_id: str) -> None:
        self.message_id = message_id


class ReprocessService:
    """Runs logged messages through intake again."""

    def __init__(
        self,
        log: MessageLog,
        store: Callable[[], WorklistStore],
        mappings: LiveMappings,
        config: RouterConfig,
        audit: AuditSink = NO_AUDIT,
    ) -> None:
        self._log = log
        self._store = store  # built on first use: an unknown id touches nothing else
        self._mappings = mappings
        self._config = config
        self._dispatch = Dispatcher(config.decoder, config.senders)
        self._audit = audit

    def __repr__(self) -> str:
        return f"ReprocessService({self._log!r})"

    def reprocess(self, message_id: str, *, by: str = "") -> Reprocessed:
        """Run message ``message_id`` through the router again (audited, ``by`` the user);
        ``UnknownMessage`` if unknown, ``MessageConflict`` if only its start was kept."""
        original = self._log.get(message_id)
        if original is None:
            raise unknown_message(message_id)
        if not original.kept_whole:
            raise MessageConflict(
                f"message {message_id}: only its first {len(original.raw)} of "
                f"{original.raw_size} bytes were kept (refused before any mapping); "
                "the sender must send it again"
            )
        self._mappings.load()  # the active version, as the broker maps with it
        registry = self._mappings.current()
        old = original.summary
        capture = _Reprocessing(self._log, old.id)
        # Decoded as from the address it came from: that sender's charset and zone apply.
        # And its orders' status goes back to that sender (their entries' origin).
        origin = self._config.senders.origin(old.peer)
        config = replace(self._config, decoder=self._dispatch.decoder_for(old.peer), origin=origin)
        router = HL7Router(self._store(), lambda: registry, config, recorder=capture)
        ack = router.handle(original.raw, f"reprocess of message {old.id}")
        summary = summarize_ack(ack)
        new_id = capture.message_id or "(not recorded)"
        outcome = audit.Outcome.SUCCESS if summary.accepted else audit.Outcome.FAILED
        details = {"ack": summary.code, "new_id": capture.message_id}
        self._audit.record(
            audit.AuditEvent(
                audit.AuditType.MESSAGE_REPROCESS,
                outcome,
                user=by,
                target=old.id,
                details=details,
            )
        )
        resolved = summary.accepted and self._log.resolve(
            old.id, f"reprocessed as message {new_id}, {summary.code}"
        )
        return Reprocessed(original, capture.message_id, ack, summary, resolved)
