"""C-FIND benchmark: the broker against DCMTK wlmscpfs and the pynetdicom ceiling.

For each size (1k, 10k, 100k entries by default) it generates the same
worklist entries (``bench.cfind_data``: 20 stations, 9 modalities, 30 days,
seeded), and runs three servers on loopback, each its own process:

- the broker (``mwl-broker serve``, embedded redis-server, appendfsync always),
  its entries written straight into its Redis with ``WorklistStore.apply``;
- DCMTK ``wlmscpfs -dfp DIR -csk PORT`` over the same entries as ``DIR/WLMSCPFS/*.wl``
  (bare implicit-VR datasets, ISO_IR 192), with ``TCP_NODELAY=1``;
- the ceiling (``bench.cfind_ceiling``): a minimal pynetdicom SCP that yields
  precomputed answers.

One client (``bench.cfind_client``, pynetdicom SCU, one association per worker
thread) sends station polls (station AE + one day), patient queries (Patient
ID) and broad queries (modality + 7 days) at concurrency 1 and 8, server by
server in turn, and checks every query's answers (Accession Numbers) against
the expected matches: a mismatch stops the run. Repetitions per cell are the
defaults below, cut to what fits ``--budget`` seconds (never fewer than 5, or
8 at concurrency 8): wlmscpfs at 100k takes seconds per query, so it gets few.
The broker and the ceiling always get the same queries (the smaller count).
Each cell is run in ``--rounds`` parts that alternate between the servers, so
that other load on the (shared) machine falls on all servers alike.
The broker's RSS (/proc VmRSS) is sampled during its cells. Then the ceiling
again with TCP_NODELAY only and with neither socket option (and, at the first
size, wlmscpfs without TCP_NODELAY), to show the Nagle/delayed-ACK stall.
Not a test: prints figures (Markdown tables).

    .venv/bin/python -m bench.cfind [--sizes 1000 10000 100000] [--budget 30]
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
from pathlib import Path

from bench.cfind_client import CellResult, quiet_pynetdicom
from bench.cfind_data import all_queries, expected_matches, generate, make_queries
from bench.cfind_report import HEADER, describe_machine, row, summary
from bench.cfind_servers import (
    Server,
    load,
    start_broker,
    start_ceiling,
    start_wlmscpfs,
    vm_rss_kib,
)
from bench.cfind_workload import DEFAULT_REPS, KINDS, Workload


def run_size(count: int, args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    print(f"\n## {count:,} entries\n", flush=True)
    entries = generate(count, args.seed)
    queries = make_queries(entries, args.seed)
    matches = expected_matches(entries, list(all_queries(queries)))
    expected = {q: sorted(e.accession for e in es) for q, es in matches.items()}
    gc.collect()
    gc.freeze()  # the data stays: no full collections over it during the queries
    data_dir, wl_root = tmp / f"broker-{count}", tmp / f"wl-{count}"
    servers: list[Server] = []
    results: dict[tuple[str, str, int], CellResult] = {}
    try:
        broker = start_broker(data_dir, args.entry_cache)
        servers.append(broker)
        seconds = load(entries, data_dir, wl_root / "WLMSCPFS")
        print(f"loaded {count:,} entries into the broker's Redis and wlmscpfs files "
              f"in {seconds:.0f} s", flush=True)  # fmt: skip
        ceiling = start_ceiling(count, args.seed)
        servers.insert(0, ceiling)
        servers.append(start_wlmscpfs(wl_root, tmp / "wlmscpfs.log"))
        print(f"ceiling: {ceiling.info}; broker RSS {vm_rss_kib(broker.proc.pid) / 1024:.0f} MiB"
              " after loading\n", flush=True)  # fmt: skip
        print(HEADER, flush=True)
        work = Workload(queries, expected, args)
        for kind in KINDS:
            if kind != "broad" and args.entry_cache != 0:
                work.warm(broker, kind)
            for concurrency in args.concurrency:
                for name, r in work.measure(servers, kind, concurrency).items():
                    results[name, kind, concurrency] = r
                    print(row(kind, concurrency, name, r), flush=True)
        if args.socket_variants:
            variants = [start_ceiling(count, args.seed, m) for m in ("nodelay", "none")]
            if count == args.sizes[0]:
                variants.append(start_wlmscpfs(wl_root, tmp / "wlmscpfs.log", nodelay=False))
            servers += variants
            for kind in ("station", "patient"):
                for name, r in work.measure(variants, kind, 1).items():
                    results[name, kind, 1] = r
                    print(row(kind, 1, name, r), flush=True)
        print(f"\nload average after {count:,}: {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        for server in servers:
            server.stop()
    return {"results": results, "ceiling_info": ceiling.info}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--budget", type=float, default=30.0, help="seconds per cell, about")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="alternations between servers")
    parser.add_argument(
        "--entry-cache", type=int, default=None,
        help="the broker's dicom_entry_cache (default: its own); 0: off, no warm-up pass",
    )  # fmt: skip
    parser.add_argument(
        "--no-socket-variants", dest="socket_variants", action="store_false",
        help="skip the ceiling without TCP_NODELAY / TCP_QUICKACK",
    )  # fmt: skip
    args = parser.parse_args()
    quiet_pynetdicom()
    describe_machine()
    print(
        f"repetitions per cell: defaults {DEFAULT_REPS} (conc. 1, conc. >1), cut to about "
        f"{args.budget:.0f} s of queries per cell, at least 5 (conc. 1) / 8"
    )
    cache = "its default" if args.entry_cache is None else str(args.entry_cache)
    print(
        f"broker dicom_entry_cache: {cache}" + (", warm-up pass" if args.entry_cache != 0 else "")
    )
    all_results = {}
    with tempfile.TemporaryDirectory(prefix="cfind-bench-") as tmp:
        for count in args.sizes:
            all_results[count] = run_size(count, args, Path(tmp))
    summary(all_results, args.concurrency)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
