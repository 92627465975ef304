"""Broad searches run in the search process (``broker.services.broad_search``): the same
pages as a search in the broker's own process, the same refusals, a replaced child after
one dies, the broker's process when none can start. A real spawned child process on a
real redis-server."""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import pytest
import redis

from broker.dicom.gate import BroadQueryBusy
from broker.dicom.qido import QidoQuery, parse_query
from broker.dicom.scanner import ScannerProfile
from broker.dicom.status import Status
from broker.errors import DicomServiceError
from broker.services.application import Services
from broker.services.broad_search import BroadSearches, Searcher, WorkerSpec
from broker.services.worklist import CONSOLE, WorklistService
from broker.store.worklist import WorklistStore
from tests.integration.admin_helpers import site_services
from tests.integration.dicom_find_helpers import entry, put
from tests.waiting import wait_for

ENTRIES = 24  # a search over more than 4 candidates is broad
SPS = "ScheduledProcedureStepSequence."
NAMES = ("DOE^JOHN", "doe^jane", "ROE^RICHARD", "MÜLLER^JÜRGEN")


@pytest.fixture
def services(redis_client: redis.Redis, tmp_path: Path) -> Iterator[Services]:
    services = site_services(redis_client, tmp_path, "", dicom_broad_query_candidates=4)
    put(
        services.store,
        *(
            entry(
                f"ACC-{n:02}",
                ("CT1", "MR1", "US1")[n % 3],
                f"202612{1 + n % 5:02}",
                name=NAMES[n % len(NAMES)],
                time=f"{8 + n % 4:02}{n % 3 * 15:02}00",
            )
            for n in range(ENTRIES)
        ),
    )
    try:
        yield services
    finally:
        services.close()


def local(services: Services) -> WorklistService:
    """The same service with no search process: every search in this process."""
    return WorklistService(services.store, gate=services.broad_queries,
                           **services.worklist_options())  # fmt: skip


def query(*params: tuple[str, str]) -> QidoQuery:
    return parse_query(params)


QUERIES = {
    "empty": (),
    "a page": (("offset", "5"), ("limit", "7")),
    "a name's wild card": (("PatientName", "DOE*"),),
    "fuzzy names, whole entries": (
        ("PatientName", "doe*"),
        ("fuzzymatching", "true"),
        ("includefield", "all"),
    ),
    "a date range": (
        (f"{SPS}ScheduledProcedureStepStartDate", "20261202-20261204"),
        ("limit", "3"),
    ),
    "a station": ((f"{SPS}ScheduledStationAETitle", "CT1"),),
}


@pytest.mark.parametrize("params", QUERIES.values(), ids=QUERIES.keys())
def test_the_search_process_answers_as_the_brokers_own(
    services: Services, params: tuple[tuple[str, str], ...]
) -> None:
    console = services.worklist.console_profile(100)
    there = services.worklist.search_as(console, query(*params), address="10.0.0.1")
    here = local(services).search_as(console, query(*params), address="10.0.0.1")
    assert there.ids == here.ids and there.ids
    assert there.more == here.more
    assert [a.to_json_dict() for a in there.answers] == [a.to_json_dict() for a in here.answers]
    child = services.broad_searches.pid
    assert child is not None and child != os.getpid()
    assert os.getpriority(os.PRIO_PROCESS, child) > os.getpriority(os.PRIO_PROCESS, 0)


def test_a_narrow_search_stays_in_the_brokers_process(services: Services) -> None:
    console = services.worklist.console_profile(100)
    found = services.worklist.search_as(console, query(("AccessionNumber", "ACC-03")))
    assert len(found.ids) == 1
    assert services.broad_searches.pid is None  # never started


