"""The attack benchmark (``bench.attacks``) in its quick mode, for behaviour only: a real
broker process, attackers from addresses it does not list, a legitimate scanner and RIS
from addresses it does. Its figures (times, memory) go to bench/RESULTS.md, not here."""

from __future__ import annotations

import pytest

from bench.attacks import run


@pytest.mark.timeout(600)
def test_floods_are_refused_while_the_scanner_and_the_ris_are_served() -> None:
    results = run(["--quick", "--scenario", "f", "h"])
    assert [r.key for r in results] == ["f", "h"]
    for r in results:
        # f: every association from an unlisted address rejected; h: every order dated ten
        # years ahead answered AE at MSH-7, and none of them on the worklist
        assert r.report.defended, r.report.outcome
        assert r.report.times, r.report.outcome
        baseline, attack = r.poll
        assert baseline.requests and attack.requests
        assert r.ack[0].requests and r.ack[1].requests
        assert not r.legit_errors, dict(r.legit_errors)
