"""Attack benchmark: each attack of issue 11 against a real broker, and what a legitimate
scanner and RIS see meanwhile.

The broker runs as ``mwl-broker serve`` (``bench.cfind_servers.start_broker``: its own embedded
redis-server) with the C-FIND benchmark's entries (``--entries``, 10,000) and a settings
file that lists one scanner (``CT01`` from 127.0.0.1, its own station only), one RIS
(from 127.0.0.1), and, to attack from inside, a scanner and a sender gone bad
(``ROGUE`` from 127.0.0.3, every station; ``LAB`` from 127.0.0.4); unknown callers are
refused. 127.0.0.2 and 127.0.1.x are no one's addresses (``bench.attack_report``). The
message log's byte budget is ``--log-mib`` (8 MiB, not the default 256), so that a
flood of a few seconds goes past it and shows whether it holds.

Each scenario gets a fresh broker process on the same data: a baseline (``--baseline``
seconds) with only the legitimate clients, the scanner (``bench.attack_legit``: a new
association and a station poll every 100 ms) and the RIS (an order every 200 ms), then the
attack, from a process of its own, with the two clients still going. A flood lasts
``--duration`` seconds; an attack that holds connections lasts until the broker has
released all of them (at most ``--hold-cap`` seconds). Reported per scenario: what the
attack got and how long the broker took to refuse or end each attempt, and whether it
held the attack off (every attempt refused or ended as designed; for the HL7 attacks,
Redis grew by at most twice the message log's byte budget); the broker's
RSS (``/proc`` VmRSS) and its Redis's ``used_memory`` at the attack's start and their
peak during it; the scanner's poll and the RIS's ACK latency (p50 / p99 / max, ms) in
the baseline and during the attack; and the legitimate clients' errors, which must be
0. The goal is a poll p99 of at most 1 s under every attack. Not a test: prints
figures (``tests/integration/test_attack_bench.py`` runs ``--quick`` for behaviour).

    .venv/bin/python -m bench.attacks [--scenario a f ...] [--duration 10] [--quick]
                                      [--set dicom_max_candidates=2000 ...]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench.attack_dicom import (
    dicom_flood,
    huge_association,
    idle,
    non_reading,
    slowloris,
    wildcard,
)
from bench.attack_hl7 import future_msh7, mllp_flood, oversize, undecodable
from bench.attack_legit import Phase, Poller, Ris
from bench.attack_report import AttackReport, Target
from bench.cfind_client import CellResult, quiet_pynetdicom
from bench.cfind_data import Query
from bench.cfind_report import describe_machine
from bench.cfind_servers import start_broker, vm_rss_kib
from bench.wildcard import load
from broker.store.connection import running_embedded
from broker.store.keys import KeySchema

__all__ = ["SCENARIOS", "ScenarioResult", "main", "run"]

SCENARIOS = {
    "a": "wild-card query (`*?` x 30 then `#`), several callers at once (listed scanner)",
    "b": "A-ASSOCIATE-RQ announcing 4 GiB, then streaming (unlisted address)",
    "c": "peers sending 1 byte/s (unlisted addresses)",
    "d": "idle TCP connections from one address (unlisted)",
    "d2": "idle TCP connections from many addresses (unlisted)",
    "e": "non-reading peer: C-FIND for every entry, never reads (listed scanner)",
    "f": "association flood (unlisted address)",
    "g": "MLLP connection flood, an order on each (unlisted address)",
    "h": "orders with MSH-7 ten years ahead, back to back (listed sender)",
    "i": "frames 64 KiB over the MLLP frame cap (listed sender)",
    "j": "undecodable 16 KiB frames, back to back (listed sender)",
}
ATTACKS: dict[str, Callable[[Target], AttackReport]] = {
    "a": wildcard,
    "b": huge_association,
    "c": slowloris,
    "d": lambda t: idle(t, 1),
    "d2": lambda t: idle(t, 10 if t.quick else 50),
    "e": non_reading,
    "f": dicom_flood,
    "g": mllp_flood,
    "h": future_msh7,
    "i": oversize,
    "j": undecodable,
}
HL7 = frozenset("ghij")  # their messages reach the message log (or must not)
MAX_FRAME_BYTES = 1 << 20  # the broker's default hl7_max_frame_bytes

CONFIG = """\
[broker]
dicom_allow_unknown_callers = false
message_log_max_bytes = {log_bytes}
{settings}

[hl7_senders.RIS]
addresses = ["127.0.0.1"]
application = "RIS"
facility = "RADIOLOGY"

[hl7_senders.LAB]
addresses = ["127.0.0.4"]
application = "LAB"

[scanners.CT01]
addresses = ["127.0.0.1"]
scope = "own"

