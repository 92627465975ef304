"""Dashboard snapshot cost: one ``DashboardService.snapshot()`` on a store of N orders.

Fills an embedded redis-server through the services' intake (distinct ORM^O01 orders, one
in ten refused for a missing Patient ID, one in five an OMI with two stations), then
times snapshots (the first, which also scans the key space for station AE titles, and
the following ones, which use the kept station list). Not a test: prints figures.

    .venv/bin/python -m bench.dashboard [--orders 10000] [--rounds 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import redis

from broker.services.application import Services
from broker.settings import load_settings
from broker.store.connection import EmbeddedRedis
from tests.broker_runner import MAPPINGS
from tests.integration.hl7_seed import order, send

STATIONS = ("CT1", "CT2", "MR1", "MR2", "US1")


def _omi(n: int) -> bytes:
    aet = STATIONS[(n // 5) % len(STATIONS)]
    return (
        f"MSH|^~\\&|RIS|RADIOLOGY|MWL_BROKER|HOSPITAL|20261125090000||OMI^O23^OMI_O23|"
        f"OMI-{n}|P|2.5.1\rPID|||PAT-{n}^^^HOSP||Doe^Jane||19801224|F\r"
        f"ORC|NW|PLC-O{n}^RIS|FIL-O{n}^RIS||SC||||20261125090000\r"
        f"TQ1|||||||20261126101500\rOBR|1|PLC-O{n}^RIS|FIL-O{n}^RIS|MRKNEE^MR Knee^LOCAL\r"
        f"IPC|ACC-O{n}|RP-{n}|1.2.826.0.1.3680043.10.543.{n}|SPS-{n}|MR|MRKNEE^Knee^LOCAL"
        f"|ROOM|RAD|{aet}\r"
    ).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        server.start()
        try:
            client = redis.Redis.from_url(server.url, socket_timeout=30)
            settings = load_settings(environ={}, overrides={"mappings_dir": MAPPINGS})
            services = Services(settings, client)
            services.live_mappings.load()
            started = time.perf_counter()
            for n in range(args.orders):
                raw = _omi(n) if n % 5 == 0 else order(n)
                if n % 10 == 3:
                    raw = raw.replace(b"PID|||", b"PID|||^^^", 1)  # no Patient ID: refused
                send(services, raw)
            filled = time.perf_counter() - started
            keys = client.dbsize()
            times = []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                snap = services.dashboard.snapshot()
                times.append((time.perf_counter() - t0) * 1000)
            m, w = snap.messages, snap.worklist
            print(f"{args.orders} orders sent in {filled:.1f} s; {keys} Redis keys")
            print(f"log {m.total}, last hour {sum(m.per_minute)}, acks {m.acks}, errors {m.errors}")
            print(f"worklist {w.total}, by station {w.by_station}")
            print(f"first snapshot (station SCAN): {times[0]:.1f} ms")
            rest = times[1:]
            print(
                f"next {len(rest)}: median {statistics.median(rest):.1f} ms, max {max(rest):.1f} ms"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
