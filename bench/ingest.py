"""Ingest benchmark: send → durable commit → ACK, over 1 and N MLLP connections.

Runs a null MLLP server (frames in, ACK out: the ceiling) and then a real
broker (``mwl-broker serve``: embedded redis-server, appendfsync always), each
as its own process on loopback; sends distinct ORM^O01 orders from this
process as fast as ACKs come back over 1 and 8 connections, then paced at a
fixed rate, and records each ACK's latency.
Also times the two HL7 parsers on the same message. Not a test: prints figures.

    .venv/bin/python -m bench.ingest [--messages 2000] [--connections 1 8] [--rate 200]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from broker.mllp.client import MLLPClient, summarize_ack

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = (
    "MSH|^~\\&|RIS|RADIOLOGY|MWL_BROKER|HOSPITAL|20261125083000||ORM^O01|BENCH-{n}|P|2.3.1\r"
    "PID|||PAT-{n}^^^HOSP||Doe^Jane^Q||19700101|F\r"
    "PV1||O|RAD^ROOM1^1|||||1234^Smith^Anna|||||||||||V-{n}\r"
    "ORC|NW|PLC-{n}^RIS|FIL-{n}^RIS||SC||1^once^^20261126093000^^R||20261125083000\r"
    "OBR|1|PLC-{n}^RIS|FIL-{n}^RIS|CTHEAD^CT head^LOCAL||||||||||||1234^Smith^Anna||ACC-{n}|"
    "RP-{n}|SPS-{n}||||CT|||1^once^^20261126093000^^R\r"
)


def message(n: int) -> bytes:
    return TEMPLATE.format(n=n).encode()


def parser_costs(rounds: int = 200) -> dict[str, float]:
    """Milliseconds per parse of one ORM^O01 with python-hl7 and with hl7apy."""
    import hl7
    from hl7apy.parser import parse_message

    text = message(1).decode()
    costs = {}
    for name, parse in (("python-hl7", hl7.parse), ("hl7apy", parse_message)):
        started = time.perf_counter()
        for _ in range(rounds):
            parse(text)
        costs[name] = (time.perf_counter() - started) * 1000 / rounds
    return costs


def run_load(port: int, start: int, count: int, connections: int) -> tuple[float, list[float]]:
    """Send ``count`` messages over ``connections`` connections; (seconds, latencies in ms)."""
    per_conn = count // connections

    def worker(index: int) -> list[float]:
        latencies = []
        with MLLPClient("127.0.0.1", port, timeout=60) as client:
            base = start + index * per_conn
            for n in range(base, base + per_conn):
                t0 = time.perf_counter()
                ack = summarize_ack(client.send(message(n)))
                latencies.append((time.perf_counter() - t0) * 1000)
                if ack.code != "AA":
                    raise RuntimeError(f"message {n} answered {ack.code}: {ack.errors}")
        return latencies

    started = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        results = list(pool.map(worker, range(connections)))
    return time.perf_counter() - started, [x for r in results for x in r]


def start_process(args: list[str], banner: str) -> tuple[subprocess.Popen[str], int]:
    """Run a server process; return it and the port its banner line names."""
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(banner + r"\s+\S+:(\d+)", line)
        if found:
            return proc, int(found[1])
    raise RuntimeError(f"{args[1]} did not start")


def start_broker(data_dir: Path) -> tuple[subprocess.Popen[str], int]:
    """``mwl-broker serve`` as its own process, embedded Redis at appendfsync always."""
    return start_process(
        ["-m", "broker.cli", "serve", "--hl7-host", "127.0.0.1", "--hl7-port", "0",
         "--admin-port", "0",
         "--dicom-host", "127.0.0.1", "--dicom-port", "0", "--data-dir", str(data_dir),
         "--mappings-dir", str(REPO / "mappings"), "--log-level", "WARNING"],
        "HL7 MLLP",
    )  # fmt: skip


def run_paced(
    port: int,
    start: int,
    rate: float,
    seconds: float,
    connections: int,
    make: Callable[[int], bytes] = message,
) -> list[float]:
    """Send at ``rate`` msg/s in total over ``connections`` for ``seconds``; ACK latencies (ms).
    ``make(n)`` is the n-th message."""
    per_conn = max(1, int(rate * seconds) // connections)
    interval = connections / rate

    def worker(index: int) -> list[float]:
        latencies = []
        with MLLPClient("127.0.0.1", port, timeout=60) as client:
            base = start + index * per_conn
            next_send = time.perf_counter() + index * interval / connections
            for n in range(base, base + per_conn):
                delay = next_send - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)  # pacing the load generator, not waiting for readiness
                t0 = time.perf_counter()
                client.send(make(n))
                latencies.append((time.perf_counter() - t0) * 1000)
                next_send += interval
        return latencies

    with ThreadPoolExecutor(connections) as pool:
        return sorted(x for r in pool.map(worker, range(connections)) for x in r)


def report(label: str, seconds: float, lat: list[float]) -> None:
    lat.sort()
    p99 = lat[int(len(lat) * 0.99) - 1]
    print(
        f"{label}: {len(lat)} messages in {seconds:.2f} s = {len(lat) / seconds:.0f} msg/s; "
        f"ACK latency p50 {statistics.median(lat):.2f} ms, p99 {p99:.2f} ms"
    )


def measure(
    name: str, proc_port: tuple[subprocess.Popen[str], int], args: argparse.Namespace
) -> None:
    proc, port = proc_port
    try:
        start = 0
        for connections in args.connections:
            seconds, lat = run_load(port, start, args.messages, connections)
            start += args.messages
            report(f"{name}, {connections} connection(s)", seconds, lat)
        lat = run_paced(port, start, args.rate, args.paced_seconds, 8)
        report(f"{name}, paced {args.rate:.0f} msg/s on 8 connections", args.paced_seconds, lat)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rate", type=float, default=200.0, help="paced load, msg/s")
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    for name, ms in parser_costs().items():
        print(f"parse one ORM^O01 with {name}: {ms:.2f} ms")
    measure("null MLLP server", start_process(["-m", "bench.null_mllp"], "NULL MLLP"), args)
    with tempfile.TemporaryDirectory() as tmp:
        measure("broker", start_broker(Path(tmp)), args)


if __name__ == "__main__":
    main()
