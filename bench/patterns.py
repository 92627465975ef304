"""One ``when: {match: …}`` condition on a hostile value: Python's ``re`` against RE2.

The value is ``"a" * n + "!"``, which none of the patterns matches in full, so
a backtracking engine tries every way to split the ``a``s before it gives up.
"before" is what the broker did until it moved to RE2 (``re.compile`` then
``fullmatch``); "after" is the broker's own ``compile_pattern(…).fullmatch``.
Python's ``re`` is timed on growing ``n`` until one evaluation takes longer
than ``--budget`` seconds; RE2 on the same ``n`` and on 1000 characters (the
longest value a condition matches). Last, RE2's slow path: patterns with the
largest programs the 256 KiB bound lets through, ``extract`` (search and
captures) on 1000 characters.

    .venv/bin/python -m bench.patterns [--budget 2.0]
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable

from broker.mapping.patterns import MAX_MATCHED, compile_pattern

PATTERNS = ("((a)+)+", "(a|aa)+$", "(.*a){12}")
LARGE = ("(.{1,200})(.{1,200})(.{1,200})(.{1,200})b", "((.{0,200}a)){4}x", "(\\w{1,20}a){1,30}")


def seconds(evaluate: Callable[[str], object], text: str, repeat: int) -> float:
    """The best of ``repeat`` evaluations, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        evaluate(text)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=2.0, help="stop re past this (seconds)")
    args = parser.parse_args()
    print("| pattern | n | Python re | RE2 |")
    print("|---|---|---|---|")
    for pattern in PATTERNS:
        before, after = re.compile(pattern), compile_pattern(pattern)
        n = 12
        while True:
            text = "a" * n + "!"
            slow = seconds(before.fullmatch, text, 1)
            fast = seconds(after.fullmatch, text, 50)
            print(f"| `{pattern}` | {n} | {slow * 1e3:.1f} ms | {fast * 1e6:.1f} µs |")
            if slow > args.budget or n >= 30:
                break
            n += 2
        text = "a" * (MAX_MATCHED - 1) + "!"
        fast = seconds(after.fullmatch, text, 50)
        print(f"| `{pattern}` | {MAX_MATCHED} | (not run) | {fast * 1e6:.1f} µs |")
    print("\n| pattern (RE2, extract) | `a` * 1000 | `ab` * 500 |")
    print("|---|---|---|")
    for pattern in LARGE:
        after = compile_pattern(pattern)
        times = [seconds(after.extract, text, 5) for text in ("a" * 1000, "ab" * 500)]
        print(f"| `{pattern}` | " + " | ".join(f"{t * 1e3:.1f} ms" for t in times) + " |")


if __name__ == "__main__":
    main()
