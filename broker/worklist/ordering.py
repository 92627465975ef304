"""Message order: an older message never overwrites a newer state of an order.

Messages can arrive out of order (a resend after a lost ACK, several
interfaces feeding one broker). MSH-7, Date/Time Of Message (HL7 v2.5.1
§2.14.9.7), is when the sending system created the message; the store
records, per order, the newest MSH-7 of the messages applied to it and skips
an order change whose MSH-7 is certainly older (``broker.store.worklist``).

An HL7 DTM (v2.5.1 §2A.22; the TS of MSH-7 is a DTM plus a deprecated
precision component, §2A.77) has a precision — ``2026`` is a whole year,
``20260101120000.12`` a hundredth of a second — so it names an interval of
instants, not an instant. A message is older only when its whole interval
ends no later than the newest applied message's interval starts; equal or
overlapping timestamps are applied, in arrival order. Both ends are UTC,
written ``YYYYMMDDHHMMSS.ffffff`` so that they compare as text in the Lua
script (Lua numbers are doubles and would lose microseconds).

A DTM without ``+/-ZZZZ`` is in "the local time zone of the sender"
(§2A.22), which the broker cannot know: it is read in the zone configured
for that sender (``hl7_sender_timezones``), else the site's
(``site_timezone``), else the broker host's.
A missing or unparsable MSH-7 gives no ordering information: such a
message is applied as if ordering were not checked, and records nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo

__all__ = ["MessageTime", "message_time", "seconds_ahead"]

# HL7 v2.5.1 §2A.22 DTM: YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]
_DTM_RE = re.compile(
    r"(?P<Y>\d{4})(?:(?P<m>\d{2})(?:(?P<d>\d{2})(?:(?P<H>\d{2})(?:(?P<M>\d{2})"
    r"(?:(?P<S>\d{2})(?:\.(?P<f>\d{1,4}))?)?)?)?)?)?(?P<tz>[+-]\d{4})?"
)


@dataclass(frozen=True)
class MessageTime:
    """MSH-7 as the UTC interval ``[earliest, latest)`` its precision allows."""

    earliest: str  # UTC "YYYYMMDDHHMMSS.ffffff": fixed width, so text order is time order
    latest: str  # exclusive end of the interval, same form

    def is_older_than(self, newest_earliest: str) -> bool:
        """Whether this message surely precedes one whose interval starts at ``newest_earliest``."""
        return self.latest <= newest_earliest


def message_time(value: str, local: tzinfo | None = None) -> MessageTime | None:
    """MSH-7.1 (HL7 v2.5.1 §2A.22 DTM) as a UTC interval; None when absent or invalid.

    ``local`` is the sender's zone for a value without an offset (None: the host's).
    """
    match = _DTM_RE.fullmatch(value.strip())
    if match is None:
        return None
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None and k not in "ftz"}
    try:
        start = datetime(
            parts["Y"],
            parts.get("m", 1),
            parts.get("d", 1),
            parts.get("H", 0),
            parts.get("M", 0),
            parts.get("S", 0),
            int((match["f"] or "0").ljust(6, "0")),
        )
        end = _after(start, match)
        offset = _zone(match["tz"])
        if offset is None and local is None:  # the sender's local time: the host's (docstring)
            return MessageTime(_utc(start.astimezone(UTC)), _utc(end.astimezone(UTC)))
        zone: tzinfo | None = offset if offset is not None else local
        return MessageTime(
            _utc(start.replace(tzinfo=zone).astimezone(UTC)),
            _utc(end.replace(tzinfo=zone).astimezone(UTC)),
        )
    except (ValueError, OverflowError):
        return None


def _after(start: datetime, match: re.Match[str]) -> datetime:
    """The end of the interval: ``start`` plus one unit of the value's precision."""
    if match["f"] is not None:
        return start + timedelta(seconds=10 ** -len(match["f"]))
    for group, step in (("S", "seconds"), ("M", "minutes"), ("H", "hours"), ("d", "days")):
        if match[group] is not None:
            return start + timedelta(**{step: 1})
    if match["m"] is not None:
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start.replace(year=start.year + 1)


def _zone(text: str | None) -> timezone | None:
    """``+/-HHMM`` as a fixed offset; None when absent; ValueError when out of range."""
    if text is None:
        return None
    hours, minutes = int(text[1:3]), int(text[3:5])
    if minutes >= 60:
        raise ValueError(f"time zone offset {text} has {minutes} minutes")
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if text[0] == "-" else offset)


def seconds_ahead(sent: MessageTime, now: float) -> float:
    """How far the start of MSH-7's interval lies after ``now`` (epoch seconds); <= 0 if not."""
    start = datetime.strptime(sent.earliest, "%Y%m%d%H%M%S.%f").replace(tzinfo=UTC)
    return start.timestamp() - now


def _utc(moment: datetime) -> str:
    m = moment
    return (
        f"{m.year:04d}{m.month:02d}{m.day:02d}{m.hour:02d}{m.minute:02d}{m.second:02d}"
        f".{m.microsecond:06d}"
    )
