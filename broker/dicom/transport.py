"""Whole PDUs, each under a deadline and a cap for its type, beneath pynetdicom's upper layer.

pynetdicom (3.0.4) reads a PDU as a 6-byte header, then as many bytes as its length
field says (``DULServiceProvider._read_pdu_data`` through ``AssociationSocket.recv``),
with the socket's timeout for each read: a peer that sends one byte per timeout holds
its connection, and two threads, for as long as its length field allows, and any
length is believed. :class:`GuardedSocket` takes over that read (PS3.8 9.3.1: a PDU
is a type byte, a reserved byte and a 4-byte big-endian length):

- a PDU must arrive whole within ``dicom_network_timeout`` of its first byte (the
  A-ASSOCIATE-RQ, read by the connection's own thread before pynetdicom starts,
  within that time of the connection opening);
- its length field is checked before its body is read, against a cap for its type
  (:func:`pdu_limit`): an A-ASSOCIATE-RQ/AC at most 64 KiB; a P-DATA-TF at most the
  Maximum Length the broker announced in its A-ASSOCIATE-AC (PS3.8 D.1: the longest
  variable field of the P-DATA-TF PDUs it receives), 6 bytes more tolerated for a peer
  that leaves the PDV item header out of its count; A-ASSOCIATE-RJ, A-RELEASE-RQ/RP
  and A-ABORT 4 bytes (PS3.8 9.3.4, 9.3.6-9.3.8); none over 1 MiB;
- a PDU over its cap is answered with an A-ABORT (source: service provider, reason:
  invalid PDU parameter value, PS3.8 Table 9-26) and the connection closed; one late
  past its deadline is closed without a word, as the ARTIM timer closes a silent peer
  (PS3.8 9.1.5); either way one WARNING line with the address and the calling AE title.

It also closes the connection as soon as an A-ASSOCIATE-RJ or an A-ABORT has been
sent: a refused or aborted peer is not held for the ARTIM timeout waiting for it to
close (PS3.8 leaves the close to the requestor; one that never closes would keep an
association slot for 30 s).

How it is hooked, in one place: :class:`GuardedRequestHandler` is pynetdicom's
``RequestHandler`` whose ``handle`` builds the association as pynetdicom's does, turns
its ``AssociationSocket`` into a :class:`GuardedSocket` (same state, methods
overridden) and then waits for the association to end, so that the connection counts
against the guard's caps for as long as it lives. It relies on pynetdicom's private
``RequestHandler._create_association`` and on the DUL reading through
``AssociationSocket.recv``; :data:`PYNETDICOM_READ` is the version read, and a test
fails when another is installed.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import time
from collections.abc import Callable
from enum import IntEnum
from typing import Any

from pynetdicom import evt
from pynetdicom.transport import AssociationSocket, RequestHandler

from broker.dicom.peers import loggable_ae

__all__ = [
    "HEADER_BYTES",
    "MAX_ASSOCIATE_RQ_BYTES",
    "MAX_PDU_BYTES",
    "PYNETDICOM_READ",
    "AbortReason",
    "GuardedRequestHandler",
    "GuardedSocket",
    "PduType",
    "Refused",
    "abort_pdu",
    "hang_up",
    "pdu_limit",
    "read_pdu",
    "require_hooks",
    "send_abort",
]

log = logging.getLogger(__name__)

PYNETDICOM_READ = "3.0.4"  # the pynetdicom whose dul.py and transport.py this module follows

HEADER_BYTES = 6
# A-ASSOCIATE-RQ items are a few hundred bytes each; 64 KiB leaves room for many
# presentation contexts and user identity, and is far from a memory attack.
MAX_ASSOCIATE_RQ_BYTES = 64 * 1024
MAX_PDU_BYTES = 1024 * 1024  # any PDU, whatever was negotiated (a maximum of 0 is "no limit")
_SHORT_BODY = 4  # A-ASSOCIATE-RJ, A-RELEASE-RQ/RP, A-ABORT
_PDV_HEADER = 6  # item length (4), context ID, message control header
_CHUNK = 64 * 1024
_HEADER = struct.Struct(">BxL")


class PduType(IntEnum):
    """PDU types (PS3.8 Table 9-11 and following)."""

    ASSOCIATE_RQ = 0x01
    ASSOCIATE_AC = 0x02
    ASSOCIATE_RJ = 0x03
    P_DATA_TF = 0x04
    RELEASE_RQ = 0x05
    RELEASE_RP = 0x06
    ABORT = 0x07


_NAMES = {
    PduType.ASSOCIATE_RQ: "A-ASSOCIATE-RQ",
    PduType.ASSOCIATE_AC: "A-ASSOCIATE-AC",
    PduType.ASSOCIATE_RJ: "A-ASSOCIATE-RJ",
    PduType.P_DATA_TF: "P-DATA-TF",
    PduType.RELEASE_RQ: "A-RELEASE-RQ",
    PduType.RELEASE_RP: "A-RELEASE-RP",
    PduType.ABORT: "A-ABORT",
}
_FINAL = frozenset({PduType.ASSOCIATE_RJ, PduType.ABORT})  # after these, nothing is said


class AbortReason(IntEnum):
    """A-ABORT reasons when the service provider aborts (PS3.8 Table 9-26)."""

    NOT_SPECIFIED = 0
    UNEXPECTED_PDU = 2
    INVALID_PARAMETER_VALUE = 6


class Refused(Exception):
    """A PDU the guard does not take; ``reason`` is the A-ABORT to send (None: none)."""

    def __init__(self, why: str, reason: AbortReason | None) -> None:
        super().__init__(why)
        self.why = why
        self.reason = reason


def pdu_limit(pdu_type: int, announced: int) -> int | None:
    """The longest length field a PDU of ``pdu_type`` may carry, given the Maximum Length
    the broker announced (0: none); None for a type PS3.8 does not define, which
    pynetdicom answers itself (an A-ABORT, without reading the body)."""
    if pdu_type in (PduType.ASSOCIATE_RQ, PduType.ASSOCIATE_AC):
        return MAX_ASSOCIATE_RQ_BYTES
    if pdu_type == PduType.P_DATA_TF:
        return min(announced + _PDV_HEADER, MAX_PDU_BYTES) if announced > 0 else MAX_PDU_BYTES
    if pdu_type in _NAMES:
        return _SHORT_BODY
    return None


def abort_pdu(reason: AbortReason) -> bytes:
    """An A-ABORT PDU from the service provider (PS3.8 9.3.8: source 2)."""
    return _HEADER.pack(PduType.ABORT, 4) + bytes((0, 0, 2, int(reason)))


def read_pdu(
    sock: socket.socket,
    deadline: float,
    *,
    announced: int = 0,
    expected: PduType | None = None,
) -> bytes:
    """One whole PDU from ``sock`` by ``deadline`` (``time.monotonic``): its header and
    body; only the header for a type PS3.8 does not define; b"" when the peer closed
    first. :class:`Refused` for a PDU over its cap, of another type than ``expected``,
    or not whole by the deadline. The socket's timeout is changed on the way: the caller
    sets it back."""
    header, late = _read_exact(sock, HEADER_BYTES, deadline)
    if late:
        raise Refused(f"no PDU header within the network timeout ({len(header)} bytes)", None)
    if len(header) < HEADER_BYTES:
        return b""
    pdu_type, length = _HEADER.unpack(header)
    name = _NAMES.get(pdu_type, f"PDU of type 0x{pdu_type:02x}")
    if expected is not None and pdu_type != expected:
        raise Refused(f"{name} where an {_NAMES[expected]} was due", AbortReason.UNEXPECTED_PDU)
    limit = pdu_limit(pdu_type, announced)
    if limit is None:
        return header
    if length > limit:
        raise Refused(
            f"{name} of {length} bytes announced (at most {limit})",
            AbortReason.INVALID_PARAMETER_VALUE,
        )
    body, late = _read_exact(sock, length, deadline)
    if late:
        raise Refused(
            f"{name} of {length} bytes not whole within the network timeout "
            f"({len(body)} bytes of it came)",
            None,
        )
    return header + body if len(body) == length else b""


def _read_exact(sock: socket.socket, size: int, deadline: float) -> tuple[bytes, bool]:
    """``size`` bytes, or fewer when the peer closes; and whether the deadline passed
    before they came."""
    data = bytearray()
    while len(data) < size:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(data), True
        sock.settimeout(left)
        try:
            chunk = sock.recv(min(size - len(data), _CHUNK))
        except TimeoutError:
            return bytes(data), True
        except OSError:  # reset by the peer: as good as closed
            return bytes(data), False
        if not chunk:
            return bytes(data), False
        data += chunk
    return bytes(data), False


def hang_up(sock: socket.socket | None, *, reset: bool = False) -> None:
    """Shut the connection down in both directions, which also wakes a thread blocked
    on it; ``reset``: whatever is still unsent is dropped when it is closed (SO_LINGER
    0), for a peer that does not read. Closing is left to pynetdicom."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)


