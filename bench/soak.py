"""The crash-safety soak (``make soak``): resending MLLP senders, the broker killed with
SIGKILL and restarted, its embedded redis-server killed, a modality doing MPPS, status
messages to a receiver; then every check of ``tests.crash.checks``. Not a test: prints
the report and exits 1 if any check failed.

    .venv/bin/python -m bench.soak [--messages 10000] [--broker-kills 2] [--redis-kills 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

from tests.crash.scenario import run_soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--broker-kills", type=int, default=2)
    parser.add_argument("--redis-kills", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (logs, data)")
    args = parser.parse_args()
    for name in ("messages", "connections"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}", flush=True)  # fmt: skip
    options = {"messages": args.messages, "connections": args.connections,
               "broker_kills": args.broker_kills, "redis_kills": args.redis_kills,
               "seed": args.seed}  # fmt: skip
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        report = run_soak(args.keep, **options)
    else:
        with tempfile.TemporaryDirectory(prefix="mwl-soak-") as tmp:
            report = run_soak(Path(tmp), **options)
    print("\n".join(report.lines()))
    failed = {k: v for k, v in report.failures().items() if v}
    print("PASS" if not failed else f"FAIL: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
