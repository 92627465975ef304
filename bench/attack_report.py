"""What every attack of the attack benchmark shares: where it attacks, what it reports.

Every attack (``bench.attack_dicom``, ``bench.attack_hl7``) is a function of a
:class:`Target` that returns an :class:`AttackReport`: what the attack got (the
outcome in words), how long the broker took to refuse or end each attempt, and
whether the broker defended as it should (``defended``: every attempt refused,
answered with a failure, or its connection closed, and nothing stored). Floods run
for ``seconds``; attacks that hold connections run until the broker has released
every one of them, or ``hold_cap`` seconds. Each runs in a process of its own.

Addresses (all loopback, see ``bench.attack_wire``): 127.0.0.2 and 127.0.1.x are no
listed scanner or sender; 127.0.0.3 is a listed scanner gone bad (``ROGUE``, every
station in scope); 127.0.0.4 a listed HL7 sender gone bad (``LAB``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "ROGUE_SCANNER",
    "ROGUE_SENDER",
    "UNLISTED",
    "AttackReport",
    "Target",
    "counted",
    "flood",
]

UNLISTED = "127.0.0.2"
ROGUE_SCANNER = ("ROGUE", "127.0.0.3")
ROGUE_SENDER = ("LAB", "127.0.0.4")


@dataclass(frozen=True)
class Target:
    """Where and how long to attack."""

    dicom_port: int
    hl7_port: int
    seconds: float
    hold_cap: float
    quick: bool
    max_frame_bytes: int
    run_id: str


@dataclass
class AttackReport:
    """What one attack got; ``times`` are seconds to refusal or close, one per attempt."""

    outcome: str
    defended: bool
    times: list[float] = field(default_factory=list)


def flood(
    target: Target, threads: int, attempt: Callable[[], tuple[float, str]]
) -> list[tuple[float, str]]:
    """``attempt`` back to back from ``threads`` threads for ``target.seconds``."""
    results: list[tuple[float, str]] = []
    end = time.monotonic() + target.seconds

    def loop() -> None:
        while time.monotonic() < end:
            try:
                results.append(attempt())
            except OSError as e:
                results.append((0.0, f"client error {type(e).__name__}"))

    workers = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return results


def counted(results: list[tuple[float, str]]) -> str:
    return ", ".join(f"{n} {what}" for what, n in Counter(r for _, r in results).most_common())
