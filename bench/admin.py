"""Admin console benchmark: the worklist search from the API, and what an admin browsing
costs the scanners and the RIS.

The broker runs as ``mwl-broker serve`` (``bench.cfind_servers.start_broker``: its own
embedded redis-server) with the C-FIND benchmark's entries (``bench.wildcard.load``), a
settings file listing one scanner (``CT01`` from 127.0.0.1, its own station) and one RIS,
and a console user of the viewer role (added with ``mwl-broker user add``, the password
on standard input).

1. Search: ``POST /api/worklist/search`` as the viewer, over HTTP with keep-alive, one at
   a time, ``--searches`` distinct searches of each kind (``bench.admin_console.KINDS``)
   per round; the kinds alternate within a round, ``--rounds`` rounds; p50 and p95 (ms)
   of each round, reported as the median of the rounds (min-max), with the median number
   of entries answered and any answer other than 200.
2. Interference (at the sizes of ``--interference``): the scanner polls its station
   (``bench.attack_legit.Poller``: a new association and a C-FIND every 100 ms) and the
   RIS sends orders over MLLP (``Ris``, one every 20 ms) for the whole run; phases of
   ``--phase`` seconds alternate: alone, a light admin (one browser: the event stream
   open, and every second a search, the message listing and an entry's detail), a heavy
   one (four such browsers, every 0.25 s). Per phase the poll's p50 and the ACK's p99;
   ``--rounds`` rounds, median (min-max), and each mode against alone (target: within
   20 %). The browsers are processes of their own (``bench.admin_console.browse``).

Not a test: prints Markdown tables. ``uptime``'s load is printed before each part.

    .venv/bin/python -m bench.admin [--sizes 10000 100000] [--interference 10000]
                                    [--rounds 3] [--searches 20] [--phase 15]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import IO, Any

from bench.admin_console import KINDS, Console, browse, searches
from bench.attack_legit import Poller, Ris
from bench.cfind_client import CellResult, quiet_pynetdicom
from bench.cfind_data import generate
from bench.cfind_report import describe_machine
from bench.cfind_servers import Server, start_broker
from bench.wildcard import load

__all__ = ["MODES", "Outcome", "main", "run"]

CONFIG = """\
[broker]
dicom_allow_unknown_callers = false

[hl7_senders.RIS]
addresses = ["127.0.0.1"]
application = "RIS"
facility = "RADIOLOGY"

