"""Scale-out benchmark: does a busy RIS feed slow the scanners, with one broker process
and with two on one host (issue 14: poll p99 within 1.5x of the idle figure)?

One redis-server of the benchmark's own (``appendfsync always``, as the embedded one)
holds ``--entries`` worklist entries (the C-FIND benchmark's, ``bench.wildcard.load_into``)
and serves every broker process (``redis_url``). Three arrangements of ``mwl-broker serve``
processes, all started at the outset (an idle broker costs a few % of a core):

- **1 process**: every role in one process;
- **2, SO_REUSEPORT**: two identical processes (``listen_reuse_port = true``), the second
  started on the first's ports: the kernel hands each new connection to one of them;
- **2, split roles**: one process takes the HL7 intake and sends status back
  (``roles = ["hl7", "outbound"]``), the other serves DICOM and the admin API
  (``roles = ["dicom", "admin"]``).

``--rounds`` rounds; in each, the arrangements take turns (so that the machine's other
load falls on each alike). In an arrangement's turn a scanner (``bench.attack_legit.Poller``:
a new association and one station poll every 100 ms, cycling over every station's polls,
answers checked) polls, ``--warmup`` seconds unmeasured, then phases of ``--phase`` seconds:
no HL7, then HL7 orders at each rate of ``--rates`` (msg/s, over ``--connections`` MLLP
connections, paced: ``bench.ingest.run_paced``, in a process of its own so that its work
does not share the scanner's interpreter lock). Per arrangement and rate, the polls of
every round pooled: p50 and p99 (ms), p99 against the idle phases' (target <= 1.5), the
ingest rate reached and its ACK p99, the brokers' CPU (% of one core, each process, the
median of the phases). Not a test: prints Markdown tables.

    .venv/bin/python -m bench.scaleout [--entries 10000] [--rates 200 500] [--phase 15]
                                       [--rounds 4] [--warmup 2] [--connections 8]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import redis

from bench.admin import cpu_seconds, load_average
from bench.attack_legit import Poller, order
from bench.cfind_client import CellResult, quiet_pynetdicom
from bench.cfind_report import describe_machine
from bench.cfind_servers import REPO, stop_process
from bench.ingest import run_paced
from bench.wildcard import load_into
from broker.settings import load_settings
from broker.store.connection import EmbeddedRedis
from broker.store.key_secret import key_schema
from broker.store.worklist import WorklistStore

__all__ = ["ARRANGEMENTS", "main", "run"]

SECRET = "the scale-out benchmark's key secret, 32+ bytes"
# arrangement -> the roles of each process (None: every role), and whether they share ports
ARRANGEMENTS: dict[str, tuple[list[str | None], bool]] = {
    "1 process": ([None], False),
    "2, SO_REUSEPORT": ([None, None], True),
    "2, split roles": (["hl7,outbound", "dicom,admin"], False),
}


@dataclass
class Serve:
    """One ``mwl-broker serve`` process and the ports its banner names (0: not served)."""

    proc: subprocess.Popen[str]
    hl7: int
    dicom: int
    admin: int

    def stop(self) -> None:
        stop_process(self.proc)


def _port(banner: str, pattern: str) -> int:
    found = re.search(pattern + r"\s+(?:http://)?127\.0\.0\.1:(\d+)", banner)
    return int(found[1]) if found else 0


def start_serve(
    work: Path, redis_url: str, roles: str | None, reuse: tuple[int, int] | None, log: IO[str]
) -> Serve:
    """``mwl-broker serve`` on the shared Redis; with ``reuse``, SO_REUSEPORT on those ports
    (HL7, DICOM; 0: free ones). The admin API on a free port of its own."""
    env = {**os.environ, "MWL_BROKER_REDIS_URL": redis_url, "MWL_BROKER_REDIS_KEY_SECRET": SECRET,
           "MWL_BROKER_RETENTION_INTERVAL_SECONDS": "0"}  # fmt: skip
    if roles is not None:
        env["MWL_BROKER_ROLES"] = roles
    if reuse is not None:
        env["MWL_BROKER_LISTEN_REUSE_PORT"] = "true"
    hl7, dicom = reuse or (0, 0)
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker.cli", "serve", "--hl7-host", "127.0.0.1",
         "--hl7-port", str(hl7), "--dicom-host", "127.0.0.1", "--dicom-port", str(dicom),
         "--admin-port", "0", "--data-dir", str(work),
         "--mappings-dir", str(REPO / "mappings"), "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=log, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            banner = "".join(lines)
            return Serve(
                proc, _port(banner, "HL7 MLLP"), _port(banner, "DICOM MWL"),
                _port(banner, "Admin API"),
            )  # fmt: skip
    raise RuntimeError(f"mwl-broker serve did not start: {''.join(lines)}")


def start_arrangement(work: Path, name: str, redis_url: str, log: IO[str]) -> list[Serve]:
    roles, shared = ARRANGEMENTS[name]
    procs: list[Serve] = []
    for n, role in enumerate(roles):
        reuse = None
        if shared:  # the first on free ports, the next on the first's
            reuse = (procs[0].hl7, procs[0].dicom) if procs else (0, 0)
        procs.append(start_serve(work / f"broker-{n}", redis_url, role, reuse, log))
    return procs


def scanner_order(n: int) -> bytes:
    """The n-th order of the RIS (scheduled in 2027: the polls' answers stay as expected)."""
    return order(f"SO{n}")


def _ingest(port: int, start: int, rate: float, seconds: float, connections: int,
            ready: Any, go: Any, out: Any) -> None:  # fmt: skip
    ready.set()
    go.wait()
    t0 = time.perf_counter()
    latencies = run_paced(port, start, rate, seconds, connections, scanner_order)
    out.put((latencies, time.perf_counter() - t0))


@dataclass
class Cell:
    """Pooled figures of one arrangement at one rate."""

    polls: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    acks: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    cpu: list[list[float]] = field(default_factory=list)  # per phase, per process
    loads: list[str] = field(default_factory=list)


def _pct(values: list[float], p: int) -> float:
    return CellResult(latencies=values, seconds=1.0, answers=[]).pct(p)


def _phase(procs: list[Serve], poller: Poller, rate: float, args: argparse.Namespace,
           start: int, cell: Cell) -> None:  # fmt: skip
    """One phase: HL7 at ``rate`` (0: none) while the scanner polls; pooled into ``cell``."""
    cell.loads.append(load_average())
    ctx = multiprocessing.get_context("spawn")
    sender = None
    if rate:
        ready, go, out = ctx.Event(), ctx.Event(), ctx.Queue()
        hl7 = next(p.hl7 for p in procs if p.hl7)
        sender = ctx.Process(
            target=_ingest,
            args=(hl7, start, rate, args.phase, args.connections, ready, go, out),
            daemon=True,
        )
        sender.start()
        if not ready.wait(60):
            raise RuntimeError("the HL7 sender did not start")
    cpu0 = [cpu_seconds(p.proc.pid) for p in procs]
    t0 = time.monotonic()
    if sender is None:
        time.sleep(args.phase)  # the phase's length, not a readiness wait
    else:
        go.set()
        latencies, seconds = out.get(timeout=args.phase * 10 + 60)
        sender.join(30)
        cell.acks += latencies
        cell.rates.append(len(latencies) / seconds)
    t1 = time.monotonic()
    cell.cpu.append(
        [(cpu_seconds(p.proc.pid) - c) / (t1 - t0) * 100 for p, c in zip(procs, cpu0, strict=True)]
    )
    for t, ms, error in list(poller.samples):
        if t0 <= t < t1:
            cell.polls.append(ms)
            if error:
                cell.errors[error] += 1


Results = dict[str, dict[float, Cell]]


def measure(
    arrangements: dict[str, list[Serve]], loaded: tuple[Any, Any], args: argparse.Namespace
) -> Results:
    """Round after round, each arrangement in turn: its scanner polls (a warm-up unmeasured),
    its phases run, the scanner stops; so the machine's other load falls on each alike."""
    queries, expected = loaded
    results = {name: {rate: Cell() for rate in [0.0, *args.rates]} for name in arrangements}
    n = 0
    for r in range(args.rounds):
        for name, procs in arrangements.items():
            print(f"round {r + 1}, {name} (load average {load_average()})", flush=True)
            dicom = next(p.dicom for p in procs if p.dicom)
            poller = Poller(dicom, "SCALEOUT", queries["station"], expected)
            poller.start()
            time.sleep(args.warmup)  # the warm-up's length: its polls are not counted
            for rate, cell in results[name].items():
                _phase(procs, poller, rate, args, n, cell)
                n += int(rate * args.phase) + args.connections
            poller.finish()
    return results


def rows(name: str, cells: dict[float, Cell]) -> list[str]:
    idle = _pct(cells[0.0].polls, 99)
    out = []
    for rate, c in cells.items():
        p99 = _pct(c.polls, 99)
        verdict = (
            "" if not rate else f"{p99 / idle:.2f} ({'met' if p99 <= 1.5 * idle else 'NOT met'})"
        )
        reached = f"{statistics.median(c.rates):.0f}" if c.rates else "-"
        ack = f"{_pct(c.acks, 99):.1f}" if c.acks else "-"
        cpu = " + ".join(f"{statistics.median(x):.0f}" for x in zip(*c.cpu, strict=True))
        errors = f" ({dict(c.errors)})" if c.errors else ""
        out.append(
            f"| {name} | {rate:.0f} | {reached} | {len(c.polls)}{errors} | "
            f"{statistics.median(c.polls):.1f} | {p99:.1f} | {verdict} | {ack} | {cpu} |"
        )
    return out


HEADER = (
    "| arrangement | HL7 msg/s asked | reached | polls | poll p50 ms | poll p99 ms "
    "| p99 / idle p99 | ACK p99 ms | broker CPU % |\n|---|---|---|---|---|---|---|---|---|"
)


def load_shared(url: str, count: int) -> tuple[Any, Any]:
    """The entries written into the brokers' Redis (``bench.wildcard.load_into``)."""
    settings = load_settings(environ={}, overrides={"redis_url": url, "redis_key_secret": SECRET})
    client = redis.Redis.from_url(url, socket_timeout=300)
    try:
        return load_into(WorklistStore(client, keys=key_schema(settings)), count)
    finally:
        client.close()


def run(argv: list[str] | None = None) -> Results:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--rates", type=float, nargs="+", default=[200.0, 500.0])
    parser.add_argument("--phase", type=float, default=15.0, help="seconds of each phase")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds, per round")
    parser.add_argument("--connections", type=int, default=8, help="MLLP connections")
    parser.add_argument("--arrangements", nargs="+", default=list(ARRANGEMENTS))
    args = parser.parse_args(argv)
    quiet_pynetdicom()
    describe_machine()
    with tempfile.TemporaryDirectory(prefix="scaleout-bench-") as tmp:
        work = Path(tmp)
        server = EmbeddedRedis(work / "redis")
        server.start()
        log = (work / "brokers.log").open("a")
        running: dict[str, list[Serve]] = {}
        try:
            for k, name in enumerate(args.arrangements):
                running[name] = start_arrangement(work / f"a{k}", name, server.url, log)
            # after the brokers wrote the key secret's check
            loaded = load_shared(server.url, args.entries)
            print(f"{args.entries:,} entries loaded (load average {load_average()})", flush=True)
            results = measure(running, loaded, args)
        finally:
            for procs in running.values():
                for p in procs:
                    p.stop()
            log.close()
            server.stop()
    print(f"\n## Station poll while HL7 comes in ({args.entries:,} entries)\n")
    print(
        "\n".join([HEADER, *(row for name, cells in results.items() for row in rows(name, cells))])
    )
    for name, cells in results.items():
        loads = "; ".join(f"{r:.0f}: {', '.join(c.loads)}" for r, c in cells.items())
        print(f"- {name}, load average at the phases' starts: {loads}")
    return results


def main() -> None:
    run()


if __name__ == "__main__":
    main()
