"""The dashboard's numbers, read cheaply from the indexes Redis already keeps.

Every read is bounded whatever the store holds: counts come from ``ZCOUNT``/``ZCARD``/
``SCARD`` (logarithmic or constant time), one pipeline per snapshot; the only reads of
message hashes are of the few newest errors, and of at most :data:`MAX_ACK_READS`
refused messages to tell an AE from an AR. The list of station AE titles comes from a
``SCAN`` of the ``idx:aet`` keys, which walks the key space: :class:`Counts` keeps it for
:data:`STATIONS_TTL` seconds (the configured scanners are always in it).

The ended entries of each station (the metrics' station x status family) are the ids in
both the station's index and the ended index: ``ZINTERCARD`` on Redis 7, else (the
embedded 6.2) the read-only script ``lua/count_ended.lua``, which looks the smaller
side's ids up in the other; one call per station, so that the scanners' queries run
between them. Either walks the smaller index, and blocks Redis while it does: a station
whose index and the ended index both hold more than :data:`MAX_INTERCARD_IDS` ids
(ZINTERCARD), or :data:`MAX_SCRIPT_IDS` (the script, about five times slower), is not
counted (left out of ``ended_by_station``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis

from broker.errors import StoreError
from broker.store import scripts
from broker.store.keys import KeySchema
from broker.store.message_records import Outcome

__all__ = [
    "MAX_ACK_READS",
    "MAX_INTERCARD_IDS",
    "MAX_SCRIPT_IDS",
    "STATIONS_TTL",
    "Counts",
    "LogCounts",
    "RecentError",
    "WorklistCounts",
]

MAX_ACK_READS = 500  # refused messages of the window read for their ACK code at most
STATIONS_TTL = 60.0  # seconds the station list found by SCAN is kept
MAX_STATIONS = 200  # station AE titles counted at most
# A station's ended entries are not counted when its index and the ended index both hold
# more ids than this: the smaller one is walked, Redis blocked meanwhile (bench/counts.py:
# about 0.6 ms a 1,000 ids for the script on Redis 6.2, 0.1 to 0.2 ms for ZINTERCARD on
# 7.0, more per id for larger indexes;
# the metrics' help and README name both).
MAX_SCRIPT_IDS = 10_000
MAX_INTERCARD_IDS = 30_000
_COUNT_ENDED = scripts.load("count_ended")
_ERROR_FIELDS = ("type", "err_loc", "err_code", "ack_code", "received")
# the ACK code of each outcome; ERROR's is read from its record (AE or AR)
_ACK = {
    Outcome.ACCEPTED: "AA",
    Outcome.OUT_OF_ORDER: "AA",
    Outcome.DUPLICATE: "AA",  # answered with the first ACK, nearly always an AA
    Outcome.INTERNAL_ERROR: "AE",
    Outcome.STORE_FAILURE: "AR",
    Outcome.REJECTED: "AR",
}


@dataclass(frozen=True)
class RecentError:
    """A message on the error list, without any value it carried."""

    id: str
    message_type: str
    location: str
    code: str
    ack_code: str
    received_at: float


@dataclass(frozen=True)
class LogCounts:
    per_minute: tuple[int, ...]  # messages received in each minute of the last hour, oldest first
    acks: dict[str, int]  # AA, AE, AR in the last hour
    errors: int  # on the error list now
    warnings: int
    total: int  # in the log now
    recent_errors: tuple[RecentError, ...]


@dataclass(frozen=True)
class WorklistCounts:
    total: int
    ended: int  # steps over (completed, discontinued, canceled) not yet purged
    by_station: dict[str, int]
    # the ended ones by station (ZINTERCARD, or lua/count_ended.lua before Redis 7); a
    # station over MAX_INTERCARD_IDS or MAX_SCRIPT_IDS is left out; None: none (< 6.2)
    ended_by_station: dict[str, int] | None = None


def _within(by_station: dict[str, int], ended: int, limit: int) -> tuple[dict[str, int], list[str]]:
    """Of the stations (with their index's size), the ones known to have no ended entry
    (0 each) and the ones to count: those whose count walks at most ``limit`` ids."""
    within = [s for s, n in by_station.items() if min(n, ended) <= limit]
    return {s: 0 for s in within}, [s for s in within if by_station[s] and ended]


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


class Counts:
    """The reads of one dashboard snapshot on ``client``."""

    def __init__(self, client: redis.Redis, keys: KeySchema, *, intercard: bool = True) -> None:
        self._redis = client
        self._keys = keys
        self._stations: tuple[float, tuple[str, ...]] | None = None
        # False once the server said it has no ZINTERCARD (or when told: the script alone)
        self._intercard = intercard
        self._scripts = scripts.ScriptRunner(client)  # read-only scripts: no WAIT to configure
        self._script_works = True  # False once the server could not run the script (< 6.2)

    def __repr__(self) -> str:
        return f"Counts({self._keys.prefix!r})"

    @property
    def ended_limit(self) -> int | None:
        """The most ids one station's ended count walks in the way this server counts them
        (a station over it is left out): ZINTERCARD's limit, the script's once the server
        said it has no ZINTERCARD, None once it can run neither."""
        if self._intercard:
            return MAX_INTERCARD_IDS
        return MAX_SCRIPT_IDS if self._script_works else None

    def messages(self, now: float, *, recent: int = 10) -> LogCounts:
        """The message log's counts for the hour before ``now`` (epoch seconds)."""
        try:
            return self._messages(now, recent)
        except redis.RedisError as e:
            raise StoreError(f"message log unavailable: {e}") from e

    def _messages(self, now: float, recent: int) -> LogCounts:
        k = self._keys
        end_ms = int(now * 1000)
        start_ms = end_ms - 3_600_000
        pipe = self._redis.pipeline(transaction=False)
        for minute in range(60):
            low = start_ms + minute * 60_000
            pipe.zcount(k.message_times(), f"({low}", low + 60_000)
        pipe.zrangebyscore(k.message_times(), f"({start_ms}", "+inf", start=0, num=1)
        pipe.zcard(k.message_errors())
        pipe.zcard(k.messages_with_warnings())
        pipe.zcard(k.message_log())
        pipe.zrevrange(k.message_errors(), 0, recent - 1)
        replies = pipe.execute()
        per_minute = tuple(int(n) for n in replies[:60])
        first, errors, warnings, total, newest = replies[60:]
        acks = self._acks(int(_text(first[0])) if first else None)
        return LogCounts(
            per_minute, acks, int(errors), int(warnings), int(total), self._errors(newest)
        )

    def _acks(self, first_id: int | None) -> dict[str, int]:
        acks = {"AA": 0, "AE": 0, "AR": 0}
        if first_id is None:
            return acks
        refused_key = self._keys.messages_by_outcome(Outcome.ERROR.value)
        pipe = self._redis.pipeline(transaction=False)
        for outcome in _ACK:
            pipe.zcount(self._keys.messages_by_outcome(outcome.value), first_id, "+inf")
        pipe.zcount(refused_key, first_id, "+inf")
        pipe.zrevrangebyscore(refused_key, "+inf", first_id, start=0, num=MAX_ACK_READS)
        *counts, refused_count, refused = pipe.execute()
        for outcome, n in zip(_ACK, counts, strict=True):
            acks[_ACK[outcome]] += int(n)
        pipe = self._redis.pipeline(transaction=False)
        for message_id in refused:
            pipe.hget(self._keys.message(_text(message_id)), "ack_code")
        codes = [_text(code) for code in pipe.execute()]
        acks["AR"] += codes.count("AR")
        acks["AE"] += int(refused_count) - codes.count("AR")  # the ones not read: AE
        return acks

    def _errors(self, ids: Sequence[object]) -> tuple[RecentError, ...]:
        pipe = self._redis.pipeline(transaction=False)
        names = [_text(i) for i in ids]
        for message_id in names:
            pipe.hmget(self._keys.message(message_id), list(_ERROR_FIELDS))
        found = []
        for message_id, values in zip(names, pipe.execute(), strict=True):
            if values[0] is None:
                continue  # expired since the list was read
            kind, location, code, ack, received = (_text(v) for v in values)
            found.append(RecentError(message_id, kind, location, code, ack, float(received or 0)))
        return tuple(found)

    def worklist(
        self, now: float, configured: Iterable[str], *, by_status: bool = False
    ) -> WorklistCounts:
        """The worklist's entries: all, ended, and by station AE title; ``by_status``: the
        ended ones by station too (``ended_by_station``: see the module docstring)."""
        try:
            stations = self._station_list(now, configured)
            pipe = self._redis.pipeline(transaction=False)
            pipe.scard(self._keys.all_entries())
            pipe.zcard(self._keys.entries_ended())
            for station in stations:
                pipe.scard(self._keys.by_station(station))
            total, ended, *per_station = pipe.execute()
        except redis.RedisError as e:
            raise StoreError(f"worklist unavailable: {e}") from e
        by_station = {s: int(n) for s, n in zip(stations, per_station, strict=True)}
        ended_by_station = self._ended_by_station(by_station, int(ended)) if by_status else None
        return WorklistCounts(int(total), int(ended), by_station, ended_by_station)

    def _ended_by_station(self, by_station: dict[str, int], ended: int) -> dict[str, int] | None:
        """The ended entries of each station of ``by_station`` (its index's size) but those
        over the limit of the way they are counted; None when the server can count none."""
        try:
            found = self._intercards(by_station, ended) if self._intercard else None
            return found if found is not None else self._counted_by_script(by_station, ended)
        except redis.RedisError as e:
            raise StoreError(f"worklist unavailable: {e}") from e

    def _intercards(self, by_station: dict[str, int], ended: int) -> dict[str, int] | None:
        """``ZINTERCARD`` of each station's index and the ended index, in C; None (and not
        asked again) on a server before Redis 7.0."""
        counted, asked = _within(by_station, ended, MAX_INTERCARD_IDS)
        pipe = self._redis.pipeline(transaction=False)
        for station in asked:
            pipe.zintercard(2, [self._keys.by_station(station), self._keys.entries_ended()])
        try:
            found = pipe.execute() if asked else []
        except redis.ResponseError as e:
            if "unknown command" not in str(e).lower():
                raise
            self._intercard = False
            return None
        return counted | {s: int(n) for s, n in zip(asked, found, strict=True)}

    def _counted_by_script(self, by_station: dict[str, int], ended: int) -> dict[str, int] | None:
        """``lua/count_ended.lua`` for each station, one call at a time; None (and not
        asked again) when the server cannot run it (no ZMSCORE before Redis 6.2)."""
        if not self._script_works:
            return None
        counted, asked = _within(by_station, ended, MAX_SCRIPT_IDS)
        keys = self._keys
        for station in asked:
            try:
                n = int(
                    self._scripts.run(
                        _COUNT_ENDED,
                        [keys.by_station(station), keys.entries_ended()],
                        [MAX_SCRIPT_IDS],
                    )
                )
            except StoreError as e:
                if "unknown" not in str(e).lower() or "command" not in str(e).lower():
                    raise
                self._script_works = False
                return None
            if n >= 0:  # -1: grown over the limit since its size was read
                counted[station] = n
        return counted

    def _station_list(self, now: float, configured: Iterable[str]) -> tuple[str, ...]:
        if self._stations is not None and now - self._stations[0] < STATIONS_TTL:
            return self._stations[1]
        prefix = self._keys.by_station("")
        found = set(configured)
        for key in self._redis.scan_iter(
            match=re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*", count=1000
        ):
            found.add(re.sub(r"\\(.)", r"\1", _text(key)[len(prefix) :]))
            if len(found) >= MAX_STATIONS:
                break
        stations = tuple(sorted(found))
        self._stations = (now, stations)
        return stations