[scanners.ROGUE]
addresses = ["127.0.0.3"]
"""


@dataclass
class ScenarioResult:
    """One scenario's figures (sizes in KiB / bytes as read, times in seconds or ms)."""

    key: str
    report: AttackReport
    attack_seconds: float
    rss_kib: tuple[int, int]  # at the attack's start, peak during it
    redis_bytes: tuple[int, int]
    poll: tuple[Phase, Phase]  # baseline, attack
    ack: tuple[Phase, Phase]
    log_bytes: int  # what the broker logged during the attack
    message_log: tuple[tuple[int, int], tuple[int, int]]  # error list, raw bytes: start, end
    log_budget: int  # the broker's message_log_max_bytes
    load: float  # the machine's 1-minute load average as the attack ended

    @property
    def within_budget(self) -> bool:
        """For the HL7 attacks: Redis grew by at most twice the message log's byte budget
        (room for the log's indexes and ACKs); the others store nothing."""
        return (
            self.key not in HL7 or self.redis_bytes[1] - self.redis_bytes[0] <= 2 * self.log_budget
        )

    @property
    def held_off(self) -> bool:
        """Every attempt refused or ended as designed, and Redis within the budget."""
        return self.report.defended and self.within_budget

    @property
    def legit_errors(self) -> Counter[str]:
        return self.poll[1].errors + self.ack[1].errors + self.poll[0].errors + self.ack[0].errors


def message_log(client: redis.Redis) -> tuple[int, int]:
    """Messages on the message log's error list, and the raw bytes its budget counts."""
    keys = KeySchema()
    return int(client.zcard(keys.message_errors())), int(client.get(keys.message_bytes()) or 0)


class MemorySampler:
    """Broker VmRSS and Redis used_memory every 100 ms: the first sample and the peak."""

    def __init__(self, pid: int, client: redis.Redis) -> None:
        self.pid, self.client = pid, client
        self.rss: list[int] = []
        self.used: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        self.rss.append(vm_rss_kib(self.pid))
        self.used.append(int(self.client.info("memory")["used_memory"]))

    def _run(self) -> None:
        while not self.stop.wait(0.1):
            self._sample()

    def __enter__(self) -> MemorySampler:
        self._sample()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self._sample()


def _attack_process(key: str, target: Target, ready: Any, go: Any, out: Any) -> None:
    """The attack's own process: wait for the go, attack, hand the report back."""
    quiet_pynetdicom()
    ready.set()
    go.wait()
    try:
        out.put(ATTACKS[key](target))
    except Exception as e:
        out.put(AttackReport(f"the attack failed: {type(e).__name__}: {e}", False))


def prepare(
    work: Path, entries: int, log_bytes: int, settings: list[str]
) -> tuple[list[Query], dict[Query, list[str]]]:
    """Settings file and data directory with the entries loaded; the scanner's polls."""
    config = work / "attack-bench.toml"
    config.write_text(CONFIG.format(log_bytes=log_bytes, settings="\n".join(settings)))
    with (work / "broker.log").open("a") as log:
        broker = start_broker(work / "data", None, config, log)
        try:
            queries, expected = load(work / "data", entries)
        finally:
            broker.stop()
    polls = [q for q in queries["station"] if q[1] == "CT01"]
    return polls, expected


def run_scenario(
    key: str,
    args: argparse.Namespace,
    work: Path,
    polls: list[Query],
    expected: dict[Query, list[str]],
) -> ScenarioResult:
    """One scenario on a fresh broker process (module docstring)."""
    context = multiprocessing.get_context("spawn")
    ready, go, out = context.Event(), context.Event(), context.Queue()
    with (work / "broker.log").open("a") as log:
        log.write(f"\n--- scenario {key} ---\n")
        log.flush()
        broker = start_broker(work / "data", None, work / "attack-bench.toml", log)
    found = running_embedded(work / "data" / "redis")
    assert found is not None, "the broker's embedded redis-server is not running"
    client = redis.Redis(unix_socket_path=str(found[1]), socket_timeout=30)
    target = Target(
        broker.port, broker.hl7_port, args.duration, args.hold_cap, args.quick,
        MAX_FRAME_BYTES, f"{key.upper()}{int(time.time()) % 100_000:05d}",
    )  # fmt: skip
    attacker = context.Process(target=_attack_process, args=(key, target, ready, go, out))
    attacker.start()
    poller = Poller(broker.port, "CT01", polls, expected)
    ris = Ris(broker.hl7_port, f"R{target.run_id}")
    try:
        if not ready.wait(120):
            raise RuntimeError("the attack process did not start")
        started = time.monotonic()
        poller.start()
        ris.start()
        time.sleep(args.baseline)  # the baseline period, measured by the clients
        attack_start = time.monotonic()
        log_start = (work / "broker.log").stat().st_size
        messages_start = message_log(client)
        with MemorySampler(broker.proc.pid, client) as memory:
            go.set()
            report: AttackReport = out.get(timeout=args.duration + args.hold_cap + 300)
        attack_end = time.monotonic()
        log_bytes = (work / "broker.log").stat().st_size - log_start
        messages_end = message_log(client)
    finally:
        poller.finish()
        ris.finish()
        attacker.join(30)
        client.close()
        broker.stop()
    return ScenarioResult(
        key, report, attack_end - attack_start,
        (memory.rss[0], max(memory.rss)), (memory.used[0], max(memory.used)),
        (poller.phase(started, attack_start), poller.phase(attack_start, attack_end)),
        (ris.phase(started, attack_start), ris.phase(attack_start, attack_end)),
        log_bytes,
        ((messages_start[0], messages_end[0]), (messages_start[1], messages_end[1])),
        args.log_mib << 20,
        os.getloadavg()[0],
    )  # fmt: skip


