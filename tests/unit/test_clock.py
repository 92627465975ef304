"""The broker's clock (``broker.common.clock``): the manual clock tests move by hand, and
the rule that wall-clock time is read through a clock only."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest

import broker
from broker.common.clock import SYSTEM_CLOCK, ManualClock, local_date

BROKER = Path(broker.__file__).parent


def test_a_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(1000.0, monotonic=5.0)
    assert (clock.now(), clock.monotonic()) == (1000.0, 5.0)
    clock.advance(61.5)
    assert (clock.now(), clock.monotonic()) == (1061.5, 66.5)
    clock.set(10.0)  # the wall clock is set back: intervals are not
    assert (clock.now(), clock.monotonic()) == (10.0, 66.5)
    with pytest.raises(ValueError, match="does not go back"):
        clock.advance(-1)


def test_the_system_clock_is_the_machines() -> None:
    before = dt.datetime.now(dt.UTC).timestamp()  # the one place a test reads it directly
    assert before - 5 < SYSTEM_CLOCK.now() < before + 3600
    assert SYSTEM_CLOCK.monotonic() <= SYSTEM_CLOCK.monotonic()


def test_local_date_is_the_clocks_today_in_the_zone() -> None:
    clock = ManualClock(dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.UTC).timestamp())
    assert local_date(clock, dt.UTC) == dt.date(2026, 3, 1)
    assert local_date(clock, dt.timezone(dt.timedelta(hours=1))) == dt.date(2026, 3, 2)


def _wall_clock_reads(tree: ast.AST) -> list[int]:
    """Lines that use ``time.time`` or ``datetime.now``/``utcnow``/``today`` (called or not)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
        if (name, node.attr) == ("time", "time") or (
            name in ("datetime", "date") and node.attr in ("now", "utcnow", "today")
        ):
            found.append(node.lineno)
    return found


def test_wall_clock_time_is_read_through_the_clock_only() -> None:
    """Anything whose result depends on the time takes a ``Clock``; see clock.py."""
    reads = {
        str(path.relative_to(BROKER)): lines
        for path in sorted(BROKER.rglob("*.py"))
        if path.name != "clock.py"
        and (lines := _wall_clock_reads(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert reads == {}
