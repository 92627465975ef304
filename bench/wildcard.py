"""Wild card attack benchmark: a Patient's Name key of ``*?`` k times then ``#``.

1. In-process, one entry whose name has 36 characters: the key as regular
   expressions translated it before (``*`` to ``.*``, ``?`` to ``.``, Python
   ``re``; the broker's matching until commit 624f3cf), for k up to
   ``--old-max-k``, against ``broker.dicom.matching.matches`` now, k = 8..30.
2. Over the network: ``mwl-broker serve`` with ``--entries`` entries (the
   C-FIND benchmark's data, ``bench.cfind_data``); station polls alone, then
   while ``--attackers`` associations send the attack query (k = 30, no other
   key, so every entry is a candidate) back to back. Reports poll latency and
   what the attack queries got (status, time); then ``--broad`` legitimate
   broad queries (modality + 7 days) at once, to show where the default work
   budget stands for them. Not a test: prints figures.

    .venv/bin/python -m bench.wildcard [--entries 10000] [--attackers 1] [--broad 8]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import threading
import time
from collections import Counter
from functools import lru_cache
from pathlib import Path

import redis
from pydicom import config
from pydicom.dataset import Dataset
from pynetdicom import AE

from bench.cfind_client import CellResult, _one_query, associate, quiet_pynetdicom, run_cell
from bench.cfind_data import (
    Query,
    entry_dataset,
    expected_matches,
    generate,
    make_queries,
    query_dataset,
)
from bench.cfind_report import describe_machine
from bench.cfind_servers import broker_store, start_broker
from broker.dicom.matching import matches
from broker.dicom.server import ModalityWorklistInformationFind
from broker.store.connection import running_embedded
from broker.store.worklist import WorklistStore
from broker.worklist.model import OrderAction, OrderChange

NAME = "Abcdefghijklmnopqrstuvwxyz^Abcdefgh"  # 36 characters, as in the issue


def attack_key(k: int) -> str:
    return "*?" * k + "#"


@lru_cache(maxsize=64)
def _old_regex(pattern: str) -> re.Pattern[str]:
    """The translation matching used before (``*`` -> ``.*``, ``?`` -> ``.``)."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def per_call(fn: object, budget: float = 0.5) -> float:
    """Median seconds of one call of ``fn``, repeated for about ``budget`` seconds."""
    assert callable(fn)
    times: list[float] = []
    spent = 0.0
    while spent < budget or len(times) < 3:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        spent += times[-1]
    return statistics.median(times)


def in_process(old_max_k: int) -> None:
    entry = Dataset()
    entry.PatientName = NAME
    print("\n## One entry, in-process (36-character name)\n")
    print("| k | translated regex (before) | `matches()` now |")
    print("|---|---|---|")
    for k in (6, 8, 9, 10, 12, 16, 20, 30):
        key = attack_key(k)
        query = Dataset()
        query.PatientName = key
        now = per_call(lambda q=query: matches(q, entry))
        if k <= old_max_k:
            pattern = _old_regex(key.casefold())
            t0 = time.perf_counter()  # once: seconds per call
            pattern.fullmatch(NAME.casefold())
            old = f"{time.perf_counter() - t0:.3g} s"
        else:
            old = "(not run: doubles with each k)"
        print(f"| {k} | {old} | {now * 1e6:.0f} µs |", flush=True)


def load(data_dir: Path, count: int) -> tuple[dict[str, list[Query]], dict[Query, list[str]]]:
    """Writes the entries into the broker's Redis; the queries of the C-FIND benchmark
    (station polls, broad queries) and their answers."""
    found = running_embedded(data_dir / "redis")
    assert found is not None, "the broker's embedded redis-server is not running"
    client = redis.Redis(unix_socket_path=str(found[1]), socket_timeout=300)
    try:
        return load_into(broker_store(client, data_dir), count)
    finally:
        client.close()


def load_into(
    store: WorklistStore, count: int
) -> tuple[dict[str, list[Query]], dict[Query, list[str]]]:
    """Writes the entries into ``store``; the queries and their answers (as ``load``)."""
    entries = generate(count)
    for i in range(0, len(entries), 500):
        store.apply(
            [
                OrderChange(f"BENCH:{e.accession}", OrderAction.SCHEDULE, (entry_dataset(e),))
                for e in entries[i : i + 500]
            ],
            None,
        )
    queries = make_queries(entries)
    matched = expected_matches(entries, queries["station"] + queries["broad"])
    return queries, {q: sorted(e.accession for e in es) for q, es in matched.items()}


