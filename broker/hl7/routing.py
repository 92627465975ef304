"""From one decoded HL7 message to one ACK: header checks, dedup, mapping, store.

Rules (HL7 v2.5.1 §2.9, IHE RAD TF-2 RAD-4/RAD-13):
- the MSH is checked before any business logic (type and event supported);
- a message already applied under the same (MSH-3, MSH-4, MSH-10) is answered
  with the very ACK it got the first time and changes nothing; the same
  identity with other content is refused and changes nothing;
- AA only after the store's atomic update has returned (and so, with the
  embedded Redis at ``appendfsync always``, after it is on disk);
- a store failure is answered AR (the sender should retry later), a content
  problem AE with an ERR segment naming the field.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from broker.errors import HL7Error, StoreError
from broker.hl7.ack import AckContext, build_ack
from broker.hl7.codes import AckCode, ErrorCode
from broker.hl7.message import ParsedMessage, decode, peek_header
from broker.hl7.validate import HeaderPolicy, check_header
from broker.mapping.engine import map_message
from broker.mapping.registry import MappingRegistry
from broker.worklist.model import DedupKey, DedupRecord
from broker.worklist.store import WorklistStore

__all__ = ["HL7Router", "RouterConfig"]

log = logging.getLogger(__name__)

_CODECS_FOR_ACK = {"ascii": "ascii"}


@dataclass(frozen=True)
class RouterConfig:
    """The settings the router needs."""

    default_charset: str = "UNICODE UTF-8"
    application: str = "MWL_BROKER"
    facility: str = ""
    processing_ids: frozenset[str] = frozenset({"P"})
    versions: frozenset[str] = frozenset()  # empty: any version
    accepted_senders: frozenset[str] = frozenset()  # empty: any sender


def context_from_message(msg: ParsedMessage) -> AckContext:
    """ACK context from a decoded message."""
    trigger = msg.message_type.split("^", 1)[1] if "^" in msg.message_type else ""
    charset_field = _msh18(msg)
    return AckContext(
        field_separator=msg.field_separator,
        encoding_characters=msg.encoding_characters,
        sending_application=msg.sending_application,
        sending_facility=msg.sending_facility,
        receiving_application=msg.receiving_application,
        receiving_facility=msg.receiving_facility,
        control_id=msg.control_id,
        trigger_event=trigger,
        processing_id=msg.processing_id,
        version=msg.version,
        charset_field=charset_field,
        codec=_CODECS_FOR_ACK.get(msg.charset, msg.charset),
    )


def _msh18(msg: ParsedMessage) -> str:
    segment = msg.text.split("\r", 1)[0]
    parts = segment.split(msg.field_separator)
    return parts[17] if len(parts) > 17 else ""


def context_from_raw(raw: bytes) -> AckContext:
    """Best-effort ACK context for a message that could not be decoded."""
    header = peek_header(raw) or {}
    return AckContext(
        field_separator=header.get("field_separator", "|") or "|",
        encoding_characters=header.get("encoding_characters", "^~\\&") or "^~\\&",
        sending_application=header.get("sending_application", ""),
        sending_facility=header.get("sending_facility", ""),
        receiving_application=header.get("receiving_application", ""),
        receiving_facility=header.get("receiving_facility", ""),
        control_id=header.get("control_id", ""),
        trigger_event=header.get("trigger_event", ""),
        processing_id=header.get("processing_id", "P") or "P",
        version=header.get("version", "2.5.1") or "2.5.1",
        codec="latin-1",
    )


class HL7Router:
    """Turns one message into one ACK; synchronous (run it off the event loop)."""

    def __init__(
        self,
        store: WorklistStore,
        registry: Callable[[], MappingRegistry],
        config: RouterConfig,
    ) -> None:
        self._store = store
        self._registry = registry
        self._config = config

    def _ack(self, ctx: AckContext, code: AckCode, error: HL7Error | None = None) -> bytes:
        return build_ack(
            ctx,
            code,
            error=error,
            application=self._config.application,
            facility=self._config.facility,
        )

    def reject(self, raw: bytes, reason: str) -> bytes:
        """A NAK for a message the transport could not hand over whole (AR 207)."""
        error = HL7Error(AckCode.REJECT, ErrorCode.APPLICATION_INTERNAL_ERROR, None, reason)
        return self._ack(context_from_raw(raw), AckCode.REJECT, error)

    def handle(self, raw: bytes, peer: str) -> bytes:
        """Process one message and return the ACK to send."""
        started = time.perf_counter()
        try:
            msg = decode(raw, self._config.default_charset)
        except HL7Error as e:
            log.info(
                "[%s] undecodable message answered %s %s at %s",
                peer,
                e.ack_code.value,
                e.err_code.value,
                e.location,
            )
            return self._ack(context_from_raw(raw), e.ack_code, e)
        ctx = context_from_message(msg)
        try:
            ack, summary = self._process(msg, ctx, raw)
        except HL7Error as e:
            ack, summary = (
                self._ack(ctx, e.ack_code, e),
                f"{e.ack_code.value} {e.err_code.value} {e.location or ''}",
            )
        except StoreError as e:
            log.warning("[%s] msg %s: %s", peer, msg.control_id, e)
            error = HL7Error(
                AckCode.REJECT,
                ErrorCode.APPLICATION_INTERNAL_ERROR,
                None,
                "worklist store unavailable; nothing was stored, please resend later",
            )
            ack, summary = self._ack(ctx, AckCode.REJECT, error), "AR 207 store unavailable"
        except Exception:
            log.exception("[%s] msg %s: internal error", peer, msg.control_id)
            error = HL7Error(
                AckCode.ERROR,
                ErrorCode.APPLICATION_INTERNAL_ERROR,
                None,
                "internal error in the broker; nothing was stored",
            )
            ack, summary = self._ack(ctx, AckCode.ERROR, error), "AE 207 internal error"
        log.info(
            "[%s] msg %s %s: %s (%.1f ms)",
            peer,
            msg.control_id,
            msg.message_type,
            summary,
            (time.perf_counter() - started) * 1000,
        )
        return ack

    def _process(self, msg: ParsedMessage, ctx: AckContext, raw: bytes) -> tuple[bytes, str]:
        registry = self._registry()
        c = self._config
        policy = HeaderPolicy(
            registry.supported_types(), c.processing_ids, c.versions, c.accepted_senders
        )
        check_header(msg, policy)
        spec = registry.for_message(msg.message_type)
        assert spec is not None  # check_header refused every type without a mapping
        key = DedupKey(msg.sending_application, msg.sending_facility, msg.control_id)
        digest = hashlib.sha256(raw).hexdigest()
        previous = self._store.dedup_lookup(key)
        if previous is not None:
            return self._answer_duplicate(previous, digest, ctx)
        result = map_message(msg.message, spec, message_type=msg.message_type)
        ack = self._ack(ctx, AckCode.ACCEPT)
        outcome = self._store.apply(result.changes, (key, DedupRecord(digest, ack)))
        if outcome.duplicate is not None:  # a resend raced the original
            return self._answer_duplicate(outcome.duplicate, digest, ctx)
        return ack, f"AA, {outcome.created} entries written, {outcome.removed} removed"

    def _answer_duplicate(
        self, previous: DedupRecord, digest: str, ctx: AckContext
    ) -> tuple[bytes, str]:
        if previous.digest == digest:
            return previous.ack, "resend of an applied message, same ACK, nothing changed"
        raise HL7Error(
            AckCode.ERROR,
            ErrorCode.DUPLICATE_KEY_IDENTIFIER,
            "MSH-10",
            f"message control ID {ctx.control_id} was already used by a different message "
            "from this sender; nothing changed",
        )
