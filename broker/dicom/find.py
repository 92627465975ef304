"""The Modality Worklist C-FIND service: identifier in, streamed answers out.

``WorklistFindService.handle`` is bound to pynetdicom's ``evt.EVT_C_FIND``. It
only yields ``(status, Dataset)`` pairs; pynetdicom owns the protocol. This is
the one place where failures become DICOM statuses (PS3.4 C.4.1.1.4):

    undecodable identifier / unsupported charset   0xA900 + Error Comment
    store unavailable, any other failure           0xC001 + Error Comment
    C-CANCEL received                              0xFE00
    answer limit reached                           0x0000 after ``max_answers``
                                                   answers, with a WARNING log

The answer limit ends the query with Success rather than a failure, so a
modality still shows the first ``max_answers`` items; the WARNING names the
calling AE so an admin can narrow that modality's query.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any, Protocol

from pydicom.charset import python_encoding
from pydicom.dataset import Dataset

from broker.dicom.matching import SPECIFIC_CHARACTER_SET, criteria_from_query, matches
from broker.dicom.response import build_response, check_character_set
from broker.dicom.status import Status
from broker.errors import DicomServiceError, StoreError
from broker.worklist.model import CandidateCriteria

__all__ = ["EntrySource", "FindEvent", "FindResult", "WorklistFindService"]

log = logging.getLogger(__name__)

# (status, identifier): a status int, or for failures a status Dataset holding
# Status and ErrorComment, which pynetdicom copies into the C-FIND-RSP command.
FindResult = tuple[int | Dataset, Dataset | None]

_ERROR_COMMENT_MAX = 64  # PS3.7 Error Comment (0000,0902) is an LO


class EntrySource(Protocol):
    """Where worklist entries come from (``broker.worklist.store.WorklistStore``)."""

    def candidates(self, criteria: CandidateCriteria) -> Iterator[Dataset]:
        """Entries that may match ``criteria``; raises ``StoreError`` on failure."""
        ...


class FindEvent(Protocol):
    """The parts of a pynetdicom ``evt.Event`` for EVT_C_FIND this service uses."""

    @property
    def identifier(self) -> Dataset: ...

    @property
    def is_cancelled(self) -> bool: ...

    @property
    def message_id(self) -> int: ...

    @property
    def assoc(self) -> Any: ...


def _failure(status: Status, comment: str) -> FindResult:
    """A failure status with its Error Comment, as pynetdicom sends it."""
    ds = Dataset()
    ds.Status = int(status)
    ds.ErrorComment = comment[:_ERROR_COMMENT_MAX]
    return ds, None


def _calling_ae(event: FindEvent) -> str:
    try:
        return str(event.assoc.requestor.ae_title).strip()
    except AttributeError:
        return "?"


def _charset_terms(identifier: Dataset) -> list[str]:
    """Specific Character Set terms, read without pydicom's conversion (which
    warns and falls back to ASCII on an unknown term)."""
    elem = identifier.get_item(SPECIFIC_CHARACTER_SET)
    if elem is None:
        return []
    value = elem.value
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    values = [value] if isinstance(value, str) else list(value or [])
    return [part.strip() for v in values for part in str(v).split("\\")]


def decode_identifier(event: FindEvent) -> Dataset:
    """The request identifier, fully decoded, or ``DicomServiceError(0xA900)``.

    pydicom decodes lazily, so every element (and every PN, whose bytes are
    decoded on first use) is touched here, not halfway through matching. An
    unknown Specific Character Set (PS3.4 C.2.2.2: matching would be undefined)
    is refused rather than decoded with pydicom's fallback.
    """
    try:
        identifier = event.identifier
        if identifier is None:
            raise ValueError("no identifier in the request")
        unknown = [t for t in _charset_terms(identifier) if t and t not in python_encoding]
        if unknown:
            raise DicomServiceError(
                Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
                f"unsupported Specific Character Set {unknown[0]!a}",
            )
        for elem in identifier.iterall():
            if elem.VR == "PN":
                str(elem.value)
    except DicomServiceError:
        raise
    except Exception as e:
        raise DicomServiceError(
            Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
            f"cannot decode identifier: {type(e).__name__}",
        ) from e
    return identifier


# Steps that are over are not offered to scanners unless a query asks for them
# by Scheduled Procedure Step Status (0040,0020) (IHE RAD TF-2 RAD-5).
DEFAULT_HIDDEN_STATUSES = frozenset({"COMPLETED", "CANCELED", "DISCONTINUED"})


def _status(entry: Dataset) -> str:
    """The entry's Scheduled Procedure Step Status, or empty."""
    seq = entry.get("ScheduledProcedureStepSequence")
    item = seq[0] if seq else None
    return str(item.get("ScheduledProcedureStepStatus", "")) if item is not None else ""