def send_abort(sock: socket.socket, reason: AbortReason | None) -> None:
    """Best effort: the peer may be gone or not reading, so at most a second is spent."""
    if reason is None:
        return
    with contextlib.suppress(OSError):
        sock.settimeout(1.0)
        sock.sendall(abort_pdu(reason))


class GuardedSocket(AssociationSocket):
    """pynetdicom's socket wrapper, reading whole PDUs under their deadline and cap and
    hanging up after a final PDU (module docstring). Made by :meth:`adopt`."""

    _buffer: bytearray
    _timeout: float
    _refused: Callable[[str, str], None]

    @classmethod
    def adopt(
        cls,
        sock: AssociationSocket,
        first_pdu: bytes,
        timeout: float,
        refused: Callable[[str, str], None] | None = None,
    ) -> GuardedSocket:
        """Turn pynetdicom's ``sock`` into a guarded one (it keeps its state and queue
        events); ``first_pdu``, already read, is what the upper layer reads first;
        ``refused(address, why)`` hears of each refused PDU (the audit trail)."""
        sock.__class__ = cls
        assert isinstance(sock, GuardedSocket)
        sock._buffer = bytearray(first_pdu)
        sock._timeout = timeout
        sock._refused = refused or (lambda address, why: None)
        return sock

    @property
    def ready(self) -> bool:
        """Data to read: a PDU read ahead, or bytes on the socket."""
        return bool(self._buffer) or bool(super().ready)

    def recv(self, nr_bytes: int) -> bytearray:
        """The upper layer's read: a header, then the body it announced (dul.py). The
        whole PDU is read at the header; a refused one reads as a closed connection."""
        if nr_bytes <= 0:  # the body of an empty PDU: not the next PDU's header
            return bytearray()
        if not self._buffer:
            self._buffer = bytearray(self._next_pdu())
        data = self._buffer[:nr_bytes]
        del self._buffer[:nr_bytes]
        return data

    def send(self, bytestream: bytes) -> None:
        """Send a PDU; after an A-ASSOCIATE-RJ or an A-ABORT, hang up."""
        super().send(bytestream)
        if bytestream[:1] and bytestream[0] in _FINAL:
            hang_up(self.socket)

    def _next_pdu(self) -> bytes:
        sock = self.socket
        if sock is None:
            return b""
        try:
            return read_pdu(
                sock,
                time.monotonic() + self._timeout,
                announced=int(self.assoc.acceptor.maximum_length or 0),
            )
        except Refused as refusal:
            log.warning(
                "DICOM association from %s, calling AE title '%s': %s; %s",
                _address(self.assoc),
                loggable_ae(getattr(self.assoc.requestor, "ae_title", "") or "?"),
                refusal.why,
                "closed" if refusal.reason is None else "aborted",
            )
            self._refused(_address(self.assoc), refusal.why)
            send_abort(sock, refusal.reason)
            return b""  # the upper layer sees the connection closed, and closes it
        finally:
            with contextlib.suppress(OSError):
                sock.settimeout(self._timeout)


