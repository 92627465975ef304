"""Dashboard snapshot cost: one ``DashboardService.snapshot()`` on a store of N orders.

Fills an embedded redis-server through the services' intake (distinct ORM^O01 orders, one
in ten refused for a missing Patient ID, one in five an OMI with two stations), then
puts a share of the OMIs' steps in the ended index (``--ended``), then times snapshots:
the first, which also scans the key space for station AE titles (and counts the first
pass by station), the following ones, which use the kept station list and pass, and
(where the pass exists) snapshots that each count a new pass, as one tick in five does
while a dashboard is open. Not a test: prints figures.

    .venv/bin/python -m bench.dashboard [--orders 10000] [--rounds 50] [--ended 0.3]
        [--redis-server /usr/bin/redis-server]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from broker.services.application import Services
from broker.settings import load_settings
from broker.store.connection import EmbeddedRedis
from broker.store.keys import KeySchema
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


def _end_some(client: redis.Redis, keys: KeySchema, share: float) -> int:
    """Put ``share`` of each station's entries in the ended index (as MPPS would: the
    counts read nothing else); how many."""
    rng = random.Random(7)
    ended: dict[str, float] = {}
    for station in STATIONS:
        ids = sorted(_text(i) for i in client.smembers(keys.by_station(station)))
        ended |= {i: 1.0 for i in rng.sample(ids, int(len(ids) * share))}
    if ended:
        client.zadd(keys.entries_ended(), ended)
    return len(ended)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _timed(services: Services, rounds: int) -> tuple[list[float], Any]:
    times, snap = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        snap = services.dashboard.snapshot()
        times.append((time.perf_counter() - t0) * 1000)
    return times, snap


def _line(label: str, times: list[float]) -> str:
    return f"{label}: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms"


def _measure(services: Services, rounds: int) -> None:
    times, snap = _timed(services, rounds)
    m, w = snap.messages, snap.worklist
    print(f"log {m.total}, last hour {sum(m.per_minute)}, acks {m.acks}, errors {m.errors}")
    print(f"worklist {w.total}, ended {w.ended}, by station {w.by_station}")
    print(f"first snapshot (station SCAN, and the pass by station if any): {times[0]:.1f} ms")
    print(_line(f"next {len(times) - 1} (the pass kept)", times[1:]))
    shared = getattr(services, "worklist_counts", None)
    if shared is None:
        print("(no pass by station: the code before it)")
        return
    print(f"stations: {snap.as_json()['worklist']['stations']['rows']}")
    shared.max_age = 0.0  # every snapshot counts a new pass, as one in five ticks does
    print(_line(f"{rounds} counting a new pass each", _timed(services, rounds)[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--ended", type=float, default=0.3, help="share of the OMIs' steps")
    parser.add_argument("--redis-server", type=Path, help="its binary (default: the wheel's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis", binary=args.redis_server)
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
            ended = _end_some(client, KeySchema(settings.redis_key_prefix), args.ended)
            print(f"{args.orders} orders sent in {filled:.1f} s; {client.dbsize()} Redis keys")
            print(f"redis {client.info('server')['redis_version']}; {ended} steps ended")
            _measure(services, args.rounds)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