def _seconds(values: list[float]) -> str:
    if not values:
        return "-"
    cell = CellResult(latencies=values, seconds=1, answers=[])

    def show(s: float) -> str:
        return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.1f} s"

    return f"{show(cell.p50)} / {show(max(values))}"


def _growth(pair: tuple[int, int], unit: int) -> str:
    return f"{pair[0] / unit:.0f} → {pair[1] / unit:.0f}"


HEADER = (
    "| | attack | broker held it off | time to refuse / end (p50 / max) | broker RSS MiB "
    "(start → peak) | Redis MiB (start → peak) | poll p50 / p99 / max ms: baseline → attack "
    "| ACK p50 / p99 / max ms: baseline → attack | errors poll / ACK | broker log KiB "
    "| poll p99 ≤ 1 s |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def row(r: ScenarioResult) -> str:
    poll_base, poll_attack = r.poll
    ack_base, ack_attack = r.ack
    errors = f"{sum(poll_attack.errors.values())} / {sum(ack_attack.errors.values())}"
    goal = (
        "met"
        if poll_attack.requests and poll_attack.p99 <= 1000 and not poll_attack.errors
        else "NOT met"
    )
    return (
        f"| {r.key} | {SCENARIOS[r.key]} | {'yes' if r.held_off else 'NO'} | "
        f"{_seconds(r.report.times)} | {_growth(r.rss_kib, 1024)} | "
        f"{_growth(r.redis_bytes, 1 << 20)} | {poll_base.text()} → {poll_attack.text()} | "
        f"{ack_base.text()} → {ack_attack.text()} | {errors} | {r.log_bytes >> 10} | {goal} |"
    )


def detail(r: ScenarioResult) -> str:
    lines = [
        f"**{r.key}**: {r.report.outcome}. Attack phase {r.attack_seconds:.0f} s: "
        f"{r.poll[1].requests} polls, {r.ack[1].requests} orders. Message log: "
        f"{_growth(r.message_log[0], 1)} on the error list, raw bytes its budget counts "
        f"{_growth(r.message_log[1], 1 << 20)} MiB. Load average (1 min) at its end: "
        f"{r.load:.1f}."
    ]
    if not r.within_budget:
        lines.append(
            f"  Redis grew {(r.redis_bytes[1] - r.redis_bytes[0]) >> 20} MiB, more than twice "
            f"the message log's byte budget ({r.log_budget >> 20} MiB)"
        )
    for name, phase in (("poll", r.poll[1]), ("ACK", r.ack[1])):
        if phase.errors:
            lines.append(f"  {name} errors: {dict(phase.errors)}")
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> list[ScenarioResult]:
    """Parse ``argv``, run the scenarios, print the figures, return them."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--entries", type=int, default=None, help="10000 (--quick: 1000)")
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds of a flood: 10 (--quick: 3)"
    )
    parser.add_argument("--baseline", type=float, default=None, help="seconds: 5 (--quick: 2)")
    parser.add_argument("--hold-cap", type=float, default=None, help="seconds: 120 (--quick: 15)")
    parser.add_argument("--log-mib", type=int, default=8, help="the broker's message_log_max_bytes")
    parser.add_argument(
        "--set", action="append", default=[], metavar="SETTING=TOML",
        help="another broker setting, e.g. --set dicom_max_candidates=2000 (for what-ifs)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="fewer entries, attackers, seconds")
    parser.add_argument("--keep", type=Path, default=None, help="work here (keeps the broker log)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.entries = args.entries or (1000 if quick else 10_000)
    args.duration = args.duration or (3.0 if quick else 10.0)
    args.baseline = args.baseline or (2.0 if quick else 5.0)
    args.hold_cap = args.hold_cap or (15.0 if quick else 120.0)
    with tempfile.TemporaryDirectory(prefix="attack-bench-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        polls, expected = prepare(work, args.entries, args.log_mib << 20, args.set)
        print(
            f"{args.entries:,} entries; baseline {args.baseline:.0f} s, floods "
            f"{args.duration:.0f} s, held connections up to {args.hold_cap:.0f} s; "
            f"message_log_max_bytes {args.log_mib} MiB" + "".join(f"; {x}" for x in args.set),
            flush=True,
        )
        results = []
        for key in args.scenario:
            results.append(run_scenario(key, args, work, polls, expected))
            print(detail(results[-1]), flush=True)
    print("\n" + HEADER)
    for r in results:
        print(row(r))
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    return results


def main() -> None:
    quiet_pynetdicom()
    describe_machine()
    run()


if __name__ == "__main__":
    main()