def _address(assoc: Any) -> str:
    try:
        return str(assoc.requestor.address)
    except AttributeError:
        return "?"


class GuardedRequestHandler(RequestHandler):
    """pynetdicom's request handler with a :class:`GuardedSocket`, held until its
    association ends (module docstring). ``first_pdu`` is the A-ASSOCIATE-RQ the
    connection's thread has read."""

    def __init__(
        self, request: Any, client_address: Any, server: Any, first_pdu: bytes, timeout: float
    ) -> None:
        self._first_pdu = first_pdu
        self._timeout = timeout
        super().__init__(request, client_address, server)  # runs handle()

    def handle(self) -> None:
        """As pynetdicom's ``RequestHandler.handle``, with the guarded socket, then wait."""
        assoc = self._create_association()
        assert assoc.dul.socket is not None  # set by _create_association
        refused = getattr(getattr(self.server, "limits", None), "refused", None)
        GuardedSocket.adopt(assoc.dul.socket, self._first_pdu, self._timeout, refused)
        evt.trigger(assoc, evt.EVT_CONN_OPEN, {"address": self.client_address})
        assoc.start()
        assoc.join()


def require_hooks() -> None:
    """Fail at start-up, not on the first connection, if pynetdicom lacks what the guard
    hooks into (it follows pynetdicom ``PYNETDICOM_READ``)."""
    missing = [
        name
        for owner, name in (
            (RequestHandler, "_create_association"),
            (AssociationSocket, "recv"),
            (AssociationSocket, "send"),
            (AssociationSocket, "ready"),
        )
        if not hasattr(owner, name)
    ]
    if missing:
        raise RuntimeError(
            f"the DICOM transport guard was written for pynetdicom {PYNETDICOM_READ}; "
            f"this pynetdicom lacks {', '.join(missing)}"
        )
