"""A C-FIND's work budget (``broker.dicom.budget``) on a clock the test moves by hand."""

from __future__ import annotations

import pytest

from broker.dicom.budget import QueryBudget
from broker.dicom.status import Status
from broker.errors import DicomServiceError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_candidates_are_counted_up_to_the_limit() -> None:
    budget = QueryBudget(3, 10.0, Clock())
    for _ in range(3):
        budget.examine()
    with pytest.raises(DicomServiceError) as caught:
        budget.examine()
    assert caught.value.status == Status.OUT_OF_RESOURCES
    assert caught.value.comment == "over 3 candidate entries; narrow the query"
    assert budget.examined == 3


def test_expect_refuses_at_once() -> None:
    budget = QueryBudget(3, 10.0, Clock())
    budget.expect(3)
    with pytest.raises(DicomServiceError):
        budget.expect(4)
    assert budget.examined == 0


def test_time_while_paused_is_not_spent() -> None:
    clock = Clock()
    budget = QueryBudget(100, 2.0, clock)
    clock.now += 1.5
    budget.examine()
    budget.pause()
    clock.now += 60.0  # an answer being sent to a slow scanner
    budget.pause()  # pausing twice changes nothing
    budget.resume()
    budget.resume()
    assert budget.seconds_spent == pytest.approx(1.5)
    budget.examine()
    clock.now += 0.6
    with pytest.raises(DicomServiceError) as caught:
        budget.examine()
    assert caught.value.status == Status.OUT_OF_RESOURCES
    assert caught.value.comment == "over 2 CPU seconds of searching; narrow the query"
    assert budget.examined == 2
