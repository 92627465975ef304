"""Bytes on the wire for the attack benchmark: raw DICOM PDUs, MLLP frames, socket states.

An attacker does not use a well-behaved library: it sends a request one byte a
second, announces 4 GiB, or stops reading. So the attacks build their PDUs by hand
(PS3.8 9.3: A-ASSOCIATE-RQ, P-DATA-TF; PS3.7 9.1.2.1: the C-FIND-RQ command set,
always Implicit VR Little Endian) and speak through plain sockets bound to the
source address they attack from (Linux routes all of 127.0.0.0/8 to loopback, so
127.0.0.2 is a real "other host" for the broker's address checks).

Whether the *broker* still holds a connection is read from ``/proc/net/tcp``: a
peer that never reads cannot see the broker's FIN behind the data queued for it,
but the broker's side of the socket leaves ESTABLISHED as soon as it closes.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time

from pydicom.dataset import Dataset
from pynetdicom.dsutils import encode

from broker.mllp.framing import MLLPDecoder, frame

__all__ = [
    "IMPLICIT_LE",
    "MWL_FIND",
    "associate_rq",
    "c_find_pdata",
    "closed_by_peer",
    "connect",
    "mllp_exchange",
    "read_pdu",
    "server_holds",
    "wait_released",
]

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
MWL_FIND = "1.2.840.10008.5.1.4.31"
IMPLEMENTATION_UID = "1.2.826.0.1.3680043.8.498.777.1"
_HEADER = struct.Struct(">BxL")
_TCP_STATES_HELD = {"01", "08"}  # ESTABLISHED, CLOSE_WAIT (the broker has not closed yet)


def connect(port: int, source: str, timeout: float = 30.0, rcvbuf: int = 0) -> socket.socket:
    """A TCP connection to the broker on 127.0.0.1 from ``source``; with ``rcvbuf``, a
    receive buffer that small (set before connecting, so the window stays small)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return sock


def _item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BxH", kind, len(body)) + body


def associate_rq(calling: str, called: str, abstract: str, max_pdu: int = 16384) -> bytes:
    """An A-ASSOCIATE-RQ (PS3.8 9.3.2) proposing ``abstract`` in Implicit VR LE, context 1."""
    context = (
        bytes([1, 0, 0, 0]) + _item(0x30, abstract.encode()) + _item(0x40, IMPLICIT_LE.encode())
    )
    user = _item(0x51, struct.pack(">L", max_pdu)) + _item(0x52, IMPLEMENTATION_UID.encode())
    body = (
        struct.pack(">HH", 1, 0)
        + called.ljust(16).encode()
        + calling.ljust(16).encode()
        + bytes(32)
        + _item(0x10, APPLICATION_CONTEXT.encode())
        + _item(0x20, context)
        + _item(0x50, user)
    )
    return _HEADER.pack(0x01, len(body)) + body


def _pdv(context_id: int, control: int, data: bytes) -> bytes:
    return struct.pack(">LBB", len(data) + 2, context_id, control) + data


def c_find_pdata(identifier: Dataset, msg_id: int = 1) -> bytes:
    """One P-DATA-TF (PS3.8 9.3.5) with a whole C-FIND-RQ: command and identifier as the
    last fragment of each, presentation context 1 (Implicit VR LE)."""
    command = Dataset()
    command.AffectedSOPClassUID = MWL_FIND
    command.CommandField = 0x0020
    command.MessageID = msg_id
    command.Priority = 0
    command.CommandDataSetType = 0x0000
    elements = encode(command, True, True)
    assert elements is not None
    group_length = struct.pack("<HHLL", 0, 0, 4, len(elements))  # (0000,0000) UL
    data = encode(identifier, True, True)
    assert data is not None
    pdvs = _pdv(1, 0x03, group_length + elements) + _pdv(1, 0x02, data)
    return _HEADER.pack(0x04, len(pdvs)) + pdvs


def read_pdu(sock: socket.socket) -> int | None:
    """Read one PDU and return its type (2: A-ASSOCIATE-AC, 3: -RJ, 7: A-ABORT), or None
    when the peer closes first."""
    header = _read_exactly(sock, _HEADER.size)
    if header is None:
        return None
    kind, length = _HEADER.unpack(header)
    return kind if _read_exactly(sock, length) is not None else None


def _read_exactly(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        try:
            chunk = sock.recv(min(n - len(data), 1 << 16))
        except ConnectionError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


def closed_by_peer(sock: socket.socket) -> bool:
    """Without waiting: whether the broker has closed (EOF or reset) this connection."""
    timeout = sock.gettimeout()
    sock.setblocking(False)  # with a timeout, Python would wait for data despite MSG_DONTWAIT
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(timeout)


def mllp_exchange(sock: socket.socket, payload: bytes, max_bytes: int = 1 << 20) -> bytes | None:
    """Send ``payload`` in an MLLP frame; the response payload, or None if the broker
    closes the connection without one."""
    decoder = MLLPDecoder(max_bytes)
    with contextlib.suppress(ConnectionError):
        sock.sendall(frame(payload))
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except ConnectionError:
            return None
        if not chunk:
            return None
        frames = decoder.feed(chunk)
        if frames:
            return frames[0]


def _address(hex_text: str) -> tuple[str, int]:
    host, port = hex_text.split(":")
    return socket.inet_ntoa(bytes.fromhex(host)[::-1]), int(port, 16)


def server_holds(broker_port: int, client: tuple[str, int]) -> bool:
    """Whether the broker's end of the connection from ``client`` (address, port) is still
    open: ESTABLISHED or CLOSE_WAIT in ``/proc/net/tcp`` (gone, or closing, otherwise)."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, state = _address(fields[1]), _address(fields[2]), fields[3]
            if local == ("127.0.0.1", broker_port) and remote == client:
                return state in _TCP_STATES_HELD
    return False


def wait_released(broker_port: int, client: tuple[str, int], deadline: float) -> float | None:
    """Monotonic time at which the broker released the connection, or None at ``deadline``."""
    while time.monotonic() < deadline:
        if not server_holds(broker_port, client):
            return time.monotonic()
        time.sleep(0.2)
    return None
