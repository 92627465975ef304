"""Proof of crash safety, bounded for CI: 8 resending MLLP connections, about 1,500
messages (orders, changes, cancels, ADT A08), a modality doing MPPS, the broker process
killed with SIGKILL twice and its embedded redis-server once (``tests.crash``). Afterwards
nothing acknowledged is lost, nothing applied twice, nothing stored that nobody sent, no AA
while Redis was down, and every status reached the RIS once and in order."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from tests.crash.scenario import run_soak

MESSAGES = 1500


@pytest.mark.timeout(900)  # a busy machine: every wait inside is a condition with a bound
# pynetdicom leaves a socket open when an association is refused or lost (the modality
# tried a broker just killed); the garbage collector closes it, with a ResourceWarning
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in.*socket:pytest.PytestUnraisableExceptionWarning"
)
def test_kills_under_load_lose_nothing_and_apply_nothing_twice(tmp_path: Path) -> None:
    report = run_soak(tmp_path, messages=MESSAGES, connections=8, broker_kills=2, redis_kills=1)
    gc.collect()  # those sockets closed now, under this test's filter
    said = "\n".join(report.lines())
    assert report.failures() == dict.fromkeys(report.failures(), 0), said
    assert report.acked == report.messages >= MESSAGES, said
    assert (report.broker_kills, report.redis_kills) == (2, 1), said
    assert report.exit_codes == [-9, 3, -9], said  # killed; stopped by itself (Redis lost); killed
    assert report.answers.get("no answer", 0) > 0, said  # the kills were seen by the senders
    assert report.performed > 0 and report.status_messages >= 2 * report.performed, said
