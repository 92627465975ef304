"""The cost of the ended entries by station (``broker.store.counts``): how long each
station's count blocks Redis, ZINTERCARD (Redis 7) against ``lua/count_ended.lua`` (the
only way on the embedded 6.2), at N entries in a few station layouts.

The indexes are written directly (each station's set, ``idx:all`` and the ended sorted
set, ids shaped as the broker's: 30 hexadecimal digits): a count reads nothing else. The
limits (``MAX_SCRIPT_IDS``, ``MAX_INTERCARD_IDS``) are lifted, so that every station is
counted whatever it costs, unless ``--limits``.
Each count is timed by Redis itself (SLOWLOG with a threshold of 0: the microseconds the
command held the server), and the whole scrape (``Counts.worklist(by_status=True)``, its
round trips included) by the client. Not a test: prints a Markdown table.

    .venv/bin/python -m bench.counts [--sizes 10000 100000] [--rounds 5] [--limits]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from broker.store import counts as counts_module
from broker.store.connection import EmbeddedRedis
from broker.store.counts import Counts
from broker.store.keys import KeySchema

KEYS = KeySchema("mwl", b"the benchmark's redis_key_secret, 32+ bytes")
SYSTEM_REDIS = Path("/usr/bin/redis-server")  # Debian 12: Redis 7.0
# layout: (stations, share of the entries ended); entries spread evenly, ended at random
LAYOUTS = {
    "20 stations, 30 % ended": (20, 0.3),
    "10 stations, 30 % ended": (10, 0.3),
    "2 stations, 60 % ended": (2, 0.6),
    "1 station, 30 % ended": (1, 0.3),
    "1 station, 60 % ended": (1, 0.6),
}
COUNTED = {b"EVALSHA", b"ZINTERCARD"}


@contextmanager
def server(folder: Path, binary: Path | None) -> Iterator[redis.Redis]:
    embedded = EmbeddedRedis(folder, binary=binary)
    embedded.start()
    client = redis.Redis.from_url(embedded.url, socket_timeout=60)
    try:
        yield client
    finally:
        client.close()
        embedded.stop()


def seed(client: redis.Redis, size: int, layout: tuple[int, float]) -> int:
    """``size`` entries over the layout's stations; the ids walked at most by one count."""
    stations, ended_share = layout
    rng = random.Random(size)
    client.flushall()
    ids = [f"{rng.getrandbits(120):030x}" for _ in range(size)]
    ended = rng.sample(ids, int(size * ended_share))
    pipe = client.pipeline(transaction=False)
    for first in range(0, size, 5000):
        pipe.sadd(KEYS.all_entries(), *ids[first : first + 5000])
        for k in range(stations):
            members = ids[first + k : first + 5000 : stations]
            if members:
                pipe.sadd(KEYS.by_station(f"ST{k:02d}"), *members)
    for first in range(0, len(ended), 5000):
        chunk = ended[first : first + 5000]
        pipe.zadd(KEYS.entries_ended(), {e: float(first + n) for n, e in enumerate(chunk)})
    pipe.execute()
    return min(-(-size // stations), len(ended))


def scrape(client: redis.Redis, intercard: bool, rounds: int) -> tuple[float, float, float, int]:
    """(median scrape ms, median and max µs one station's count held Redis, stations left
    out by the limits)."""
    client.config_set("slowlog-log-slower-than", 0)
    client.config_set("slowlog-max-len", 10_000)
    counts = Counts(client, KEYS, intercard=intercard)
    counts.worklist(0.0, (), by_status=True)  # the station list found, the script loaded
    client.slowlog_reset()
    walls = []
    for _ in range(rounds):
        started = time.perf_counter()
        found = counts.worklist(0.0, (), by_status=True)
        walls.append((time.perf_counter() - started) * 1000)
        assert found.ended_by_station is not None
        left_out = len(found.by_station) - len(found.ended_by_station)
    held = [
        int(e["duration"])
        for e in client.slowlog_get(10_000)
        if e["command"].split(b" ", 1)[0].upper() in COUNTED
    ]
    client.config_set("slowlog-log-slower-than", 10_000)
    held = held or [0]  # every station left out
    return statistics.median(walls), statistics.median(held), max(held), left_out


def rows(sizes: list[int], rounds: int, folder: Path) -> Iterator[str]:
    servers: list[tuple[str, Path | None, tuple[bool, ...]]] = [("6.2 (wheel)", None, (False,))]
    if SYSTEM_REDIS.exists():
        servers.append(("7.0 (Debian)", SYSTEM_REDIS, (True, False)))
    for name, binary, ways in servers:
        with server(folder / name.split()[0], binary) as client:
            version = client.info("server")["redis_version"]
            for size in sizes:
                for layout_name, layout in LAYOUTS.items():
                    walked = seed(client, size, layout)
                    for intercard in ways:
                        how = "ZINTERCARD" if intercard else "count_ended.lua"
                        wall, median, most, left_out = scrape(client, intercard, rounds)
                        yield (
                            f"| {version} | {how} | {size:,} | {layout_name} | {walked:,} "
                            f"| {median / 1000:.2f} | {most / 1000:.2f} | {wall:.1f} "
                            f"| {left_out} |"
                        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--limits", action="store_true", help="keep the limits: stations over them left out"
    )
    args = parser.parse_args()
    if not args.limits:
        counts_module.MAX_SCRIPT_IDS = counts_module.MAX_INTERCARD_IDS = 10**9
    print("| Redis | count | entries | layout | most ids walked by one count "
          "| one count held Redis, median ms | max ms | scrape ms (median) "
          "| stations left out |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="counts-bench-") as tmp:
        for row in rows(args.sizes, args.rounds, Path(tmp)):
            print(row, flush=True)


if __name__ == "__main__":
    main()
