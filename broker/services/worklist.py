"""The worklist as an admin looks at it: search entries, and explain why a scanner does
(not) see an order.

An explanation runs the entries of an accession number (or a Patient ID) through
the very checks a C-FIND from that scanner goes through (``broker.dicom.plan``, as
``broker.dicom.find`` uses it): its profile, the station scope, the profile's
defaults, hidden statuses and each key of the query the scanner is assumed to
send. The assumed query is a station poll (PS3.4 K.6.1.2, IHE RAD-5): Scheduled
Station AE Title = the scanner's AE title and today's SPS Start Date, unless the
request says otherwise. With an address, the association's acceptance policy is
checked for it; without one, only whether the AE title may connect from
somewhere. Nothing is changed.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import functools
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pydicom import config as dicom_config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from broker.common.clock import SYSTEM_CLOCK, Clock, local_date
from broker.dicom.budget import QueryBudget
from broker.dicom.gate import BroadQueryGate
from broker.dicom.plan import QueryPlan, excluded, make_plan, sort_key
from broker.dicom.profiles import ProfileSet, ScannerProfile
from broker.dicom.qido import QidoQuery
from broker.dicom.response import build_response, projection
from broker.services.broad_search import BroadSearches, SearchProcessUnavailable
from broker.services.paging import first, first_by_day
from broker.store.worklist import WorklistStore
from broker.worklist.model import CandidateCriteria

__all__ = [
    "CONSOLE",
    "ExplainRequest",
    "Explanation",
    "SearchPage",
    "UnknownScanner",
    "WorklistService",
]

# The answer order of a search that pages (PS3.18 §8.3.4.5) when the profile sets none.
_PAGE_ORDER = ("start", "accession", "patient", "modality")

CONSOLE = "(console)"  # the console profile's AE title: no scanner's (not a valid AE title)
_MAY_NOT_CONNECT = "the calling AE title (or its address) may not connect"
_OUT_OF_SCOPE = "the query asks for a station outside the profile's scope"


@dataclass(frozen=True)
class ExplainRequest:
    """Which entries, which scanner, and what it is assumed to ask."""

    aet: str  # the scanner's calling AE title
    accession: str | None = None  # the order's Accession Number, or
    patient_id: str | None = None  # every entry of this Patient ID
    address: str | None = None  # its source address; None: not checked
    station: str | None = None  # Scheduled Station AE Title asked; None: ``aet``
    date: str | None = None  # SPS Start Date asked: YYYYMMDD, A-B, "none"; None: today
    modality: str | None = None  # Modality asked; None: no key
    entry_id: str | None = None  # or this one entry (the console names entries by id)


@dataclass(frozen=True)
class Explanation:
    """The scanner's profile (None: its association would be rejected, ``refusal`` says
    why), the query assumed, and for each entry why it is not seen (None: it is)."""

    query: Dataset
    profile: ScannerProfile | None
    refusal: str
    hidden: frozenset[str]  # the statuses the profile hides
    profiled: bool  # the site has [scanners] tables (the default "*" too)
    entries: tuple[Dataset, ...]
    reasons: tuple[list[str] | None, ...]

    @property
    def seen(self) -> int:
        return sum(reason is None for reason in self.reasons)


class UnknownScanner(LookupError):
    """The AE title has no profile a search could be scoped by (it may not connect)."""


@dataclass(frozen=True, repr=False)
class SearchPage:
    """One page of a scanner's search: its answers, in order, and whether more matched.
    Its repr counts the answers, never shows them (patient data)."""

    answers: tuple[Dataset, ...]
    offset: int
    more: bool  # entries past this page matched (PS3.18 §8.3.4.5: a Warning to the client)
    limit: int  # the page size applied: the request's, bounded by the profile's
    ids: tuple[str, ...] = ()  # the answers' entry ids, in the same order

    def __repr__(self) -> str:
        return (
            f"SearchPage(answers={len(self.answers)}, offset={self.offset}, "
            f"more={self.more}, limit={self.limit})"
        )


class WorklistService:
    """Reads of the worklist for people: search and explain."""

    def __init__(
        self,
        store: WorklistStore,
        profiles: ProfileSet,
        *,
        max_answers: int,
        hidden_statuses: frozenset[str],
        pn_case_insensitive: bool = True,
        zone: dt.tzinfo | None = None,
        profiled: bool = False,
        max_candidates: int = 200_000,
        query_cpu_seconds: float = 10.0,
        clock: Clock = SYSTEM_CLOCK,
        gate: BroadQueryGate | None = None,
        broad: BroadSearches | None = None,
        day_chunk: int = 2000,
    ) -> None:
        self._store = store
        self._profiles = profiles
        self._max_answers = max_answers
        self._hidden = hidden_statuses
        self._pn_case_insensitive = pn_case_insensitive
        self._zone = zone  # the site's: defines "today"; None: the machine's
        self._profiled = profiled  # the site has [scanners] tables (the default "*" too)
        self._clock = clock  # whose "today" it is
        self._max_candidates = max_candidates  # a search's work budget, as a C-FIND's
        self._query_cpu_seconds = query_cpu_seconds
        self._gate = gate or BroadQueryGate(sys.maxsize, 1, 0)  # None: no search is broad
        self._broad = broad  # the search process broad searches run in; None: this one
        self._day_chunk = day_chunk  # date index ids read at a time by a search day by day

    def __repr__(self) -> str:
        return f"WorklistService(max_answers={self._max_answers})"

    def search(self, criteria: CandidateCriteria) -> list[Dataset]:
        """The entries the store's indexes select for ``criteria`` (no matching applied)."""
        return list(self._store.candidates(criteria))

    def profile(self, scanner: ScannerProfile | str) -> ScannerProfile:
        """The profile a search is scoped by: given, or that of an AE title from any
        address it may connect from (``UnknownScanner`` if none)."""
        if isinstance(scanner, ScannerProfile):
            return scanner
        profile = self._profiles.regardless_of_address(scanner)
        if profile is None:
            raise UnknownScanner(scanner)
        return profile

    def search_as(
        self, scanner: ScannerProfile | str, query: QidoQuery, *, address: str = ""
    ) -> SearchPage:
        """What ``scanner`` would be answered for ``query``: the C-FIND identifier of a
        DICOMweb Search Transaction (PS3.18 §14.4, ``broker.dicom.qido``) or of the console.

        The same plan and checks as a C-FIND from that scanner (``broker.dicom.plan``:
        station scope, default date window and modality, hidden statuses, answer limit),
        the same matcher; then QIDO's differences: ``fuzzy`` matches names
        case-insensitively, answers are sorted (the profile's order, else start, accession)
        so that ``offset``/``limit`` page steadily, and ``include_all`` answers with whole
        entries instead of the identifier's keys (PS3.4 C.4.1.1.3.2). A broad search takes
        turns with broad C-FINDs, one at a time per caller ``address`` (``BroadQueryGate``:
        ``BroadQueryBusy`` when it may not), then runs in the search process
        (``broker.services.broad_search``) when the broker has one.
        """
        profile = self.profile(scanner)
        today = local_date(self._clock, self._zone)
        plan = self._plan(profile, query, today)
        candidates = self._candidates(plan)
        with self._gate.admit(candidates.count, address):
            if self._broad is not None and self._gate.is_broad(candidates.count):
                with contextlib.suppress(SearchProcessUnavailable):
                    return self._broad.page(profile, query, today)
            return self._page(plan, query, candidates)

    def page(self, profile: ScannerProfile, query: QidoQuery, today: dt.date) -> SearchPage:
        """:meth:`search_as` for ``profile`` on the day ``today``, without the gate: what
        the search process runs for the broker's process."""
        plan = self._plan(profile, query, today)
        return self._page(plan, query, self._candidates(plan))

    def _plan(self, profile: ScannerProfile, query: QidoQuery, today: dt.date) -> QueryPlan:
        hidden, limit = self._hidden, self._max_answers
        return make_plan(query.identifier, profile, today, hidden, limit, self._zone)

    def _candidates(self, plan: QueryPlan) -> _Candidates:
        """How many entries the plan's search examines at most, and their ids when it reads
        them all; a query that names no index set, in an order that starts with the SPS
        start, reads the date index day by day instead (``_best``): counted, not read."""
        if plan.nothing:
            return _Candidates(0, [])
        if _order(plan)[0] == "start" and not self._store.names_index_set(plan.criteria):
            return _Candidates(self._store.candidate_count(plan.criteria), None)
        ids = self._store.candidate_ids(plan.criteria)
        return _Candidates(len(ids), ids)

    def _page(self, plan: QueryPlan, query: QidoQuery, candidates: _Candidates) -> SearchPage:
        """The page of ``query``'s answers among ``candidates``."""
        limit = min(query.limit or plan.limit, plan.limit)
        fold = self._pn_case_insensitive or query.fuzzy
        best = self._best(plan, query.offset + limit + 1, fold, candidates)
        page = best[query.offset : query.offset + limit]
        charset = "ISO_IR 192"  # DICOMweb text is UTF-8 (PS3.18 §8.7.3), whatever the profile's
        identifier = query.identifier
        shape = projection(identifier)
        answers = tuple(
            _whole(e)
            if query.include_all
            else build_response(identifier, e, character_set=charset, plan=shape)
            for _, e in page
        )
        more = len(best) > query.offset + limit
        return SearchPage(answers, query.offset, more, limit, tuple(i for i, _ in page))

    def _best(
        self, plan: QueryPlan, count: int, fold: bool, candidates: _Candidates
    ) -> list[tuple[str, Dataset]]:
        """The first ``count`` entries the plan's caller sees, in the profile's order, with
        their ids: of every candidate, or a day at a time (``WorklistStore.candidate_days``:
        the undated, then each day in ascending order) until the page is certain
        (``first_by_day``). A search over more candidates than the gate's threshold leaves
        the entry cache to the polls (``_keeps``)."""
        keys = _order(plan)
        keep = self._keeps(candidates.count)
        if candidates.ids is not None:
            by_key = functools.partial(sort_key, keys=keys)
            matched = self._matched(plan, candidates.ids, fold, keep)
            return first(matched, count, lambda found: by_key(found[1]))
        budget = QueryBudget(self._max_candidates, self._query_cpu_seconds)  # for every day
        days = self._store.candidate_days(plan.criteria, self._day_chunk)
        by_day = ((day, self._matched(plan, ids, fold, keep, budget)) for day, ids in days)
        return first_by_day(by_day, count, functools.partial(sort_key, keys=keys))

    def _keeps(self, candidates: int) -> bool:
        """Whether a search over ``candidates`` entries may fill the entry cache: a narrow
        one (the gate's threshold), or any while the whole worklist fits in the cache (it
        then pushes out nothing the polls use)."""
        if candidates <= self._gate.threshold:
            return True
        return self._store.count() <= self._store.entry_cache.max_entries

    def _matched(
        self,
        plan: QueryPlan,
        ids: list[str],
        fold: bool,
        keep: bool = True,
        budget: QueryBudget | None = None,
    ) -> Iterator[tuple[str, Dataset]]:
        """The entries of ``ids`` the plan's caller sees (with their ids), within the C-FIND
        SCP's work budget (``broker.dicom.budget``: ``DicomServiceError`` 0xA700 past it;
        ``budget``: one already spending); ``keep``: new ones may be cached."""
        if budget is None:
            budget = QueryBudget(self._max_candidates, self._query_cpu_seconds)
        for entry_id, entry in self._store.entries_by_id(ids, keep=keep):
            budget.examine()
            if excluded(plan.match_query, entry, plan, pn_case_insensitive=fold) is None:
                yield entry_id, entry

    def mapping_versions(self, ids: Iterable[str]) -> dict[str, int | None]:
        """The mapping version that made each entry (``WorklistStore.mapping_versions``)."""
        return self._store.mapping_versions(ids)

    def console_profile(self, limit: int) -> ScannerProfile:
        """The profile the console searches with: every station (and entries naming none),
        every status, no default date window or modality, ``limit`` answers."""
        return ScannerProfile(CONSOLE, stations=None, hidden_statuses=frozenset(),
                              max_answers=limit)  # fmt: skip

    def explain(self, request: ExplainRequest) -> Explanation:
        """Why the scanner of ``request`` sees, or does not see, each entry it names."""
        today = local_date(self._clock, self._zone)
        query = assumed_query(request, today)
        if request.entry_id:
            entries = tuple(self._store.entries([request.entry_id]))
        elif request.accession:
            entries = tuple(self.search(CandidateCriteria(accession_number=request.accession)))
        else:
            entries = tuple(self.search(CandidateCriteria(patient_id=request.patient_id)))
        profile = (
            self._profiles.regardless_of_address(request.aet)
            if request.address is None
            else self._profiles.for_caller(request.aet, request.address)
        )
        reasons: tuple[list[str] | None, ...]
        if profile is None:
            reasons = tuple([_MAY_NOT_CONNECT] for _ in entries)
            hidden = self._hidden
        else:
            hidden = self._hidden if profile.hidden_statuses is None else profile.hidden_statuses
            plan = make_plan(query, profile, today, self._hidden, self._max_answers, self._zone)
            ci = self._pn_case_insensitive
            reasons = tuple(
                [_OUT_OF_SCOPE]
                if plan.nothing
                else excluded(query, e, plan, pn_case_insensitive=ci, why=True)
                for e in entries
            )
        refusal = "" if profile is not None else self._refusal(request.aet, request.address)
        profiled = self._profiled
        return Explanation(query, profile, refusal, hidden, profiled, entries, reasons)

    def _refusal(self, aet: str, address: str | None) -> str:
        """Why the association would be rejected (the acceptance policy's own words)."""
        refusal = None if address is None else self._profiles.decide(aet, address).refusal
        if refusal is None:  # no address given: refused from every address
            return (
                "its association would be rejected: no [scanners] table of its own while "
                "dicom_allow_unknown_callers = false"
            )
        return f"its association from {address} would be rejected: {refusal.value}"


