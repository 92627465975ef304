"""The broker's exception hierarchy.

Every error that reaches a protocol boundary carries its protocol outcome, and
is turned into a response in exactly one place (HL7: ``broker.hl7.ack``;
DICOM: ``broker.dicom.find``).

    BrokerError
    ├── ConfigError          a setting is wrong; names the setting (start-up)
    ├── ConflictError        a change was based on a state that is no longer current
    ├── StoreError           Redis unreachable or refused a command
    │   └── StoreFullError   Redis refused a write: it is at its memory limit (maxmemory)
    ├── HL7Error             carries ACK code, table 0357 code, location, text
    │   └── MappingError     a message could not be mapped (AE by default)
    └── DicomServiceError    carries a DIMSE status and an error comment
"""

from __future__ import annotations

from broker.dicom.status import Status
from broker.hl7.codes import AckCode, ErrorCode

__all__ = [
    "BrokerError",
    "ConfigError",
    "ConflictError",
    "DicomServiceError",
    "HL7Error",
    "MappingError",
    "StoreError",
    "StoreFullError",
    "store_error",
]


class BrokerError(Exception):
    """Base class of every error the broker raises on purpose."""


class ConfigError(BrokerError):
    """A setting is missing or invalid; ``setting`` names it as a person types it."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting
        self.message = message


class ConflictError(BrokerError):
    """A change was based on a state that another change replaced meanwhile (e.g. a mapping
    publish whose ``expect`` is no longer the active version); nothing was changed."""


class StoreError(BrokerError):
    """The worklist store (Redis) could not complete an operation."""


class StoreFullError(StoreError):
    """Redis refused a write because it holds its ``maxmemory``; nothing was written."""


def store_error(cause: object) -> StoreError:
    """The error for a failed Redis call ``cause``: :class:`StoreFullError` when Redis
    refused a write at its memory limit (its OOM error names ``maxmemory``, also when a
    Lua script meets it), else :class:`StoreError`."""
    if "maxmemory" in str(cause):
        return StoreFullError(f"worklist store full (Redis at its maxmemory): {cause}")
    return StoreError(f"worklist store unavailable: {cause}")


class HL7Error(BrokerError):
    """An HL7 message cannot be accepted.

    ``location`` is an HL7 location such as ``"PID-3"``, ``"ORC-1"`` or
    ``"MSH-9.2"`` (ERR-2, HL7 v2.5.1 §2.15.5.2); ``text`` is for a person (ERR-8).
    """

    def __init__(
        self,
        ack_code: AckCode,
        err_code: ErrorCode,
        location: str | None,
        text: str,
    ) -> None:
        super().__init__(f"{ack_code.value} {err_code.value} {location or '-'}: {text}")
        self.ack_code = ack_code
        self.err_code = err_code
        self.location = location
        self.text = text

    @classmethod
    def internal(cls, ack_code: AckCode, text: str) -> HL7Error:
        """An application internal error (ERR-3 207, no location) answered with ``ack_code``."""
        return cls(ack_code, ErrorCode.APPLICATION_INTERNAL_ERROR, None, text)


class MappingError(HL7Error):
    """A message's content cannot be mapped to worklist entries (answered AE)."""

    def __init__(self, err_code: ErrorCode, location: str | None, text: str) -> None:
        super().__init__(AckCode.ERROR, err_code, location, text)
        self.rule: str | None = None  # the mapping rule that failed (its name), when one did


class DicomServiceError(BrokerError):
    """A DICOM service request failed; ``status`` and ``comment`` go to the peer, and
    ``offending`` (a tag), if given, as its Offending Element (0000,0901) (PS3.7 Table E.1-1)."""

    def __init__(self, status: Status, comment: str, *, offending: int | None = None) -> None:
        super().__init__(f"0x{status:04X}: {comment}")
        self.status = status
        self.comment = comment
        self.offending = offending