def attack(port: int, k: int, stop: threading.Event | None) -> list[tuple[float, int, int]]:
    """The attack query, back to back until ``stop`` (once if None): (ms, status, answers)."""
    ae = AE(ae_title="ATTACKER")
    ae.dimse_timeout = ae.network_timeout = 600
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = associate(ae, port)
    assert assoc.is_established
    identifier = Dataset()
    identifier.PatientName = attack_key(k)
    identifier.AccessionNumber = ""
    out: list[tuple[float, int, int]] = []
    try:
        while True:
            latency, answered, final = _one_query(assoc, identifier, len(out) + 1)
            out.append((latency, final, len(answered)))
            if stop is None or stop.is_set():
                return out
    finally:
        assoc.release()


def poll_row(label: str, r: CellResult) -> str:
    return (
        f"| {label} | {len(r.latencies)} | {r.p50:.1f} | {r.pct(95):.1f} | {r.pct(99):.1f} "
        f"| {max(r.latencies):.1f} |"
    )


def broad_round(
    port: int, queries: list[Query], expected: dict[Query, list[str]], concurrency: int
) -> list[tuple[float, int, bool]]:
    """``concurrency`` legitimate broad queries at once: (ms, status, answers as expected)."""
    out: list[tuple[float, int, bool]] = []

    def one(q: Query) -> None:
        ae = AE(ae_title="BROAD")
        ae.dimse_timeout = ae.network_timeout = 600
        ae.add_requested_context(ModalityWorklistInformationFind)
        assoc = associate(ae, port)
        try:
            latency, answered, final = _one_query(assoc, query_dataset(q), 1)
            out.append((latency, final, sorted(answered) == expected[q]))
        finally:
            assoc.release()

    threads = [
        threading.Thread(target=one, args=(queries[i % len(queries)],), daemon=True)
        for i in range(concurrency)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def over_network(count: int, attackers: int, reps: int, broad_concurrency: int) -> None:
    with tempfile.TemporaryDirectory(prefix="wildcard-bench-") as tmp:
        broker = start_broker(Path(tmp) / "broker", None)
        try:
            queries, expected = load(Path(tmp) / "broker", count)
            polls = queries["station"]
            port = broker.port
            run_cell(port, "MWL_BROKER", polls, expected, concurrency=1, reps=len(polls), warmup=0)
            alone = run_cell(
                port, "MWL_BROKER", polls, expected, concurrency=1, reps=reps, warmup=1
            )
            stop = threading.Event()
            attacks: list[tuple[float, int, int]] = []

            def attacker() -> None:
                attacks.extend(attack(port, 30, stop))

            threads = [threading.Thread(target=attacker, daemon=True) for _ in range(attackers)]
            for t in threads:
                t.start()
            time.sleep(1.0)  # let the attack queries get going
            under = run_cell(
                port, "MWL_BROKER", polls, expected, concurrency=1, reps=reps, warmup=1
            )
            stop.set()
            for t in threads:
                t.join()
            # 63 and 65 characters: PN allows 64
            refused = [(k, attack(port, k, None)[0]) for k in (31, 32)]
            broad = broad_round(port, queries["broad"], expected, broad_concurrency)
        finally:
            broker.stop()
    print(f"\n## {count:,} entries, over the network\n")
    print("Station polls (concurrency 1), ms:\n")
    print("| | polls | p50 | p95 | p99 | max |")
    print("|---|---|---|---|---|---|")
    print(poll_row("alone", alone))
    print(poll_row(f"with {attackers} attacker(s) sending k = 30", under))
    statuses = Counter(f"0x{s:04X}" for _, s, _ in attacks)
    times = [ms for ms, _, _ in attacks]
    print(
        f"\nAttack queries (k = 30, {count:,} candidates each): {len(attacks)} answered "
        f"({dict(statuses)}), {sum(n for _, _, n in attacks)} answers; "
        f"p50 {statistics.median(times):.0f} ms, max {max(times):.0f} ms."
    )
    for k, (ms, status, _) in refused:
        print(f"k = {k} ({2 * k + 1} characters): status 0x{status:04X} in {ms:.1f} ms.")
    print(
        f"\nLegitimate broad queries (modality + 7 days), {broad_concurrency} at once, no attack: "
        + ", ".join(
            f"0x{s:04X}{'' if ok else ' (not all answers)'} in {ms:.0f} ms" for ms, s, ok in broad
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--attackers", type=int, default=1)
    parser.add_argument("--polls", type=int, default=200, help="station polls per measurement")
    parser.add_argument("--old-max-k", type=int, default=10, help="largest k run the old way")
    parser.add_argument(
        "--broad", type=int, default=8, help="broad queries sent at once, at the end"
    )
    args = parser.parse_args()
    quiet_pynetdicom()
    config.settings.reading_validation_mode = config.IGNORE  # the client's 65-character key
    describe_machine()
    in_process(args.old_max_k)
    over_network(args.entries, args.attackers, args.polls, args.broad)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
