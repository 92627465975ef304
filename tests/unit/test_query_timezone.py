"""Timezone Offset From UTC in a query: its SPS start keys are moved to the site's zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from pydicom import config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from broker.dicom.matching import matches
from broker.dicom.timezone import localize

BERLIN = ZoneInfo("Europe/Berlin")


def element(keyword: str, value: str) -> DataElement:
    tag = tag_for_keyword(keyword)
    assert tag is not None
    return DataElement(tag, dictionary_VR(tag), value, validation_mode=config.IGNORE)


def query(offset: str | None, date: str, time: str | None = None) -> Dataset:
    ds = Dataset()
    if offset is not None:
        ds.add(element("TimezoneOffsetFromUTC", offset))
    step = Dataset()
    step.add(element("ScheduledProcedureStepStartDate", date))
    if time is not None:
        step.add(element("ScheduledProcedureStepStartTime", time))
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def entry(date: str, time: str) -> Dataset:
    ds = Dataset()
    step = Dataset()
    step.add(element("ScheduledProcedureStepStartDate", date))
    step.add(element("ScheduledProcedureStepStartTime", time))
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def keys(ds: Dataset) -> tuple[str, str]:
    step = ds.ScheduledProcedureStepSequence[0]
    return str(step.ScheduledProcedureStepStartDate), str(step.ScheduledProcedureStepStartTime)


def test_a_day_in_tokyo_is_hours_on_two_days_in_berlin() -> None:
    tokyo_day = query("+0900", "20261201")
    local = localize(tokyo_day, BERLIN)  # CET, UTC+1: Tokyo is 8 hours ahead
    assert keys(local) == ("20261130-20261201", "160000-155959")
    assert matches(local, entry("20261130", "170000"))  # 01:00 on the 1st in Tokyo
    assert not matches(local, entry("20261201", "170000"))  # already the 2nd in Tokyo
    assert not matches(tokyo_day, entry("20261130", "170000"))  # unadjusted, it would miss
    assert "ScheduledProcedureStepStartTime" not in tokyo_day.ScheduledProcedureStepSequence[0]


def test_a_time_range_and_open_ranges_are_moved_too() -> None:
    morning = localize(query("-0500", "20260715", "0800-1200"), BERLIN)  # CEST, UTC+2
    assert keys(morning) == ("20260715-20260715", "150000-190059")  # "1200" ends at 12:00:59
    from_then = localize(query("+0000", "20260715-"), BERLIN)
    assert keys(from_then) == ("20260715-", "020000-")


def test_queries_without_a_usable_offset_or_date_are_left_alone() -> None:
    for q in (
        query(None, "20261201"),
        query("+0900", ""),
        query("+0900", "*"),
        query("0900", "20261201"),
        query("+0900", "2026-12-01"),
        query("+0900", "20261201", "25h"),
    ):
        assert localize(q, BERLIN) is q
    same_zone = localize(query("+0100", "20261201"), dt.timezone(dt.timedelta(hours=1)))
    assert keys(same_zone) == ("20261201-20261201", "000000-235959")