def test_the_work_budget_refuses_there_as_here(redis_client: redis.Redis, tmp_path: Path) -> None:
    services = site_services(
        redis_client, tmp_path, "", dicom_broad_query_candidates=4, dicom_max_candidates=5
    )
    put(services.store, *(entry(f"ACC-{n}", "CT1", "20261201") for n in range(8)))
    try:
        with pytest.raises(DicomServiceError) as refused:
            services.worklist.search_as(services.worklist.console_profile(10), query())
        assert refused.value.status == Status.OUT_OF_RESOURCES
        assert services.broad_searches.pid is not None  # refused by the child's budget
    finally:
        services.close()


def test_a_child_that_died_between_searches_is_replaced(services: Services) -> None:
    worklist = services.worklist
    console = worklist.console_profile(100)
    assert len(worklist.search_as(console, query()).ids) == ENTRIES
    first = services.broad_searches.pid
    assert first is not None
    os.kill(first, 9)
    wait_for(lambda: services.broad_searches.pid is None, "the killed child seen gone")
    assert len(worklist.search_as(console, query()).ids) == ENTRIES
    assert services.broad_searches.pid not in (None, first)
    services.close()
    assert services.broad_searches.pid is None


def test_a_child_that_dies_during_a_search_is_busy_then_replaced(
    services: Services, tmp_path: Path
) -> None:
    """The first child exits while it searches; the second one answers."""
    spec = spec_of(services)
    dying = BroadSearches(
        replace(spec, service=dies_once, options={**spec.options, "marker": tmp_path / "died"}),
        timeout=60,
    )
    worklist = WorklistService(services.store, gate=services.broad_queries, broad=dying,
                               **services.worklist_options())  # fmt: skip
    try:
        console = worklist.console_profile(100)
        with pytest.raises(BroadQueryBusy, match="search process stopped"):
            worklist.search_as(console, query())
        assert len(worklist.search_as(console, query()).ids) == ENTRIES
        assert dying.pid is not None
    finally:
        dying.close()


def test_a_search_over_its_time_is_busy_and_the_next_one_runs(services: Services) -> None:
    spec = spec_of(services)
    hasty = BroadSearches(spec, timeout=0.0)  # no answer can come back within no time
    worklist = WorklistService(services.store, gate=services.broad_queries, broad=hasty,
                               **services.worklist_options())  # fmt: skip
    try:
        console = worklist.console_profile(100)
        with pytest.raises(BroadQueryBusy, match="took too long"):
            worklist.search_as(console, query())
        assert hasty.pid is None  # the child was stopped with its search
    finally:
        hasty.close()


def test_without_a_child_the_search_runs_here(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    broken = BroadSearches(replace(spec_of(services), service=no_service), timeout=30)
    worklist = WorklistService(services.store, gate=services.broad_queries, broad=broken,
                               **services.worklist_options())  # fmt: skip
    console = worklist.console_profile(100)
    with caplog.at_level(logging.ERROR, logger="broker.services.broad_search"):
        for _ in range(2):
            assert len(worklist.search_as(console, query()).ids) == ENTRIES
    refusals = [r for r in caplog.records if "no search process" in r.getMessage()]
    assert len(refusals) == 1  # said once
    assert broken.pid is None


def spec_of(services: Services) -> WorkerSpec:
    return services.broad_searches.spec


def no_service(store: WorklistStore, **options: object) -> WorklistService:
    """A child that cannot build its service (it exits before it is ready)."""
    raise RuntimeError("no service")


class ExitsSearching:
    """A search that ends its process, as a crash would."""

    def page(self, profile: ScannerProfile, query: QidoQuery, today: dt.date) -> NoReturn:
        os._exit(1)


def dies_once(store: WorklistStore, marker: Path, **options: Any) -> Searcher:
    """The first child's service exits during its search (``marker`` says it did);
    later children's are the real one."""
    if marker.exists():
        return WorklistService(store, **options)
    marker.touch()
    return ExitsSearching()


def test_the_console_profile_is_what_the_child_searches_with(services: Services) -> None:
    profile = services.worklist.console_profile(3)
    page = services.broad_searches.page(profile, query(), dt.date(2026, 12, 1))
    assert profile.ae_title == CONSOLE
    assert len(page.ids) == 3 and page.more
