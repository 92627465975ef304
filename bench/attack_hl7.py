"""The HL7 attacks of the attack benchmark (``bench.attack_report`` says what they
return): (g) an MLLP flood from an unlisted address, (h) orders dated ten years ahead,
(i) frames over the frame cap, (j) undecodable frames, the last three from a listed
sender.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
from collections.abc import Callable

from bench.attack_dicom import stored
from bench.attack_legit import order
from bench.attack_report import ROGUE_SENDER, UNLISTED, AttackReport, Target, counted, flood
from bench.attack_wire import connect, mllp_exchange
from broker.mllp.client import summarize_ack

__all__ = ["future_msh7", "mllp_flood", "oversize", "undecodable"]


def mllp_flood(target: Target) -> AttackReport:
    """(g) MLLP connections from an address no sender lists, each sending an order."""
    counter = iter(range(1 << 30))

    def attempt() -> tuple[float, str]:
        with connect(target.hl7_port, UNLISTED) as sock:
            t0 = time.monotonic()
            ack = mllp_exchange(sock, order(f"U{target.run_id}{next(counter)}"))
            return time.monotonic() - t0, "closed, no ACK" if ack is None else "answered"

    results = flood(target, 2 if target.quick else 4, attempt)
    return AttackReport(
        f"{len(results)} connections: {counted(results)}",
        bool(results) and all(r != "answered" for _, r in results),
        [t for t, _ in results],
    )


def future_msh7(target: Target) -> AttackReport:
    """(h) A listed sender's orders dated ten years ahead (MSH-7), back to back."""
    stamp = (dt.datetime.now() + dt.timedelta(days=3653)).strftime("%Y%m%d%H%M%S")
    results: list[tuple[float, str]] = []
    ids: list[str] = []
    end = time.monotonic() + target.seconds
    with connect(target.hl7_port, ROGUE_SENDER[1]) as sock:
        while time.monotonic() < end:
            ids.append(f"F{target.run_id}{len(ids)}")
            t0 = time.monotonic()
            raw = mllp_exchange(sock, order(ids[-1], ROGUE_SENDER[0], stamp))
            if raw is None:
                results.append((time.monotonic() - t0, "closed, no ACK"))
                break
            ack = summarize_ack(raw)
            at_msh7 = any(e.startswith("MSH-7") for e in ack.errors)
            results.append((time.monotonic() - t0, ack.code + (" at MSH-7" if at_msh7 else "")))
    sample = ids[:: max(1, len(ids) // 10)]
    found = stored(sample, target.dicom_port)
    return AttackReport(
        f"{len(results)} orders: {counted(results)}; {found} of {len(sample)} sampled "
        "accession numbers on the worklist",
        found == 0 and all(r == "AE at MSH-7" for _, r in results),
        [t for t, _ in results],
    )


def _frames(target: Target, payload: Callable[[int], bytes], keep_open: bool) -> AttackReport:
    """Frames from the listed LAB sender, 2 or 4 connections, back to back."""
    counter = iter(range(1 << 30))

    def send(sock: socket.socket) -> tuple[float, str]:
        t0 = time.monotonic()
        raw = mllp_exchange(sock, payload(next(counter)))
        code = "closed, no ACK" if raw is None else summarize_ack(raw).code
        return time.monotonic() - t0, code

    if keep_open:
        local = threading.local()

        def attempt() -> tuple[float, str]:
            if getattr(local, "sock", None) is None:
                local.sock = connect(target.hl7_port, ROGUE_SENDER[1])
            result = send(local.sock)
            if result[1] == "closed, no ACK":
                local.sock.close()
                local.sock = None
            return result
    else:

        def attempt() -> tuple[float, str]:
            with connect(target.hl7_port, ROGUE_SENDER[1]) as sock:
                return send(sock)

    results = flood(target, 2 if target.quick else 4, attempt)
    return AttackReport(
        f"{len(results)} frames: {counted(results)}",
        bool(results) and all(r == "AR" for _, r in results),
        [t for t, _ in results],
    )


def oversize(target: Target) -> AttackReport:
    """(i) Frames 64 KiB over the MLLP frame cap, each on a new connection."""
    padding = b"NTE|1||" + b"x" * (target.max_frame_bytes + 65536) + b"\r"
    return _frames(
        target, lambda n: order(f"O{target.run_id}{n}", ROGUE_SENDER[0]) + padding, False
    )


def undecodable(target: Target) -> AttackReport:
    """(j) 16 KiB frames of random bytes, back to back on open connections."""

    def junk(n: int) -> bytes:
        return os.urandom(16384).translate(None, b"\x0b\x1c")

    return _frames(target, junk, True)
