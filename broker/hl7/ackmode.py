"""Original or enhanced acknowledgment mode, decided from MSH-15 and MSH-16.

HL7 v2.5.1 §2.9.2 (original mode) and §2.9.3 (enhanced mode): a message whose
MSH-15 (accept acknowledgment type) and MSH-16 (application acknowledgment
type) are both empty is acknowledged in original mode, one ACK with MSA-1
AA/AE/AR. If either is valued the sender asks for enhanced mode: an *accept*
acknowledgment (MSA-1 CA/CE/CR, HL7 table 0008) once the message is committed
to safe storage, under the condition of MSH-15, and an *application*
acknowledgment (AA/AE/AR) under the condition of MSH-16, sent later as a
message of its own (HL7 table 0155: AL always, NE never, ER error/reject only,
SU successful completion only).

The broker's commit is the worklist store's atomic update (as for AA in
original mode), so the accept ACK carries the same outcome as the original
ACK would: AA→CA, AE→CE, AR→CR, with the same ERR segment.

When MSH-15 says no positive accept ACK is due (NE, or ER on success), the
MLLP transport still answers the block: HL7 Transport Specification MLLP
Release 2, §1.2.1-1.2.2, makes a commit acknowledgement block
(``<VT><ACK><FS><CR>``) mandatory for the destination and keeps MLLP unaware of
HL7 content, and the sender must not send more before it has one. A refusal
(CE/CR) is always sent as an HL7 ACK with its ERR segment, even under NE or
SU: nothing is refused silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from broker.common.clock import SYSTEM_CLOCK, Clock
from broker.errors import HL7Error
from broker.hl7.ack import AckContext, AckWarning, build_ack
from broker.hl7.codes import AckCode

__all__ = [
    "MLLP_COMMIT_ACK",
    "MLLP_COMMIT_NAK",
    "AckCondition",
    "AckMode",
    "Responder",
]

MLLP_COMMIT_ACK = b"\x06"
"""Content of the MLLP Release 2 commit acknowledgement block (framed by the server)."""
MLLP_COMMIT_NAK = b"\x15"
"""Content of the MLLP Release 2 negative commit acknowledgement block."""

_TO_ACCEPT_CODE = {
    AckCode.ACCEPT: AckCode.COMMIT_ACCEPT,
    AckCode.ERROR: AckCode.COMMIT_ERROR,
    AckCode.REJECT: AckCode.COMMIT_REJECT,
}


class AckCondition(StrEnum):
    """HL7 table 0155, accept/application acknowledgment conditions."""

    ALWAYS = "AL"
    NEVER = "NE"
    ERROR_ONLY = "ER"
    SUCCESS_ONLY = "SU"

    @classmethod
    def parse(cls, value: str) -> AckCondition:
        """Table 0155 value of MSH-15/16; empty or unknown reads as AL.

        Table 0155 names no default for an empty field in enhanced mode; AL
        is the reading that never withholds an answer the sender may wait for.
        """
        try:
            return cls(value.strip().upper())
        except ValueError:
            return cls.ALWAYS

    def applies(self, code: AckCode) -> bool:
        """Whether an acknowledgment with outcome ``code`` is due under this condition."""
        success = code in (AckCode.ACCEPT, AckCode.COMMIT_ACCEPT)
        if self is AckCondition.NEVER:
            return False
        if self is AckCondition.ERROR_ONLY:
            return not success
        if self is AckCondition.SUCCESS_ONLY:
            return success
        return True


@dataclass(frozen=True)
class AckMode:
    """The acknowledgments a sender asked for (HL7 v2.5.1 §2.9.2-2.9.3)."""

    enhanced: bool
    accept: AckCondition = AckCondition.ALWAYS
    application: AckCondition = AckCondition.ALWAYS

    @classmethod
    def of(cls, msh15: str, msh16: str) -> AckMode:
        """Enhanced mode iff MSH-15 or MSH-16 is valued (HL7 v2.5.1 §2.9.3)."""
        if not msh15.strip() and not msh16.strip():
            return cls(enhanced=False)
        return cls(True, AckCondition.parse(msh15), AckCondition.parse(msh16))

    def accept_code(self, code: AckCode) -> AckCode:
        """The accept ACK's MSA-1 for an original-mode outcome: AA→CA, AE→CE, AR→CR."""
        return _TO_ACCEPT_CODE.get(code, code) if self.enhanced else code

    def sends_accept_ack(self, code: AckCode) -> bool:
        """Whether an HL7 ACK goes back on the connection.

        Always in original mode. In enhanced mode MSH-15 may withhold a
        positive accept ACK (NE, ER), but a refusal (CE/CR) is always sent as
        an HL7 ACK with its ERR segment, whatever MSH-15 says: a message the
        broker did not store must never be answered by a bare commit block,
        which a sender reads as "received".
        """
        success = code in (AckCode.ACCEPT, AckCode.COMMIT_ACCEPT)
        return not self.enhanced or not success or self.accept.applies(code)

    def wants_application_ack(self, code: AckCode) -> bool:
        """Whether MSH-16 asks for a later application ACK for this outcome."""
        return self.enhanced and self.application.applies(code)


@dataclass(frozen=True)
class Responder:
    """Builds the answers to a message in the mode its sender asked for; ``application`` and
    ``facility`` are the broker's MSH-3 and MSH-4, MSH-7 is ``clock``'s time."""

    application: str = "MWL_BROKER"
    facility: str = ""
    clock: Clock = SYSTEM_CLOCK

    def answer(
        self,
        ctx: AckContext,
        code: AckCode,
        error: HL7Error | None = None,
        warnings: Sequence[AckWarning] = (),
    ) -> bytes:
        """What goes back on the connection for outcome ``code`` (original-mode code).

        Original mode: the ACK itself. Enhanced mode: the accept ACK (CA/CE/CR,
        same ERR, warnings included, as it may be all the sender gets); when
        MSH-15 withholds a positive one (NE, ER), an MLLP Release 2 commit
        block. Refusals always get the ACK.
        """
        mode = AckMode.of(ctx.accept_ack_type, ctx.application_ack_type)
        if not mode.sends_accept_ack(code):
            return MLLP_COMMIT_ACK
        return self._build(ctx, mode.accept_code(code), error, warnings)

    def application_ack(
        self, ctx: AckContext, error: HL7Error | None, warnings: Sequence[AckWarning]
    ) -> bytes:
        """The application ACK MSH-16 asks for (HL7 v2.5.1 §2.9.3), or ``b""``: AA with the
        warnings, or the error's AE/AR."""
        code = AckCode.ACCEPT if error is None else error.ack_code
        mode = AckMode.of(ctx.accept_ack_type, ctx.application_ack_type)
        if not mode.wants_application_ack(code):
            return b""
        return self._build(ctx, code, error, warnings if error is None else ())

    def _build(
        self,
        ctx: AckContext,
        code: AckCode,
        error: HL7Error | None,
        warnings: Sequence[AckWarning],
    ) -> bytes:
        return build_ack(
            ctx,
            code,
            error=error,
            warnings=warnings,
            application=self.application,
            facility=self.facility,
            now=datetime.fromtimestamp(self.clock.now(), UTC),
        )