def _asks_for_status(query: Dataset) -> bool:
    """Whether the query matches on SPS Status (a non-empty, non-``*`` value)."""
    value = _status(query).strip()
    return bool(value) and value != "*"


class WorklistFindService:
    """Answers Modality Worklist C-FIND requests from an entry source (PS3.4 K.4.1)."""

    def __init__(
        self,
        source: EntrySource,
        *,
        max_answers: int,
        character_set: str = "ISO_IR 192",
        pn_case_insensitive: bool = True,
        hidden_statuses: frozenset[str] = DEFAULT_HIDDEN_STATUSES,
    ) -> None:
        if max_answers < 1:
            raise ValueError("max_answers must be at least 1")
        check_character_set(character_set)
        self._source = source
        self._max_answers = max_answers
        self._character_set = character_set
        self._pn_case_insensitive = pn_case_insensitive
        self._hidden = hidden_statuses

    def __repr__(self) -> str:
        return (
            f"WorklistFindService(max_answers={self._max_answers}, "
            f"character_set={self._character_set!r})"
        )

    def handle(self, event: FindEvent) -> Iterator[FindResult]:
        """The EVT_C_FIND handler: yields one pending answer per matching entry.

        Answers are streamed as candidates arrive, never collected; a C-CANCEL
        is checked before each candidate (PS3.4 C.4.1.2.3). One INFO summary
        line per query, without patient data.
        """
        started = time.perf_counter()
        outcome, answers = "success", 0
        try:
            for status, identifier in self._answers(event):
                if status == Status.PENDING:
                    answers += 1
                elif status == Status.CANCEL:
                    outcome = "cancelled"
                else:
                    outcome = "failed"
                yield status, identifier
        finally:
            log.info(
                "C-FIND from %s msg %s: %d answers, %s, %.1f ms",
                _calling_ae(event),
                event.message_id,
                answers,
                outcome,
                (time.perf_counter() - started) * 1000,
            )

    def _answers(self, event: FindEvent) -> Iterator[FindResult]:
        """Match candidates and yield answers; failures become statuses here."""
        answered = 0
        try:
            query = decode_identifier(event)
            hidden = frozenset() if _asks_for_status(query) else self._hidden
            for entry in self._source.candidates(criteria_from_query(query)):
                if event.is_cancelled:
                    yield int(Status.CANCEL), None
                    return
                if not matches(query, entry, pn_case_insensitive=self._pn_case_insensitive):
                    continue
                if hidden and _status(entry) in hidden:
                    continue
                if answered >= self._max_answers:
                    log.warning(
                        "C-FIND from %s msg %s: more than %d matches, answered only the first %d",
                        _calling_ae(event),
                        event.message_id,
                        self._max_answers,
                        self._max_answers,
                    )
                    return
                answered += 1
                yield (
                    int(Status.PENDING),
                    build_response(query, entry, character_set=self._character_set),
                )
        except DicomServiceError as e:
            log.warning("C-FIND from %s refused: %s", _calling_ae(event), e)
            yield _failure(e.status, e.comment)
        except StoreError as e:
            log.error("C-FIND from %s failed: %s", _calling_ae(event), e)
            yield _failure(Status.UNABLE_TO_PROCESS, "worklist store unavailable")
        except Exception:
            log.exception("C-FIND from %s failed", _calling_ae(event))
            yield _failure(Status.UNABLE_TO_PROCESS, "internal error while matching")