@dataclass(frozen=True, repr=False)
class _Candidates:
    """A search's candidates: how many, and their ids (None: read day by day)."""

    count: int
    ids: list[str] | None


def _order(plan: QueryPlan) -> tuple[str, ...]:
    """The answers' order: the profile's, else the paging order."""
    return plan.profile.sort or _PAGE_ORDER


def _whole(entry: Dataset) -> Dataset:
    """An entry answered whole (``includefield=all``): a copy, never the store's object."""
    return copy.deepcopy(entry)


def assumed_query(request: ExplainRequest, today: dt.date) -> Dataset:
    """The C-FIND identifier the scanner is assumed to send (a station poll by default)."""
    station = request.aet if request.station is None else request.station
    date = today.strftime("%Y%m%d") if request.date is None else request.date
    if date.lower() == "none":
        date = ""
    step = Dataset()
    for keyword, value in (
        ("ScheduledStationAETitle", station),
        ("ScheduledProcedureStepStartDate", date),
        ("Modality", request.modality or ""),
    ):
        tag = tag_for_keyword(keyword)
        assert tag is not None
        step.add(DataElement(tag, dictionary_VR(tag), value, validation_mode=dicom_config.IGNORE))
    query = Dataset()
    query.AccessionNumber = ""
    query.PatientID = ""
    query.ScheduledProcedureStepSequence = [step]
    return query
