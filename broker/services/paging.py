"""A search's page from its matching entries: the first ``count`` in the answers' order,
without holding them all (``first``), or from entries read day by day (``first_by_day``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from pydicom.dataset import Dataset

__all__ = ["first", "first_by_day"]

_T = TypeVar("_T")


def first(entries: Iterable[_T], count: int, key: Callable[[_T], tuple[str, ...]]) -> list[_T]:
    """The first ``count`` of ``entries`` in ``key`` order, holding at most ``2 * count``
    at a time (as the C-FIND SCP's sorted answers do)."""
    held: list[tuple[tuple[str, ...], int, _T]] = []  # each key computed once
    for n, entry in enumerate(entries):
        held.append((key(entry), n, entry))
        if len(held) > 2 * count:
            held = sorted(held)[:count]
    return [entry for _, _, entry in sorted(held)[:count]]


def first_by_day(
    days: Iterable[tuple[int, Iterable[tuple[str, Dataset]]]],
    count: int,
    key: Callable[[Dataset], tuple[str, ...]],
) -> list[tuple[str, Dataset]]:
    """The first ``count`` entries (with their ids) of ``days`` in ``key`` order, ties in id
    order, where ``key`` starts with the SPS start (date and time) and ``days`` come in
    ascending order, each as its YYYYMMDD number and its entries: a dated entry's start
    begins with its day (the date index is scored by that date), so no entry of a later
    day comes before one that starts on or before the day just read. The undated come
    first, as day 0, and are placed by their own keys: a start of a time alone (no date)
    may sort among the dates. Stops after the first day at whose end the first ``count``
    held all start on or before it."""
    held: list[tuple[tuple[str, ...], str, Dataset]] = []

    def order(item: tuple[tuple[str, ...], str, Dataset]) -> tuple[tuple[str, ...], str]:
        return item[0], item[1]

    for day, entries in days:
        for entry_id, entry in entries:
            held.append((key(entry), entry_id, entry))
            if len(held) > 2 * count:
                held = sorted(held, key=order)[:count]
        held = sorted(held, key=order)[:count]
        if len(held) == count and held[-1][0][0][:8] <= f"{day:08d}":
            break
    return [(entry_id, entry) for _, entry_id, entry in held]