[scanners.CT01]
addresses = ["127.0.0.1"]
scope = "own"
"""
USER = ("bench-viewer", "bench viewer password 1")
# mode -> (browsers, seconds between a browser's steps)
MODES: dict[str, tuple[int, float]] = {"alone": (0, 0.0), "light": (1, 1.0), "heavy": (4, 0.25)}


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process (and its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


@dataclass
class Broker:
    server: Server
    log: IO[str]  # the broker's stderr
    admin: str  # http://host:port
    entries: int
    polls: list[tuple[str, ...]] = field(default_factory=list)
    expected: dict[tuple[str, ...], list[str]] = field(default_factory=dict)


def start(work: Path, count: int) -> Broker:
    """A broker with ``count`` entries and the viewer; its admin API's address."""
    config = work / "admin-bench.toml"
    config.write_text(CONFIG)
    data = work / f"data-{count}"
    log = (work / "broker.log").open("a")
    server = start_broker(data, None, config, log)
    assert server.proc.stdout is not None
    line = server.proc.stdout.readline()  # "  Admin API  http://127.0.0.1:PORT/api/ ..."
    admin = line.split()[2].removesuffix("/api/")
    queries, expected = load(data, count)
    subprocess.run(
        [sys.executable, "-m", "broker.cli", "user", "add", USER[0], "--role", "viewer",
         "--config", str(config), "--data-dir", str(data), "--password-stdin"],
        input=USER[1] + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    polls = [q for q in queries["station"] if q[1] == "CT01"]
    return Broker(server, log, admin, count, polls, expected)


def _pct(values: list[float], p: int) -> float:
    return CellResult(latencies=values, seconds=1.0, answers=[]).pct(p)


def _spread(values: list[float], digits: int = 1) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def search_part(broker: Broker, rounds: int, per_kind: int) -> tuple[list[str], Counter[str]]:
    """The search table's rows for one size, and the answers other than 200."""
    plan = searches(generate(broker.entries), per_kind * rounds)
    console = Console(broker.admin, *USER)
    p50s: dict[str, list[float]] = {k: [] for k in KINDS}
    p95s: dict[str, list[float]] = {k: [] for k in KINDS}
    answers: dict[str, list[float]] = {k: [] for k in KINDS}
    odd: Counter[str] = Counter()
    for r in range(rounds):
        times: dict[str, list[float]] = {k: [] for k in KINDS}
        for i in range(r * per_kind, (r + 1) * per_kind):
            for kind in KINDS:
                ms, status, ids = console.search(plan[kind][i])
                times[kind].append(ms)
                answers[kind].append(len(ids))
                if status != 200:
                    odd[f"{kind} HTTP {status}"] += 1
        for kind in KINDS:
            p50s[kind].append(_pct(times[kind], 50))
            p95s[kind].append(_pct(times[kind], 95))
    console.close()
    rows = [
        f"| {broker.entries:,} | {KINDS[k]} | {statistics.median(answers[k]):.0f} | "
        f"{_spread(p50s[k])} | {_spread(p95s[k])} |"
        for k in KINDS
    ]
    if odd:
        rows.append(f"| {broker.entries:,} | answers other than 200 | {dict(odd)} | | |")
    return rows, odd


SEARCH_HEADER = (
    "| entries | search | entries answered (median) | p50 ms | p95 ms |\n|---|---|---|---|---|"
)


def _browsers(broker: Broker, mode: str) -> tuple[list[SpawnProcess], Any, Any]:
    count, interval = MODES[mode]
    ctx = multiprocessing.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    plan = searches(generate(broker.entries), 20, seed=7)
    procs = []
    for _ in range(count):
        ready = ctx.Event()
        p = ctx.Process(
            target=browse, args=(broker.admin, USER, plan, interval, ready, stop, out), daemon=True
        )
        p.start()
        if not ready.wait(60):
            raise RuntimeError("a browser did not log in")
        procs.append(p)
    return procs, stop, out


@dataclass
class PhaseFigures:
    poll_p50: list[float] = field(default_factory=list)
    ack_p99: list[float] = field(default_factory=list)
    samples: Counter[str] = field(default_factory=Counter)
    tally: Counter[str] = field(default_factory=Counter)
    loads: list[str] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # the broker's CPU, % of one core


def interference_part(broker: Broker, rounds: int, seconds: float) -> dict[str, PhaseFigures]:
    """The legitimate clients' figures per mode, over ``rounds`` alternating rounds."""
    poller = Poller(broker.server.port, "CT01", broker.polls, broker.expected)
    ris = Ris(broker.server.hl7_port, f"B{broker.entries}x", interval=0.02)
    poller.start()
    ris.start()
    figures = {mode: PhaseFigures() for mode in MODES}
    time.sleep(2)  # warm-up: both clients' first requests are not measured
    for _ in range(rounds):
        for mode, f in figures.items():
            procs, stop, out = _browsers(broker, mode)
            f.loads.append(load_average())
            t0, cpu0 = time.monotonic(), cpu_seconds(broker.server.proc.pid)
            time.sleep(seconds)
            t1, cpu1 = time.monotonic(), cpu_seconds(broker.server.proc.pid)
            f.cpu.append((cpu1 - cpu0) / (t1 - t0) * 100)
            stop.set()
            for p in procs:
                f.tally.update(out.get(timeout=60))
                p.join(30)
            poll, ack = poller.phase(t0, t1), ris.phase(t0, t1)
            f.poll_p50.append(poll.p50)
            f.ack_p99.append(ack.p99)
            f.samples.update(polls=poll.requests, orders=ack.requests)
            f.samples.update({f"poll {k}": v for k, v in poll.errors.items()})
            f.samples.update({f"order {k}": v for k, v in ack.errors.items()})
    poller.finish()
    ris.finish()
    return figures


def interference_rows(count: int, figures: dict[str, PhaseFigures]) -> list[str]:
    alone = figures["alone"]
    base_poll, base_ack = statistics.median(alone.poll_p50), statistics.median(alone.ack_p99)
    rows = []
    for mode, f in figures.items():
        poll, ack = statistics.median(f.poll_p50), statistics.median(f.ack_p99)
        verdict = ""
        if mode != "alone":
            ratios = (poll / base_poll, ack / base_ack)
            met = "met" if max(ratios) <= 1.2 else "NOT met"
            verdict = f"{ratios[0]:.2f} / {ratios[1]:.2f} ({met})"
        rows.append(
            f"| {count:,} | {mode} | {_spread(f.poll_p50)} | {_spread(f.ack_p99, 2)} | {verdict} |"
        )
    return rows


INTERFERENCE_HEADER = (
    "| entries | admin | C-FIND station poll p50 ms | HL7 ACK p99 ms | against alone (poll / ACK) |"
    "\n|---|---|---|---|---|"
)


def _details(count: int, figures: dict[str, PhaseFigures]) -> None:
    for mode, f in figures.items():
        print(
            f"- {count:,}, {mode}: broker CPU {_spread(f.cpu, 0)} % of a core; samples "
            f"{dict(f.samples)}; browsers {dict(f.tally)}; load at the phases' starts "
            f"{', '.join(f.loads)}"
        )


@dataclass
class Outcome:
    """What one run measured: the tables' rows and, for checks, the figures behind them."""

    search_rows: list[str] = field(default_factory=list)
    search_refused: Counter[str] = field(default_factory=Counter)
    interference_rows: list[str] = field(default_factory=list)
    figures: dict[int, dict[str, PhaseFigures]] = field(default_factory=dict)


def run_size(count: int, args: argparse.Namespace, work: Path, outcome: Outcome) -> None:
    print(f"\n{count:,} entries: loading (load average {load_average()})", flush=True)
    broker = start(work, count)
    try:
        print(f"searching (load average {load_average()})", flush=True)
        found, odd = search_part(broker, args.rounds, args.searches)
        outcome.search_rows += found
        outcome.search_refused += odd
        print("\n".join([SEARCH_HEADER, *found]), flush=True)
        if count not in args.interference:
            return
        print(f"interference (load average {load_average()})", flush=True)
        figures = outcome.figures[count] = interference_part(broker, args.rounds, args.phase)
        rows = interference_rows(count, figures)
        outcome.interference_rows += rows
        print("\n".join([INTERFERENCE_HEADER, *rows]), flush=True)
        _details(count, figures)
    finally:
        broker.server.stop()
        broker.log.close()


def run(argv: list[str] | None = None) -> Outcome:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--interference", type=int, nargs="*", default=[10_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--searches", type=int, default=20, help="of each kind, per round")
    parser.add_argument("--phase", type=float, default=15.0, help="seconds of each phase")
    args = parser.parse_args(argv)
    quiet_pynetdicom()
    describe_machine()
    outcome = Outcome()
    with tempfile.TemporaryDirectory(prefix="admin-bench-") as tmp:
        for count in args.sizes:
            run_size(count, args, Path(tmp), outcome)
    print("\n## Worklist search from the API (viewer, keep-alive)\n")
    print("\n".join([SEARCH_HEADER, *outcome.search_rows]))
    if outcome.interference_rows:
        print("\n## The scanner and the RIS while an admin browses\n")
        print("\n".join([INTERFERENCE_HEADER, *outcome.interference_rows]))
    return outcome


def main() -> None:
    run()


if __name__ == "__main__":
    main()
