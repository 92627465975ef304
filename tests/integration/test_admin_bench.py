"""The admin console benchmark (``bench.admin``) on a few entries, for behaviour only: a real
broker process, a viewer logged in over HTTP, the scanner and the RIS served while admins
browse. Its figures go to bench/RESULTS.md, not here."""

from __future__ import annotations

import pytest

from bench.admin import MODES, run


@pytest.mark.timeout(600)
def test_the_searches_answer_and_the_clients_are_served_while_admins_browse() -> None:
    outcome = run(["--sizes", "300", "--interference", "300", "--rounds", "1", "--searches", "2",
                   "--phase", "1"])  # fmt: skip
    assert len(outcome.search_rows) == 4 and not outcome.search_refused
    figures = outcome.figures[300]
    assert list(figures) == list(MODES)
    for mode, f in figures.items():
        assert f.samples["polls"] and f.samples["orders"], (mode, f.samples)
        assert set(f.samples) == {"polls", "orders"}, f.samples  # no client errors
        if MODES[mode][0]:
            assert f.tally["requests"], (mode, f.tally)
            assert not {k for k in f.tally if k.startswith("events ")}, f.tally
