"""A query's Timezone Offset From UTC honoured for the SPS start date and time.

Entries hold the site's local dates and times (``site_timezone``). A scanner in
another zone that puts Timezone Offset From UTC (0008,0201, PS3.3 C.12.1.1.8)
in its identifier means its SPS Start Date/Time keys in that offset: they are
moved to the site's zone before matching. The result is a copy used for
matching only (the answer's keys are the scanner's own); the date and time
keys become one combined date-time range (PS3.4 C.2.2.2.5), so a day in Tokyo
matches the hours it covers in Berlin, which span two local dates.

A query without the offset, with a universal date, or with a value that is
not a date, a time, or a range of them is left as it is.
"""

from __future__ import annotations

import copy
import datetime as dt
import re

from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag

__all__ = ["localize"]

_OFFSET = Tag(0x0008, 0x0201)
_SPS = Tag(0x0040, 0x0100)
_DATE, _TIME = Tag(0x0040, 0x0002), Tag(0x0040, 0x0003)
_OFFSET_RE = re.compile(r"([+-])(\d{2})(\d{2})")
_DA_RE = re.compile(r"\d{8}")
_TM_RE = re.compile(r"(\d{2})(\d{2})?(\d{2})?(?:\.\d{1,6})?")


def localize(query: Dataset, zone: dt.tzinfo | None) -> Dataset:
    """``query`` with its SPS start keys moved from its offset to ``zone`` (None: local)."""
    offset = _offset(query)
    items = query.get(_SPS)
    if offset is None or not items or len(items.value) != 1:
        return query
    step = items.value[0]
    date = _text(step, _DATE)
    if not date or date == "*":
        return query
    bounds = _range(date, _text(step, _TIME), offset)
    if bounds is None:
        return query
    low, high = (None if b is None else b.astimezone(zone) for b in bounds)
    local = copy.deepcopy(query)
    local_step = local[_SPS].value[0]
    dates = f"{_fmt(low, '%Y%m%d')}-{_fmt(high, '%Y%m%d')}"
    times = f"{_fmt(low, '%H%M%S')}-{_fmt(high, '%H%M%S')}"
    local_step[_DATE] = DataElement(_DATE, "DA", dates, validation_mode=config.IGNORE)
    local_step[_TIME] = DataElement(_TIME, "TM", times, validation_mode=config.IGNORE)
    return local


def _fmt(moment: dt.datetime | None, pattern: str) -> str:
    return "" if moment is None else moment.strftime(pattern)


def _offset(query: Dataset) -> dt.timezone | None:
    found = _OFFSET_RE.fullmatch(_text(query, _OFFSET))
    if found is None:
        return None
    minutes = int(found[2]) * 60 + int(found[3])
    if minutes > 14 * 60 or int(found[3]) > 59:
        return None
    return dt.timezone(dt.timedelta(minutes=-minutes if found[1] == "-" else minutes))


def _text(ds: Dataset, tag: BaseTag) -> str:
    elem = ds.get(tag)
    if elem is None or elem.value is None:
        return ""
    value = elem.value
    return str(value[0] if isinstance(value, list | tuple) else value).strip()


def _range(
    date: str, time: str, offset: dt.timezone
) -> tuple[dt.datetime | None, dt.datetime | None] | None:
    """The date (and time) keys as an instant range in ``offset``; None if not understood."""
    d_low, _, d_high = date.partition("-") if "-" in date else (date, "", date)
    t_low, _, t_high = time.partition("-") if "-" in time else (time, "", time)
    try:
        low = _moment(d_low, t_low or "000000", offset, high=False) if d_low else None
        high = _moment(d_high, t_high or "235959", offset, high=True) if d_high else None
    except ValueError:
        return None
    if low is None and high is None:
        return None
    return low, high


def _moment(date: str, time: str, offset: dt.timezone, *, high: bool) -> dt.datetime:
    found = _TM_RE.fullmatch(time)
    if not _DA_RE.fullmatch(date) or found is None:
        raise ValueError("not a date or time")
    fill = 59 if high else 0
    hour = int(found[1])
    minute = int(found[2]) if found[2] else fill
    second = int(found[3]) if found[3] else fill
    day = dt.datetime.strptime(date, "%Y%m%d")
    return day.replace(hour=hour, minute=minute, second=second, tzinfo=offset)
