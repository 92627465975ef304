"""A guard in front of pynetdicom's association server: limits it does not apply itself.

pynetdicom (3.0.4) starts a thread for every accepted connection and trusts the length
field of an A-ASSOCIATE-RQ: a request announcing 4 GiB is read for as long as bytes come,
and ``maximum_associations`` is checked only once the request is decoded. This server
class, handed to ``AE.make_server``, adds before any of that (PS3.8 9.3.2: the
A-ASSOCIATE-RQ PDU is type 01H with a 4-byte length after a reserved byte):

- connections counted in all and per source address, refused (closed) before a thread
  is started when over their cap;
- a socket timeout set as the connection opens, so a silent peer cannot hold a thread;
- the first PDU's header read (peeked, left in place) in the connection's own thread:
  an A-ASSOCIATE-RQ longer than ``MAX_ASSOCIATE_RQ_BYTES`` is closed unread;
- with TLS, the handshake in the connection's own thread too, under its timeout.

Every refusal is logged with the peer's address only, and handed to ``GuardLimits.refused``
(the audit trail).
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from pynetdicom.transport import AssociationServer, ThreadedAssociationServer

__all__ = [
    "MAX_ASSOCIATE_RQ_BYTES",
    "GuardLimits",
    "GuardedAssociationServer",
    "guarded_server_class",
]

log = logging.getLogger(__name__)

# A-ASSOCIATE-RQ items are a few hundred bytes each; 64 KiB leaves room for many
# presentation contexts and user identity, and is far from a memory attack.
MAX_ASSOCIATE_RQ_BYTES = 64 * 1024
_ASSOCIATE_RQ = 0x01
_HEADER = struct.Struct(">BxL")  # PDU type, reserved, length (PS3.8 9.3.1)


class GuardLimits:
    """The caps a :class:`GuardedAssociationServer` applies; set before it serves."""

    def __init__(self, max_connections: int, max_per_address: int, timeout: float) -> None:
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self.timeout = timeout
        self.refused: Callable[[str, str], None] = lambda host, reason: None


class GuardedAssociationServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with the guard of the module docstring."""

    limits = GuardLimits(64, 16, 60.0)  # replaced per server by ``guard``

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept; with TLS wrap the socket without its handshake, which then runs in the
        connection's own thread under its timeout (pynetdicom's would run it here, in the
        accepting thread, where one slow client stalls every other)."""
        assert self.socket is not None  # bound by the constructor
        client, address = self.socket.accept()
        if self.ssl_context:
            client = self.ssl_context.wrap_socket(
                client, server_side=True, do_handshake_on_connect=False
            )
        return client, address

    def shutdown(self) -> None:
        """Stop serving and close the socket. (pynetdicom's own also takes the server off
        its AE's list, which holds only the servers ``AE.start_server`` made.)"""
        super(AssociationServer, self).shutdown()
        self.server_close()

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Admit the connection, or close it before a thread exists (socketserver hook)."""
        host = str(client_address[0]) if isinstance(client_address, tuple) else "?"
        with self._lock:
            total, here = sum(self._open.values()), self._open[host]
            if total >= self.limits.max_connections:
                reason = f"{total} DICOM connections open"
            elif here >= self.limits.max_per_address:
                reason = f"{here} DICOM connections open from this address"
            else:
                self._open[host] += 1
                return True
        log.warning("DICOM %s: connection refused (%s)", host, reason)
        self.limits.refused(host, reason)
        return False

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """The connection's thread: its timeout, its first PDU's size, then pynetdicom."""
        host = str(client_address[0]) if isinstance(client_address, tuple) else "?"
        try:
            if isinstance(request, socket.socket):
                request.settimeout(self.limits.timeout)
                if isinstance(request, ssl.SSLSocket):  # TLS: no peeking, but a handshake
                    acceptable = _handshake(request, host, self.limits.refused)
                else:
                    acceptable = _first_pdu_acceptable(request, host, self.limits.refused)
                if not acceptable:
                    self.shutdown_request(request)
                    return
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._open[host] -= 1
                if self._open[host] <= 0:
                    del self._open[host]


def _handshake(sock: ssl.SSLSocket, host: str, refused: Callable[[str, str], None]) -> bool:
    """The TLS handshake, under the socket's timeout; False (logged) when it fails."""
    try:
        sock.do_handshake()
    except (OSError, ssl.SSLError) as e:
        log.warning("DICOM %s: TLS handshake failed (%s); closed", host, type(e).__name__)
        refused(host, f"TLS handshake failed ({type(e).__name__})")
        return False
    return True


def _first_pdu_acceptable(
    sock: socket.socket, host: str, refused: Callable[[str, str], None]
) -> bool:
    """Peek the first PDU header; False (logged) for an over-long A-ASSOCIATE-RQ, or a
    peer that sends no header within the timeout or closes."""
    try:
        header = b""
        while len(header) < _HEADER.size:
            header = sock.recv(_HEADER.size, socket.MSG_PEEK | socket.MSG_WAITALL)
            if not header:
                return False
    except OSError:
        log.warning("DICOM %s: no PDU within the network timeout; closed", host)
        refused(host, "no PDU within the network timeout")
        return False
    pdu_type, length = _HEADER.unpack(header)
    if pdu_type == _ASSOCIATE_RQ and length > MAX_ASSOCIATE_RQ_BYTES:
        log.warning(
            "DICOM %s: A-ASSOCIATE-RQ of %d bytes announced (at most %d); closed unread",
            host,
            length,
            MAX_ASSOCIATE_RQ_BYTES,
        )
        refused(
            host, f"A-ASSOCIATE-RQ of {length} bytes announced (at most {MAX_ASSOCIATE_RQ_BYTES})"
        )
        return False
    return True


def guarded_server_class(limits: GuardLimits) -> type[GuardedAssociationServer]:
    """A server class carrying ``limits`` (``AE.make_server`` builds it by class)."""
    return type("GuardedServer", (GuardedAssociationServer,), {"limits": limits})
