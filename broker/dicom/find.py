"""The Modality Worklist C-FIND service: identifier in, streamed answers out.

``WorklistFindService.handle`` is bound to pynetdicom's ``evt.EVT_C_FIND``. It
only yields ``(status, Dataset)`` pairs; pynetdicom owns the protocol. This is
the one place where failures become DICOM statuses (PS3.4 C.4.1.1.4):

    undecodable identifier / unsupported charset   0xA900 + Error Comment
    a key longer than its VR allows                0xA900 + Offending Element + Error Comment
    identifier past the broker's bounds            0xA700 + Error Comment
                                                   (``broker.dicom.limits``)
    work budget spent (candidates, time)           0xA700 + Error Comment
                                                   (``broker.dicom.budget``)
    store unavailable, any other failure           0xC001 + Error Comment
    C-CANCEL received                              0xFE00
    answer limit reached                           0x0000 after ``max_answers``
                                                   answers, with a WARNING log
    caller the acceptance policy refuses           0xC001 + Error Comment (the
                                                   association is rejected before
                                                   any query: ``broker.dicom.server``)

The answer limit ends the query with Success rather than a failure, so a
modality still shows the first ``max_answers`` items; the WARNING names the
calling AE so an admin can narrow that modality's query.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from pydicom.charset import python_encoding
from pydicom.dataset import Dataset

from broker.audit.record import FindAudit
from broker.audit.writer import NO_AUDIT, AuditSink
from broker.common.clock import SYSTEM_CLOCK, Clock, local_date
from broker.dicom.answers import AnswerCache, transfer_syntax
from broker.dicom.budget import QueryBudget
from broker.dicom.gate import BroadQueryGate
from broker.dicom.limits import check_identifier, check_identifier_size
from broker.dicom.matching import SPECIFIC_CHARACTER_SET
from broker.dicom.peers import caller_of, calling_ae
from broker.dicom.plan import QueryPlan, excluded, make_plan, sort_key
from broker.dicom.profiles import ProfileSet, ScannerProfile
from broker.dicom.response import answer_shape, check_character_set, projection
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
    """Where worklist entries come from (``broker.store.worklist.WorklistStore``); both
    methods raise ``StoreError`` on failure."""

    def candidate_ids(self, criteria: CandidateCriteria) -> list[str]:
        """Ids of the entries that may match ``criteria``."""
        ...

    def entries(self, ids: Iterable[str], *, keep: bool = True) -> Iterator[Dataset]:
        """The entries with these ids, as stored now; ``keep``: new ones may be cached."""
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

    @property
    def request(self) -> Any: ...

    @property
    def context(self) -> Any: ...


def _failure(status: Status, comment: str, offending: int | None = None) -> FindResult:
    """A failure status with its Error Comment (and Offending Element, if given), as
    pynetdicom sends it (PS3.7 Table E.1-1)."""
    ds = Dataset()
    ds.Status = int(status)
    if offending is not None:
        ds.OffendingElement = [offending]
    ds.ErrorComment = comment[:_ERROR_COMMENT_MAX]
    return ds, None


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


def _check_size(event: FindEvent) -> None:
    """``broker.dicom.limits.check_identifier_size`` on the request's encoded identifier."""
    encoded = event.request.Identifier
    if encoded is None:
        return
    with encoded.getbuffer() as view:
        check_identifier_size(view, bool(event.context.transfer_syntax.is_deflated))


