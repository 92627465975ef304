"""The Redis Sentinel failover, measured over several runs (``tests.sentinel_failover``).

    .venv/bin/python -m bench.sentinel_failover --runs 10

Each run: a primary, two replicas and three sentinels (Debian's redis-server 7.0 on
loopback, ``down-after-milliseconds 500``), a broker on them, four senders resending
what is not acknowledged, the primary killed with SIGKILL after 40 AAs. Printed per
``redis_wait_replicas``: the AA'd orders missing from the new primary, the NAKs, the
time from the kill to the last NAK, the longest an order waited for its AA, and how
many times the sentinels switched primaries (more than once: the newly promoted one,
busy, was taken for down as well and replaced).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import tempfile
from pathlib import Path

from tests.sentinel_failover import SENDERS, run_failover


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--per-sender", type=int, default=100)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed (Debian package redis-server)")
    print(f"{SENDERS} senders x {args.per_sender} orders, {args.runs} runs each")
    print(
        "| redis_wait_replicas | AA'd orders lost (per run) | failovers (per run) "
        "| NAKs per run (median) | kill to last NAK, s (median / max) "
        "| longest wait for an AA, s (median / max) |"
    )
    print("|---|---|---|---|---|---|")
    for wait in (1, 0):
        lost, naks, window, longest, switches = [], [], [], [], []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="mwl-sentinel-") as folder:
                outcome = run_failover(
                    Path(folder), server, wait_replicas=wait, per_sender=args.per_sender
                )
            assert outcome.unanswered == 0
            lost.append(len(outcome.lost))
            naks.append(sum(n for code, n in outcome.answers.items() if code != "AA"))
            window.append(outcome.refused_seconds)
            longest.append(outcome.longest_wait)
            switches.append(outcome.failovers)
        print(
            f"| {wait} | {', '.join(map(str, lost))} | {', '.join(map(str, switches))} "
            f"| {statistics.median(naks):.0f} "
            f"| {statistics.median(window):.2f} / {max(window):.2f} "
            f"| {statistics.median(longest):.2f} / {max(longest):.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
