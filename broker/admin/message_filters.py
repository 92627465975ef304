"""The query string of ``GET /api/messages``, read into a ``MessageQuery``.

The filters carry no patient data (sender, type, control ID, outcome, times, paging),
so they may be a query string. Every value is checked here and a bad one is a 400
naming the parameter (never echoing more than a short prefix of what was sent); an
unknown parameter is refused too, so that a typo does not silently widen a listing.
Times are ISO 8601 (``2026-12-05T08:30``, ``2026-12-05T08:30:00+01:00``; without an
offset they are the site's time, ``site_timezone``) or seconds since the epoch.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from broker.admin.problems import ApiProblem
from broker.store.message_records import MessageQuery, Outcome

__all__ = ["MAX_LIMIT", "OPENAPI_PARAMETERS", "PARAMETERS", "message_query"]

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
_TEXT = {
    "sender": "sending_application",
    "facility": "sending_facility",
    "type": "message_type",
    "control_id": "control_id",
}
_FLAGS = {"errors_only", "warnings_only"}
_TIMES = {"since", "until"}
PARAMETERS = frozenset({*_TEXT, *_FLAGS, *_TIMES, "outcome", "before", "limit"})
_DESCRIPTIONS = {
    "sender": "MSH-3 sending application, as received",
    "facility": "MSH-4 sending facility, as received",
    "type": "message type, e.g. ORM^O01",
    "control_id": "MSH-10 message control ID, exact",
    "outcome": "accepted, out-of-order, duplicate, error, store-failure, internal-error, rejected",
    "errors_only": "true: only messages on the error list",
    "warnings_only": "true: only messages answered with warnings",
    "since": "received at or after: ISO 8601 (site time without an offset) or epoch seconds",
    "until": "received at or before: ISO 8601 or epoch seconds",
    "before": "paging: only ids below this (the previous page's next)",
    "limit": f"at most this many, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})",
}
# for the route's OpenAPI document: every value is read (and checked) by message_query
OPENAPI_PARAMETERS = [
    {"name": name, "in": "query", "required": False, "description": text,
     "schema": {"type": "string"}}
    for name, text in _DESCRIPTIONS.items()
]  # fmt: skip
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}
_MAX_TEXT = 200


def _bad(name: str, why: str) -> ApiProblem:
    return ApiProblem(400, f"{name}: {why}")


def _flag(name: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _bad(name, "must be true or false")


def _int(name: str, value: str, low: int, high: int) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        raise _bad(name, f"must be a whole number from {low} to {high}")
    number = int(value)
    if not low <= number <= high:
        raise _bad(name, f"must be a whole number from {low} to {high}")
    return number


def _time(name: str, value: str, zone: dt.tzinfo | None) -> float:
    """Seconds since the epoch, from epoch seconds or ISO 8601 (site time if no offset)."""
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or not 0 <= seconds < 1e11:
            raise _bad(name, "epoch seconds out of range")
        return seconds
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _bad(
            name, "not a time: give ISO 8601 (2026-12-05T08:30:00+01:00) or epoch seconds"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone) if zone is not None else when.astimezone()
    return when.timestamp()


def _one(name: str, values: Sequence[str]) -> str:
    if len(values) > 1:
        raise _bad(name, "give it once")
    if len(values[0]) > _MAX_TEXT:
        raise _bad(name, f"longer than {_MAX_TEXT} characters")
    return values[0]


def message_query(items: Sequence[tuple[str, str]], zone: dt.tzinfo | None) -> MessageQuery:
    """The query for ``items`` (the request's query string, in order); 400 on a bad one."""
    given: dict[str, list[str]] = {}
    for name, value in items:
        if name not in PARAMETERS:
            raise _bad(name[:32], f"not a filter here (filters: {', '.join(sorted(PARAMETERS))})")
        given.setdefault(name, []).append(value)
    fields: dict[str, object] = {}
    for name, values in given.items():
        value = _one(name, values)
        if name in _TEXT:
            fields[_TEXT[name]] = value or None
        elif name in _FLAGS:
            fields[name] = _flag(name, value)
        elif name in _TIMES:
            fields[name] = _time(name, value, zone)
        elif name == "outcome":
            if value not in Outcome._value2member_map_:
                raise _bad(name, f"one of {', '.join(o.value for o in Outcome)}")
            fields[name] = Outcome(value)
        elif name == "before":
            fields["before_id"] = _int(name, value, 1, 2**62)
        else:
            fields["limit"] = _int(name, value, 1, MAX_LIMIT)
    since, until = fields.get("since"), fields.get("until")
    if isinstance(since, float) and isinstance(until, float) and since > until:
        raise _bad("since", "is after until")
    return MessageQuery(**fields)  # type: ignore[arg-type]