def decode_identifier(event: FindEvent) -> Dataset:
    """The request identifier, fully decoded and within bounds, or ``DicomServiceError``.

    An identifier that cannot be decoded, or whose Specific Character Set is
    unknown (PS3.4 C.2.2.2: matching would be undefined; refused rather than
    decoded with pydicom's fallback), is 0xA900; one past the bounds of
    ``broker.dicom.limits`` is 0xA900 (a key longer than its VR allows) or
    0xA700, with the size checked before anything is decoded. pydicom decodes
    lazily, so every element (and every PN, whose bytes are decoded on first
    use) is touched here, not halfway through matching.
    """
    try:
        _check_size(event)
        identifier = event.identifier
        if identifier is None:
            raise ValueError("no identifier in the request")
        unknown = [t for t in _charset_terms(identifier) if t and t not in python_encoding]
        if unknown:
            raise DicomServiceError(
                Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
                f"unsupported Specific Character Set {unknown[0]!a}",
            )
        check_identifier(identifier)  # touches every element, and every PN as text
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
        profiles: ProfileSet | None = None,
        zone: dt.tzinfo | None = None,
        answer_cache: int = 10_000,
        max_candidates: int = 200_000,
        query_cpu_seconds: float = 10.0,
        gate: BroadQueryGate | None = None,
        audit: AuditSink = NO_AUDIT,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if max_answers < 1 or max_candidates < 1:
            raise ValueError("max_answers and max_candidates must be at least 1")
        if query_cpu_seconds <= 0:
            raise ValueError("query_cpu_seconds must be more than 0")
        check_character_set(character_set)
        self._source = source
        self._max_answers = max_answers
        self._character_set = character_set
        self._pn_case_insensitive = pn_case_insensitive
        self._hidden = hidden_statuses
        self._profiles = profiles or ProfileSet({})
        self._zone = zone  # the site's zone: defines "today"; None: the machine's
        self._clock = clock  # whose "today" it is
        self._built = AnswerCache(answer_cache)  # answers sent again to repeated polls
        # More candidates than this (a broad query): the caches are read, not filled.
        self._keep_limit = answer_cache // 4 if answer_cache else sys.maxsize
        self._max_candidates = max_candidates
        self._query_cpu_seconds = query_cpu_seconds
        self._gate = gate or BroadQueryGate(sys.maxsize, 1, 0)  # None: no query is broad
        self._audit = audit  # one record per query: caller, key names, answers, status

    def __repr__(self) -> str:
        return (
            f"WorklistFindService(max_answers={self._max_answers}, "
            f"character_set={self._character_set!r}, max_candidates={self._max_candidates}, "
            f"query_cpu_seconds={self._query_cpu_seconds})"
        )

    def handle(self, event: FindEvent) -> Iterator[FindResult]:
        """The EVT_C_FIND handler: yields one pending answer per matching entry.

        Answers are streamed as candidates arrive, never collected; a C-CANCEL
        is checked before each candidate (PS3.4 C.4.1.2.3). The query's work is
        bounded (``broker.dicom.budget``); its clock stops while an answer is
        being sent. One INFO line and one audit record per query, no patient data.
        """
        started = time.perf_counter()
        outcome, answers, logged = "success", 0, False
        budget = QueryBudget(self._max_candidates, self._query_cpu_seconds)
        record = FindAudit(self._audit, event)

        def summary() -> None:
            log.info(
                "C-FIND from %s msg %s: %d answers, %s, %d candidates, %.1f ms",
                calling_ae(event),
                event.message_id,
                answers,
                outcome,
                budget.examined,
                (time.perf_counter() - started) * 1000,
            )
            record.done(answers)

        try:
            for status, identifier in self._answers(event, budget, record):
                if status == Status.PENDING:
                    answers += 1
                else:  # the last result: said before pynetdicom sends it and stops asking
                    outcome = "cancelled" if status == Status.CANCEL else "failed"
                    record.status = status
                    logged = True
                    summary()
                budget.pause()
                yield status, identifier
                budget.resume()
        finally:
            if not logged:
                summary()

    def _answers(
        self, event: FindEvent, budget: QueryBudget, record: FindAudit
    ) -> Iterator[FindResult]:
        """Match candidates and yield answers; failures become statuses here."""
        try:
            # Checked at association already (broker.dicom.server); this service may also be
            # bound to a server that does not, and it needs the profile anyway.
            profile = self._profiles.for_caller(*caller_of(event))
            if profile is None:
                raise DicomServiceError(
                    Status.UNABLE_TO_PROCESS, "this calling AE title or address may not query"
                )
            query = decode_identifier(event)
            record.query(query)
            plan = self._plan(query, profile)
            ids = [] if plan.nothing else self._source.candidate_ids(plan.criteria)
            with self._gate.admit(len(ids), caller_of(event)[1]):
                yield from self._answer_candidates(event, budget, query, plan, profile, ids)
        except DicomServiceError as e:
            log.warning("C-FIND from %s refused: %s", calling_ae(event), e)
            yield _failure(e.status, e.comment, e.offending)
        except StoreError as e:
            log.error("C-FIND from %s failed: %s", calling_ae(event), e)
            yield _failure(Status.UNABLE_TO_PROCESS, "worklist store unavailable")
        except Exception:
            log.exception("C-FIND from %s failed", calling_ae(event))
            yield _failure(Status.UNABLE_TO_PROCESS, "internal error while matching")

    def _answer_candidates(
        self,
        event: FindEvent,
        budget: QueryBudget,
        query: Dataset,
        plan: QueryPlan,
        profile: ScannerProfile,
        ids: list[str],
    ) -> Iterator[FindResult]:
        """Match the candidate entries ``ids`` and yield the answers (``_answers``)."""
        # A broad query (over a quarter of the caches) fills none: it would churn them.
        keep = len(ids) <= self._keep_limit
        encode = functools.partial(
            self._built.answer,
            shape=answer_shape(query),
            plan=projection(query),
            character_set=profile.character_set or self._character_set,
            unrepresentable=profile.unrepresentable,
            keep=keep,
            encoding=transfer_syntax(event.context),
        )
        candidates = self._source.entries(ids, keep=keep)
        matched = self._matches(event, query, plan, candidates, budget)
        if profile.sort or profile.refuse_over_limit:
            budget.expect(len(ids))  # every candidate will be examined
            yield from self._collected(event, matched, plan, profile, query, encode)
            return
        for answered, entry in enumerate(matched):
            if entry is None:
                yield int(Status.CANCEL), None
                return
            if answered >= plan.limit:
                self._over_limit(event, plan.limit)
                return
            yield int(Status.PENDING), encode(query, entry)

    def _plan(self, query: Dataset, profile: ScannerProfile) -> QueryPlan:
        today = local_date(self._clock, self._zone)
        return make_plan(query, profile, today, self._hidden, self._max_answers, self._zone)

    def _matches(
        self,
        event: FindEvent,
        query: Dataset,
        plan: QueryPlan,
        candidates: Iterator[Dataset],
        budget: QueryBudget,
    ) -> Iterator[Dataset | None]:
        """Entries the caller may see that match; None when the query was cancelled.
        ``DicomServiceError`` (0xA700) when the budget is spent."""
        for entry in candidates:
            if event.is_cancelled:
                yield None
                return
            budget.examine()
            if excluded(query, entry, plan, pn_case_insensitive=self._pn_case_insensitive) is None:
                yield entry

    def _collected(
        self,
        event: FindEvent,
        matched: Iterator[Dataset | None],
        plan: QueryPlan,
        profile: ScannerProfile,
        query: Dataset,
        encode: Callable[[Dataset, Dataset], Dataset],
    ) -> Iterator[FindResult]:
        """Sorted answers, or a refusal past the limit.

        At most ``2 * limit + 1`` entries are held: the best ``limit`` so far
        (in the profile's order) are kept whenever the list doubles, so a
        truncated answer is the first ``limit`` of all matches, not of the
        first ones found.
        """
        order = functools.partial(sort_key, keys=profile.sort)
        entries: list[Dataset] = []
        over = False
        for entry in matched:
            if entry is None:
                yield int(Status.CANCEL), None
                return
            entries.append(entry)
            if len(entries) <= plan.limit:
                continue
            over = True
            if profile.refuse_over_limit:
                self._over_limit(event, plan.limit, refused=True)
                yield _failure(
                    Status.OUT_OF_RESOURCES,
                    f"more than {plan.limit} matches; narrow the query (date, modality)",
                )
                return
            if len(entries) > 2 * plan.limit:
                entries = sorted(entries, key=order)[: plan.limit]
        if over:
            self._over_limit(event, plan.limit)
        for entry in sorted(entries, key=order)[: plan.limit]:
            if event.is_cancelled:
                yield int(Status.CANCEL), None
                return
            yield int(Status.PENDING), encode(query, entry)

    @staticmethod
    def _over_limit(event: FindEvent, limit: int, *, refused: bool = False) -> None:
        what = "refused the query" if refused else f"answered only the first {limit}"
        log.warning(
            "C-FIND from %s msg %s: more than %d matches, %s",
            calling_ae(event),
            event.message_id,
            limit,
            what,
        )
