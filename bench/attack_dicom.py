"""The DICOM attacks of the attack benchmark (``bench.attack_report`` says what they
return): (a) the exponential wild-card query, (b) a 4 GiB A-ASSOCIATE-RQ, (c) peers at
1 byte/s, (d) idle connections, (e) a peer that never reads, (f) an association flood.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time

from pydicom.dataset import Dataset
from pynetdicom import AE

from bench.attack_report import ROGUE_SCANNER, UNLISTED, AttackReport, Target, counted, flood
from bench.attack_wire import (
    MWL_FIND,
    associate_rq,
    c_find_pdata,
    closed_by_peer,
    connect,
    read_pdu,
    wait_released,
)
from bench.cfind_client import _one_query, associate
from bench.cfind_data import query_dataset
from bench.wildcard import attack_key
from broker.dicom.server import ModalityWorklistInformationFind

__all__ = [
    "dicom_flood",
    "huge_association",
    "idle",
    "non_reading",
    "slowloris",
    "stored",
    "wildcard",
]

PDU_NAMES = {2: "A-ASSOCIATE-AC", 3: "A-ASSOCIATE-RJ", 7: "A-ABORT", None: "closed"}


def wildcard(target: Target) -> AttackReport:
    """(a) ``*?`` 30 times then ``#`` in Patient's Name, no other key: every entry a candidate."""
    callers = 2 if target.quick else 4
    identifier = Dataset()
    identifier.PatientName = attack_key(30)
    identifier.AccessionNumber = ""
    results: list[tuple[float, str]] = []
    end = time.monotonic() + target.seconds
    matched = [0]

    def caller() -> None:
        ae = AE(ae_title=ROGUE_SCANNER[0])
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 120
        ae.add_requested_context(ModalityWorklistInformationFind)
        assoc = associate(ae, target.dicom_port, bind_address=(ROGUE_SCANNER[1], 0))
        msg_id = 0
        while assoc.is_established and time.monotonic() < end:
            msg_id += 1
            ms, answers, final = _one_query(assoc, identifier, msg_id)
            matched[0] += len(answers)
            results.append((ms / 1000, "no status" if final == -1 else f"status 0x{final:04X}"))
        if assoc.is_established:
            assoc.release()

    workers = [threading.Thread(target=caller, daemon=True) for _ in range(callers)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    ok = bool(results) and all(r != "no status" for _, r in results)
    return AttackReport(
        f"{callers} callers, {len(results)} queries: {counted(results)}; {matched[0]} answers",
        ok and matched[0] == 0,
        [t for t, _ in results],
    )


def huge_association(target: Target) -> AttackReport:
    """(b) An A-ASSOCIATE-RQ announcing 4 GiB, then zeros as fast as they are taken."""
    sent: list[int] = []

    def attempt() -> tuple[float, str]:
        with connect(target.dicom_port, UNLISTED) as sock:
            t0 = time.monotonic()
            total = 0
            chunk = bytes(1 << 16)
            try:
                sock.sendall(b"\x01\x00\xff\xff\xff\xff")
                while time.monotonic() - t0 < 60 and not closed_by_peer(sock):
                    total += sock.send(chunk)
                closed = closed_by_peer(sock)
            except ConnectionError:
                closed = True
            except TimeoutError:
                closed = False
            sent.append(total)
            return time.monotonic() - t0, "closed" if closed else "still open after 60 s"

    results = flood(target, 1 if target.quick else 4, attempt)
    return AttackReport(
        f"{len(results)} requests: {counted(results)}; at most {max(sent, default=0) // 1024} "
        "KiB taken by the sockets before the close",
        all(r == "closed" for _, r in results),
        [t for t, _ in results],
    )


def _spread(count: int, addresses: int) -> list[str]:
    """``count`` source addresses over ``addresses`` distinct ones (127.0.1.x, ...)."""
    if addresses == 1:
        return [UNLISTED] * count
    return [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(addresses)] * (
        count // addresses
    ) + [UNLISTED] * (count % addresses)


def _hold(
    target: Target, sources: list[str], trickle: bytes = b""
) -> tuple[int, list[float | None]]:
    """Open a connection from each of ``sources`` and keep them open, each sending the
    next byte of ``trickle`` (if any) every second from its opening, until the broker has
    closed them all or ``hold_cap``. Returns the connections the broker did not accept,
    and seconds from open to close per accepted one (None: still open at the end)."""
    pending = list(sources)
    socks: list[tuple[socket.socket, float]] = []
    sent: list[int] = []
    closed: dict[int, float] = {}
    end = time.monotonic() + target.hold_cap
    with selectors.DefaultSelector() as sel:
        while (pending or len(closed) < len(socks)) and time.monotonic() < end:
            if pending:  # open the next one; between opens, only look
                try:
                    sock = connect(target.dicom_port, pending.pop(0), timeout=5)
                    sel.register(sock, selectors.EVENT_READ, len(socks))
                    socks.append((sock, time.monotonic()))
                    sent.append(0)
                except OSError:
                    pass  # not even accepted: counted from the difference
            for key, _ in sel.select(timeout=0 if pending else 0.25):
                sock, opened = socks[key.data]
                if closed_by_peer(sock):
                    closed[key.data] = time.monotonic() - opened
                    sel.unregister(sock)
                else:
                    sock.recv(1 << 16)  # an answer (a rejection): the close comes next
            for i, (sock, opened) in enumerate(socks):
                due = min(len(trickle), int(time.monotonic() - opened) + 1)
                if i not in closed and sent[i] < due:
                    with contextlib.suppress(OSError):  # the next select sees the close
                        sock.send(trickle[sent[i] : sent[i] + 1])
                    sent[i] += 1
    for sock, _ in socks:
        sock.close()
    return len(sources) - len(socks), [closed.get(i) for i in range(len(socks))]


def _held_report(what: str, held: tuple[int, list[float | None]], target: Target) -> AttackReport:
    """The outcome of ``_hold``: how many connections the broker closed how soon."""
    refused, times = held
    done = sorted(t for t in times if t is not None)
    still = len(times) - len(done)
    parts = [f"{refused + len(times)} {what}: {refused} not accepted"]
    for low, high in ((0.0, 1.0), (1.0, 10.0), (10.0, float("inf"))):
        inside = [t for t in done if low <= t < high]
        if inside:
            parts.append(f"{len(inside)} closed after {inside[0]:.1f}-{inside[-1]:.1f} s")
    if still:
        parts.append(f"{still} still open at {target.hold_cap:.0f} s (then closed by the bench)")
    return AttackReport(", ".join(parts), still == 0, done)


def slowloris(target: Target) -> AttackReport:
    """(c) Peers each sending an A-ASSOCIATE-RQ one byte a second."""
    peers, addresses = (4, 2) if target.quick else (16, 4)
    request = associate_rq("SLOW", "MWL_BROKER", MWL_FIND)
    held = _hold(target, _spread(peers, addresses), request)
    return _held_report(f"1 byte/s peers from {addresses} addresses", held, target)


def idle(target: Target, addresses: int) -> AttackReport:
    """(d) Idle TCP connections: opened, nothing sent."""
    count = 50 if target.quick else 500
    where = "one address" if addresses == 1 else f"{addresses} addresses"
    held = _hold(target, _spread(count, addresses))
    return _held_report(f"idle connections from {where}", held, target)


def non_reading(target: Target) -> AttackReport:
    """(e) A listed scanner asks for every entry, then never reads an answer."""
    sock = connect(target.dicom_port, ROGUE_SCANNER[1], rcvbuf=4096)
    try:
        sock.sendall(associate_rq(ROGUE_SCANNER[0], "MWL_BROKER", MWL_FIND))
        accepted = read_pdu(sock)
        if accepted != 2:
            return AttackReport(f"association: {PDU_NAMES.get(accepted)}", False)
        sock.sendall(c_find_pdata(query_dataset(("patient", ""))))  # no key: every entry
        t0 = time.monotonic()
        released = wait_released(target.dicom_port, sock.getsockname(), t0 + target.hold_cap)
    finally:
        sock.close()
    if released is None:
        return AttackReport(
            f"C-FIND for every entry, never read: still held at {target.hold_cap:.0f} s", False
        )
    return AttackReport(
        f"C-FIND for every entry, never read: released after {released - t0:.1f} s",
        True, [released - t0],
    )  # fmt: skip


def dicom_flood(target: Target) -> AttackReport:
    """(f) Associations from an address no scanner lists, back to back."""

    def attempt() -> tuple[float, str]:
        with connect(target.dicom_port, UNLISTED) as sock:
            t0 = time.monotonic()
            sock.sendall(associate_rq("INTRUDER", "MWL_BROKER", MWL_FIND))
            answer = read_pdu(sock)
            return time.monotonic() - t0, PDU_NAMES.get(answer, f"PDU {answer}")

    results = flood(target, 2 if target.quick else 4, attempt)
    return AttackReport(
        f"{len(results)} association requests: {counted(results)}",
        bool(results) and all(r != PDU_NAMES[2] for _, r in results),
        [t for t, _ in results],
    )


def stored(accessions: list[str], dicom_port: int) -> int:
    """Worklist entries with these accession numbers, asked as the listed ROGUE scanner."""
    ae = AE(ae_title=ROGUE_SCANNER[0])
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = associate(ae, dicom_port, bind_address=(ROGUE_SCANNER[1], 0))
    assert assoc.is_established, "the listed ROGUE scanner was not accepted"
    found = 0
    try:
        for n, accession in enumerate(accessions, 1):
            identifier = Dataset()
            identifier.AccessionNumber = accession
            identifier.PatientID = ""
            found += len(_one_query(assoc, identifier, n)[1])
    finally:
        assoc.release()
    return found
