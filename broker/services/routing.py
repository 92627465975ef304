"""From one decoded HL7 message to one ACK: header checks, dedup, mapping, store.

Rules (HL7 v2.5.1 §2.9, IHE RAD TF-2 RAD-4/RAD-13):
- the MSH is checked before any business logic (type and event supported);
- a message already applied under the same (MSH-3, MSH-4, MSH-10) is answered
  with the very ACK it got the first time and changes nothing; the same
  identity with other content is refused and changes nothing;
- AA only after the store's atomic update (the changes, the dedup record and the
  message-log record in one call) has returned (and so, with the embedded Redis
  at ``appendfsync always``, after it is on disk);
- a store failure is answered AR (the sender should retry later), a content
  problem AE with an ERR segment naming the field;
- a display value cut to fit its VR (``broker.mapping.overflow``) is told in
  the AA, one ERR of severity W per field, logged (field, attribute, lengths;
  never the value) and kept with the message in the message log;
- in enhanced mode (MSH-15/16 valued, HL7 v2.5.1 §2.9.3) the answer is the
  accept ACK CA/CE/CR under MSH-15's condition (see ``ackmode``); the
  application ACK MSH-16 asks for is recorded in the message log, not sent.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from broker.audit.writer import NO_AUDIT, AuditSink
from broker.common.clock import SYSTEM_CLOCK, Clock
from broker.common.correlation import correlated, fields
from broker.common.metrics import BrokerMetrics
from broker.errors import HL7Error, MappingError, StoreError, StoreFullError
from broker.hl7.ack import AckContext, AckWarning, context_from_message, context_from_raw
from broker.hl7.ackmode import Responder
from broker.hl7.codes import AckCode, ErrorCode
from broker.hl7.message import MessageDecoder, ParsedMessage
from broker.hl7.senders import SenderSet
from broker.mapping.engine import map_message
from broker.mapping.patient import map_patient_message
from broker.mapping.patient_spec import PatientSpec
from broker.mapping.registry import MappingRegistry
from broker.mapping.spec import MappingSpec
from broker.services.admission import admit
from broker.services.dispatch import Dispatcher, SitePolicy
from broker.services.intake_watch import IntakeMetrics, message_correlation, warned
from broker.store import steps
from broker.store.message_records import Intake, IntakeNotes, MessageRecorder, Outcome, intake_from
from broker.store.patients import PatientStore
from broker.store.steps import Steps
from broker.store.worklist import WorklistStore
from broker.worklist.model import DedupKey, DedupRecord, LogRecord
from broker.worklist.ordering import MessageTime, message_time

__all__ = ["HL7Router", "RouterConfig"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Arrival:
    """A message as it came in: its bytes, the connection and when (epoch seconds)."""

    raw: bytes
    peer: str
    received: float


@dataclass(frozen=True)
class RouterConfig:
    """The settings the router needs."""

    decoder: MessageDecoder = field(default_factory=MessageDecoder)  # charsets, MSH-7 zones
    application: str = "MWL_BROKER"
    facility: str = ""
    processing_ids: frozenset[str] = frozenset({"P"})
    versions: frozenset[str] = frozenset()  # empty: any version
    accepted_senders: frozenset[str] = frozenset()  # empty: any sender
    senders: SenderSet = field(default_factory=SenderSet)  # addresses and their MSH-3/MSH-4
    max_clock_skew: float = 600.0  # seconds MSH-7 may lie ahead of our clock; 0: no check
    clock: Clock = SYSTEM_CLOCK  # arrival times, MSH-7 of ACKs, the skew check
    audit: AuditSink = NO_AUDIT  # where refused messages are recorded (``admission``)
    origin: str = ""  # the sender orders come from when the peer does not say (a reprocess)
    metrics: BrokerMetrics | None = None  # where answered messages are counted


class HL7Router:
    """Turns one message into one ACK; synchronous (run it off the event loop)."""

    def __init__(
        self,
        store: WorklistStore,
        registry: Callable[[], MappingRegistry],
        config: RouterConfig,
        recorder: MessageRecorder | None = None,
    ) -> None:
        self._store = store
        self._patients = PatientStore(store)
        self._registry = registry
        self._config = config
        self._recorder = recorder
        self._responder = Responder(config.application, config.facility, config.clock)
        site = SitePolicy(config.processing_ids, config.versions, config.accepted_senders)
        self._dispatch = Dispatcher(config.decoder, config.senders, site)
        self._metrics = IntakeMetrics(config.metrics, config.senders)
        self._pseudonym = store.keys.pseudonym if store.keys.keyed else None

    def _ack(
        self,
        ctx: AckContext,
        code: AckCode,
        error: HL7Error | None = None,
        warnings: tuple[AckWarning, ...] = (),
    ) -> bytes:
        """What goes back on the connection for outcome ``code`` (``ackmode.Responder``)."""
        return self._responder.answer(ctx, code, error, warnings)

    def _application_ack(self, ctx: AckContext, notes: IntakeNotes) -> bytes:
        """The application ACK MSH-16 asks for (HL7 v2.5.1 §2.9.3), or ``b""``.

        In enhanced mode it is a message of its own to the sender; the broker has
        no outbound HL7 connection yet, so it is only kept in the message log.
        """
        return self._responder.application_ack(ctx, notes.error, notes.warnings)

    def reject(self, raw: bytes, reason: str, peer: str) -> bytes:
        """A NAK for a message the transport could not hand over whole (AR 207)."""
        error = HL7Error.internal(AckCode.REJECT, reason)
        ack = self._ack(context_from_raw(raw), AckCode.REJECT, error)
        notes = IntakeNotes()
        notes.failed(error, Outcome.REJECTED)
        arrival = _Arrival(raw, peer, self._config.clock.now())
        steps.run(self._store.client, self._record(arrival, None, ack, notes))
        return ack

    def handle(self, raw: bytes, peer: str) -> bytes:
        """Process one message and return the ACK to send."""
        return steps.run(self._store.client, self.handle_steps(raw, peer))

    def answer(self, raw: bytes, peer: str, result: object) -> bytes:
        """The ACK for a message from what its :meth:`handle_steps` returned or raised."""
        if isinstance(result, bytes):
            return result
        # handle_steps answers every failure itself; this is a last resort
        log.error("[%s] message not processed: %r", peer, result)
        error = HL7Error.internal(AckCode.ERROR, "internal error")
        return self._ack(context_from_raw(raw), AckCode.ERROR, error)

    def handle_steps(self, raw: bytes, peer: str) -> Steps[bytes]:
        """:meth:`handle` as steps (``broker.store.steps``), its log lines with the
        message's correlation ID (``broker.common.correlation``); never raises."""
        correlation_id = message_correlation(raw, self._pseudonym)
        return correlated(correlation_id, self._handle_steps(raw, peer))

    def _handle_steps(self, raw: bytes, peer: str) -> Steps[bytes]:
        started, notes = time.perf_counter(), IntakeNotes()
        arrival = _Arrival(raw, peer, self._config.clock.now())
        try:
            msg = self._dispatch.decode(raw, peer)
        except HL7Error as e:
            ack = yield from self._undecodable(arrival, e, notes)
            self._metrics.answered("", peer, ack)
            return ack
        ctx = context_from_message(msg)
        try:
            ack, summary = yield from self._process(msg, ctx, arrival, notes)
        except Exception as e:  # every failure is answered, with what it means for the sender
            ack, summary = self._failure(ctx, (msg, peer), e, notes)
        ms = (time.perf_counter() - started) * 1000
        log.info(
            "[%s] msg %s %s: %s (%.1f ms)",
            *(peer, msg.control_id, msg.message_type, summary, ms),
            extra=fields(entries=notes.entry_ids),
        )
        if not notes.logged:  # an applied order was recorded with its changes
            notes.application_ack = self._application_ack(ctx, notes)
            yield from self._record(arrival, msg, ack, notes)
        self._metrics.answered(msg.message_type, peer, ack)
        return ack

    def _undecodable(self, arrival: _Arrival, error: HL7Error, notes: IntakeNotes) -> Steps[bytes]:
        """The answer to bytes that could not be decoded (charset, header), recorded."""
        code, err = error.ack_code.value, error.err_code.value
        log.info(
            "[%s] undecodable message answered %s %s at %s", arrival.peer, code, err, error.location
        )
        notes.failed(error)
        raw_ctx = context_from_raw(arrival.raw)
        ack = self._ack(raw_ctx, error.ack_code, error)
        notes.application_ack = self._application_ack(raw_ctx, notes)
        yield from self._record(arrival, None, ack, notes)
        return ack

    def _failure(
        self,
        ctx: AckContext,
        source: tuple[ParsedMessage, str],
        error: Exception,
        notes: IntakeNotes,
    ) -> tuple[bytes, str]:
        """The ACK and log summary for a message whose processing raised ``error``: its
        own answer for an HL7Error, AR for the store, AE 207 for a fault of the broker."""
        msg, peer = source
        if isinstance(error, HL7Error):
            notes.failed(error)
            if isinstance(error, MappingError):
                self._metrics.mapping_failed(error, self._registry())
            summary = f"{error.ack_code.value} {error.err_code.value} {error.location or ''}"
            return self._ack(ctx, error.ack_code, error), summary
        if isinstance(error, StoreFullError):
            log.error(
                "[%s] msg %s refused: %s; purge old entries (mwl-broker purge) or give Redis "
                "more memory (redis_max_memory for the embedded one)",
                peer,
                msg.control_id,
                error,
            )
            refusal = HL7Error.internal(
                AckCode.REJECT, "worklist store full; nothing was stored, please resend later"
            )
            notes.failed(refusal, Outcome.STORE_FAILURE)
            return self._ack(ctx, AckCode.REJECT, refusal), "AR 207 store full"
        if isinstance(error, StoreError):
            log.warning("[%s] msg %s: %s", peer, msg.control_id, error)
            refusal = HL7Error.internal(
                AckCode.REJECT,
                "worklist store unavailable; nothing was stored, please resend later",
            )
            notes.failed(refusal, Outcome.STORE_FAILURE)
            return self._ack(ctx, AckCode.REJECT, refusal), "AR 207 store unavailable"
        log.error("[%s] msg %s: internal error", peer, msg.control_id, exc_info=error)
        fault = HL7Error.internal(AckCode.ERROR, "internal error in the broker; nothing was stored")
        notes.failed(fault, Outcome.INTERNAL_ERROR)
        return self._ack(ctx, AckCode.ERROR, fault), "AE 207 internal error"

    def _record(
        self, arrival: _Arrival, msg: ParsedMessage | None, ack: bytes, notes: IntakeNotes
    ) -> Steps[None]:
        """Hand the message to the message log; a log failure never changes the ACK."""
        if self._recorder is None:
            return
        try:
            yield from self._recorder.record_steps(self._intake(arrival, msg, ack, notes))
        except Exception as e:  # the ACK is decided; the log is a record, not a gate
            control_id = msg.control_id if msg is not None else "?"
            log.warning(
                "[%s] msg %s: not recorded in the message log: %s", arrival.peer, control_id, e
            )

    @staticmethod
    def _intake(
        arrival: _Arrival, msg: ParsedMessage | None, ack: bytes, notes: IntakeNotes
    ) -> Intake:
        return intake_from(arrival.raw, arrival.peer, arrival.received, msg, ack, notes)

    def _process(
        self, msg: ParsedMessage, ctx: AckContext, arrival: _Arrival, notes: IntakeNotes
    ) -> Steps[tuple[bytes, str]]:
        registry = self._registry()
        c = self._config
        policy = self._dispatch.policy(registry)
        sent = message_time(msg.message_datetime, msg.zone)  # None: no ordering information
        skew = (sent, arrival.received, c.max_clock_skew)  # MSH-7, our time, the limit
        admit(msg, arrival.peer, policy, c.senders, skew, c.audit)
        spec, patient_spec = self._dispatch.route(msg, registry)
        key = DedupKey(msg.sending_application, msg.sending_facility, msg.control_id)
        digest = hashlib.sha256(arrival.raw).hexdigest()
        if patient_spec is not None:
            previous = yield from self._store.dedup_lookup_steps(key)
            if previous is not None:
                notes.duplicate = True
                return (yield from self._answer_duplicate(previous, digest, ctx))
            identity = (key, digest, arrival)
            return (yield from self._process_patient(msg, ctx, patient_spec, identity, notes, sent))
        assert spec is not None  # check_header refused every type without a mapping
        order, mapping = (key, digest, arrival), (spec, registry.number)
        return (yield from self._process_order(msg, ctx, mapping, order, notes, sent))

    def _process_order(
        self,
        msg: ParsedMessage,
        ctx: AckContext,
        mapping: tuple[MappingSpec, int | None],
        identity: tuple[DedupKey, str, _Arrival],
        notes: IntakeNotes,
        sent: MessageTime | None,
    ) -> Steps[tuple[bytes, str]]:
        """An order (IHE RAD-4/RAD-13), mapped first: its dedup lookup shares the patient read.

        ``mapping``: its spec and published version's number; ``identity``: the dedup key,
        the message digest and the message as it came in.
        """
        (spec, number), (key, digest, arrival) = mapping, identity
        peer = arrival.peer
        try:
            result = map_message(msg.segments, spec, message_type=msg.message_type, peer=peer)
        except Exception:
            # A resend is answered with its stored ACK, whatever the mapping makes of it now.
            previous = yield from self._store.dedup_lookup_steps(key)
            if previous is None:
                raise
            notes.duplicate = True
            return (yield from self._answer_duplicate(previous, digest, ctx))
        origin = self._config.origin or self._config.senders.origin(peer)  # status goes there
        changes = tuple(replace(ch, origin=origin, mapping_version=number) for ch in result.changes)
        read = yield from self._patients.read_order_steps(changes, key)
        if read.previous is not None:
            notes.duplicate = True
            return (yield from self._answer_duplicate(read.previous, digest, ctx))
        notes.mapped(result, self._store.keys.entry_id)
        ack = self._ack(ctx, AckCode.ACCEPT, warnings=notes.warnings)
        record = DedupRecord(digest, ack)
        outcome = yield from self._patients.apply_order_steps(
            changes,
            (key, record),
            sent,
            read,
            self._applied_record(arrival, (msg, ctx), ack, notes),
        )
        notes.applied(outcome)
        if outcome.logged is not None and self._recorder is not None:
            self._recorder.written(outcome.logged)
        if outcome.duplicate is not None:  # a resend raced the original
            return (yield from self._answer_duplicate(outcome.duplicate, digest, ctx))
        summary = f"AA, {outcome.created} entries written, {outcome.removed} removed"
        summary += warned(peer, msg.control_id, notes.warnings)
        if outcome.skipped - outcome.stale:
            summary += f", {outcome.skipped - outcome.stale} order(s) already over left unchanged"
        if outcome.stale:
            summary += (
                f", {outcome.stale} order change(s) older (MSH-7) than the order's state skipped"
            )
        return ack, summary

    def _applied_record(
        self,
        arrival: _Arrival,
        message: tuple[ParsedMessage, AckContext],
        ack: bytes,
        notes: IntakeNotes,
    ) -> LogRecord | None:
        """The log record an order's apply script writes if it applies the changes."""
        if self._recorder is None:
            return None
        msg, ctx = message
        notes.application_ack = self._application_ack(ctx, notes)
        try:
            return self._recorder.applied_record(self._intake(arrival, msg, ack, notes))
        except Exception as e:  # the log is a record, not a gate: it is tried again after
            log.warning(
                "[%s] msg %s: message-log record not built: %s", arrival.peer, msg.control_id, e
            )
            return None

    def _process_patient(
        self,
        msg: ParsedMessage,
        ctx: AckContext,
        spec: PatientSpec,
        identity: tuple[DedupKey, str, _Arrival],
        notes: IntakeNotes,
        sent: MessageTime | None,
    ) -> Steps[tuple[bytes, str]]:
        """An ADT message (IHE RAD-1/RAD-12): same dedup, ACK and error rules as orders.

        ``identity`` is the dedup key, the message digest and the message as it came in.
        """
        key, digest, arrival = identity
        result = map_patient_message(msg.segments, spec, message_type=msg.message_type)
        notes.mapped(result, self._store.keys.entry_id)
        ack = self._ack(ctx, AckCode.ACCEPT, warnings=notes.warnings)
        dedup = (key, DedupRecord(digest, ack))
        record = self._applied_record(arrival, (msg, ctx), ack, notes)
        outcome = yield from self._patients.apply_steps(result, dedup, sent, record)
        notes.logged = outcome.logged is not None
        if outcome.logged is not None and self._recorder is not None:
            self._recorder.written(outcome.logged)
        if outcome.duplicate is not None:  # a resend raced the original
            notes.duplicate = True
            return (yield from self._answer_duplicate(outcome.duplicate, digest, ctx))
        notes.stale = outcome.stale
        summary = f"AA, {result.action.value}: {outcome.updated} entries updated, "
        summary += f"{outcome.moved} moved" + warned(arrival.peer, msg.control_id, notes.warnings)
        if outcome.stale:  # older (MSH-7) than the patient's newest ADT
            summary += f", {outcome.stale} patient change(s) older than the patient's skipped"
        return ack, summary

    def _answer_duplicate(
        self, previous: DedupRecord, digest: str, ctx: AckContext
    ) -> Steps[tuple[bytes, str]]:
        if previous.digest == digest:
            yield from self._store.confirm_steps()  # with replicas: they have it, or AR
            return previous.ack, "resend of an applied message, same ACK, nothing changed"
        raise HL7Error(
            AckCode.ERROR,
            ErrorCode.DUPLICATE_KEY_IDENTIFIER,
            "MSH-10",
            f"message control ID {ctx.control_id} was already used by a different message "
            "from this sender; nothing changed",
        )
