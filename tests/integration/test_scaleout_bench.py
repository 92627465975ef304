"""The scale-out benchmark (``bench.scaleout``) on a few entries, for behaviour only: every
arrangement's processes start on one Redis, the scanner is answered as expected and the
HL7 orders are acknowledged in each. Its figures go to bench/RESULTS.md, not here."""

from __future__ import annotations

import pytest

from bench.scaleout import ARRANGEMENTS, run


@pytest.mark.timeout(600)
def test_every_arrangement_serves_the_scanner_and_the_ris() -> None:
    results = run(["--entries", "300", "--rates", "50", "--phase", "1", "--rounds", "1",
                   "--warmup", "0.5", "--connections", "2"])  # fmt: skip
    assert list(results) == list(ARRANGEMENTS)
    for name, cells in results.items():
        assert list(cells) == [0.0, 50.0]
        for cell in cells.values():
            assert cell.polls and not cell.errors, (name, cell.errors)  # answers as expected
            assert len(cell.cpu[0]) == len(ARRANGEMENTS[name][0])  # a figure per process
        assert cells[50.0].acks and cells[50.0].rates, name  # run_paced raises on no ACK
