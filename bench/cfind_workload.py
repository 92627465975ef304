"""The C-FIND benchmark's cells: repetitions cut to the time budget, one cell per server run
in rounds that alternate between the servers, the rounds' results merged."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

from bench.cfind_client import CellResult, run_cell
from bench.cfind_data import Query
from bench.cfind_servers import RssSampler, Server

KINDS = {"station": "station poll", "patient": "patient query", "broad": "broad query"}
DEFAULT_REPS = {"station": (100, 200), "patient": (200, 400), "broad": (20, 32)}  # c=1, c>1


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
