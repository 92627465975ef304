"""The answers of ``/api/messages`` (``broker.admin.messages``): pydantic models, and how
the message log's records become them.

A message's text is shown as ``mwl-broker messages show`` shows it: decoded with the
character set intake decoded it with (latin-1 when it was not decoded), one line per
segment. The bytes themselves are ``GET /api/messages/{id}/raw``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from broker.audit.events import iso_time
from broker.services.messages import message_lines
from broker.services.reprocess import Reprocessed
from broker.store.message_records import ErrorInfo, MessageRecord, MessageSummary

__all__ = [
    "MessageDetail",
    "MessagePageOut",
    "MessageSummaryOut",
    "ReprocessOut",
    "detail_of",
    "reprocessed_of",
    "summary_of",
]


class ErrorOut(BaseModel):
    """The error answered in the ACK: MSA-1, ERR-3 (table 0357), ERR-2 (where), the text."""

    ack_code: str
    code: str
    location: str
    text: str


class WarningOut(BaseModel):
    """A warning answered in an accepting ACK (ERR-4 W): a value cut to fit."""

    code: str
    location: str
    text: str


class EntryOut(BaseModel):
    """A worklist entry the message wrote, and what it is now."""

    id: str
    on_worklist: bool
    status: str | None = Field(description="its SPS status now; null once it is gone")


class MessageSummaryOut(BaseModel):
    id: str
    received_at: float = Field(description="seconds since the epoch")
    received: str = Field(description="ISO 8601, UTC")
    peer: str = Field(description="the sender's address, or 'reprocess of message N'")
    sending_application: str
    sending_facility: str
    message_type: str
    control_id: str
    outcome: str
    ack_code: str
    error: ErrorOut | None
    warnings: int
    created: int
    removed: int
    on_error_list: bool
    dismissed: bool
    resolution: str = Field(description="how it left the error list; empty if it did not")


class MessagePageOut(BaseModel):
    items: list[MessageSummaryOut]
    next: int | None = Field(description="pass as before= for the next page; null at the end")


class MessageDetail(MessageSummaryOut):
    version: str
    charset: str = Field(description="the codec intake decoded it with; empty if it was not")
    mapping_name: str
    mapping_version: str
    order_keys: list[str]
    entries: list[EntryOut]
    warning_list: list[WarningOut]
    ack: list[str] = Field(description="the ACK sent, one line per segment")
    application_ack: list[str] = Field(description="enhanced mode: the application ACK due")
    text: list[str] = Field(description="the message as decoded, one line per segment")
    raw_size: int = Field(description="its length as received, in bytes")
    kept_bytes: int = Field(description="how many of them the log kept (raw)")
    reprocess_of: str | None = Field(description="the message this one reprocessed")


class ReprocessOut(BaseModel):
    id: str = Field(description="the message reprocessed")
    new_id: str | None = Field(description="the id its reprocessing got in the log")
    outcome: str | None = Field(description="the reprocessing's outcome, as logged")
    ack_code: str
    accepted: bool
    errors: list[str] = Field(description="one line per ERR of the ACK")
    ack: list[str]
    resolved: bool = Field(description="the original left the error list")
    on_error_list: bool = Field(description="the original is (still) on the error list")


def _error(error: ErrorInfo | None) -> ErrorOut | None:
    if error is None:
        return None
    return ErrorOut(
        ack_code=error.ack_code, code=error.err_code, location=error.location, text=error.text
    )


def _summary_fields(s: MessageSummary) -> dict[str, object]:
    return {
        "id": s.id,
        "received_at": s.received_at,
        "received": iso_time(s.received_at),
        "peer": s.peer,
        "sending_application": s.sending_application,
        "sending_facility": s.sending_facility,
        "message_type": s.message_type,
        "control_id": s.control_id,
        "outcome": s.outcome.value,
        "ack_code": s.ack_code,
        "error": _error(s.error),
        "warnings": s.warnings,
        "created": s.created,
        "removed": s.removed,
        "on_error_list": s.on_error_list,
        "dismissed": s.resolution.startswith("dismissed"),
        "resolution": s.resolution,
    }


def summary_of(s: MessageSummary) -> MessageSummaryOut:
    return MessageSummaryOut.model_validate(_summary_fields(s))


def detail_of(record: MessageRecord, statuses: dict[str, str | None]) -> MessageDetail:
    entries = [
        EntryOut(id=i, on_worklist=statuses.get(i) is not None, status=statuses.get(i))
        for i in record.entry_ids
    ]
    warnings = [
        WarningOut(code=w.err_code, location=w.location, text=w.text) for w in record.warnings
    ]
    return MessageDetail.model_validate(
        {
            **_summary_fields(record.summary),
            "version": record.version,
            "charset": record.charset,
            "mapping_name": record.mapping_name,
            "mapping_version": record.mapping_version,
            "order_keys": list(record.order_keys),
            "entries": entries,
            "warning_list": warnings,
            "ack": message_lines(record.ack, record.charset),
            "application_ack": message_lines(record.application_ack, record.charset),
            "text": message_lines(record.raw, record.charset),
            "raw_size": record.raw_size,
            "kept_bytes": len(record.raw),
            "reprocess_of": record.reprocess_of or None,
        }
    )


def reprocessed_of(done: Reprocessed, new: MessageRecord | None) -> ReprocessOut:
    original = done.original.summary
    return ReprocessOut(
        id=original.id,
        new_id=done.new_id or None,
        outcome=None if new is None else new.summary.outcome.value,
        ack_code=done.summary.code,
        accepted=done.summary.accepted,
        errors=list(done.summary.errors),
        ack=message_lines(done.ack, done.original.charset),
        resolved=done.resolved,
        on_error_list=original.on_error_list and not done.resolved,
    )
