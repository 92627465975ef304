"""Refusals logged at a bounded rate (``broker.common.refusals``)."""

from __future__ import annotations

import logging

import pytest

from broker.common.clock import ManualClock
from broker.common.refusals import RefusalLog


def test_one_line_per_address_and_reason_a_minute_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    refusals = RefusalLog(logging.getLogger("t"), "MLLP", interval=60, clock=clock)
    with caplog.at_level(logging.WARNING, logger="t"):
        for _ in range(1000):
            refusals.refused("10.0.0.9", "not a listed sender")
        refusals.refused("10.0.0.9", "too many connections")  # another reason: its own line
        refusals.refused("10.0.0.8", "not a listed sender")  # another address: its own line
        clock.advance(61.0)
        refusals.refused("10.0.0.9", "not a listed sender")
    assert [r.getMessage() for r in caplog.records] == [
        "MLLP 10.0.0.9: not a listed sender",
        "MLLP 10.0.0.9: too many connections",
        "MLLP 10.0.0.8: not a listed sender",
        "MLLP 10.0.0.9: not a listed sender (and 999 more since the last line)",
    ]


def test_the_table_of_addresses_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    refusals = RefusalLog(logging.getLogger("t"), "DICOM", max_addresses=10, clock=ManualClock())
    with caplog.at_level(logging.WARNING, logger="t"):
        for n in range(100):
            refusals.refused(f"10.0.0.{n}", "refused")
        refusals.refused("10.0.0.0", "refused")  # pushed out of the table: logged again
        refusals.refused("10.0.0.99", "refused")  # still in it: counted
    assert len(caplog.records) == 101 and "addresses=10" in repr(refusals)
