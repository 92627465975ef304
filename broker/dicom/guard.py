"""A guard in front of pynetdicom's association server: limits it does not apply itself.

pynetdicom (3.0.4) starts a thread for every accepted connection and trusts the length
field of an A-ASSOCIATE-RQ: a request announcing 4 GiB is read for as long as bytes come,
and ``maximum_associations`` is checked only once the request is decoded. This server
class, handed to ``AE.make_server``, adds before any of that (PS3.8 9.3.2: the
A-ASSOCIATE-RQ PDU is type 01H with a 4-byte length after a reserved byte):

- connections counted in all and per source address, refused (closed) before a thread
  is started when over their cap, and counted until their association has ended;
- a socket timeout set as the connection opens, so a silent peer cannot hold a thread;
- with TLS, the handshake in the connection's own thread, under the same deadline;
- the A-ASSOCIATE-RQ read whole in the connection's own thread, before pynetdicom
  starts, within ``dicom_network_timeout`` of the connection opening: a peer trickling
  it a byte at a time is closed at that deadline. A first PDU of another type is
  answered with an A-ABORT, one announcing more than 64 KiB with an A-ABORT unread
  (``broker.dicom.transport``, which then guards every later PDU).

Every refusal is logged with the peer's address only, and handed to ``GuardLimits.refused``
(the audit trail).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from pynetdicom.transport import AssociationServer, ThreadedAssociationServer

from broker.common.refusals import RefusalLog
from broker.dicom.transport import (
    GuardedRequestHandler,
    PduType,
    Refused,
    read_pdu,
    require_hooks,
    send_abort,
)

__all__ = [
    "GuardLimits",
    "GuardedAssociationServer",
    "guarded_server_class",
]

log = logging.getLogger(__name__)


class GuardLimits:
    """The caps a :class:`GuardedAssociationServer` applies; set before it serves."""

    def __init__(
        self,
        max_connections: int,
        max_per_address: int,
        timeout: float,
        admits: Callable[[str], bool] = lambda host: True,
    ) -> None:
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self.timeout = timeout
        # whether any caller could be accepted from an address (ProfileSet.may_connect):
        # when none could, the connection is closed as it is accepted
        self.admits = admits
        self.refused: Callable[[str, str], None] = lambda host, reason: None  # audit trail


class GuardedAssociationServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with the guard of the module docstring."""

    limits = GuardLimits(64, 16, 60.0)  # replaced per server by ``guard``
    reuse_port = False  # SO_REUSEPORT: other processes of this host may listen on the port
    # A flood of connections is refused by one thread, fast; a deeper listen queue keeps a
    # scanner's connection from being dropped meanwhile (socketserver's default is 5).
    request_queue_size = 128
    # Connection threads live as long as their association: stopping the server must
    # not wait for them (DicomServer.stop drains and aborts associations itself).
    daemon_threads = True
    block_on_close = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._refusals = RefusalLog(log, "DICOM")
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        """pynetdicom's bind, with SO_REUSEPORT first when asked: the kernel then spreads
        new connections over every process listening on the port."""
        if self.reuse_port:
            assert self.socket is not None
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

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
        host = _host(client_address)
        with self._lock:
            total, here = sum(self._open.values()), self._open[host]
            if not self.limits.admits(host):
                reason = "no scanner may connect from this address"
            elif total >= self.limits.max_connections:
                reason = f"{total} DICOM connections open"
            elif here >= self.limits.max_per_address:
                reason = f"{here} DICOM connections open from this address"
            else:
                self._open[host] += 1
                return True
        self._refusals.refused(host, f"connection refused ({reason})")
        self.limits.refused(host, reason)
        return False

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """The connection's thread: its A-ASSOCIATE-RQ, then pynetdicom's association,
        waited for; the connection counts until then."""
        host = _host(client_address)
        try:
            first = self._association_request(request, host)
            if first:
                GuardedRequestHandler(request, client_address, self, first, self.limits.timeout)
            else:
                self.shutdown_request(request)
        except Exception:
            self.handle_error(request, client_address)
            self.shutdown_request(request)
        finally:
            with self._lock:
                self._open[host] -= 1
                if self._open[host] <= 0:
                    del self._open[host]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log through logging (socketserver's prints a traceback to stderr)."""
        log.exception("DICOM %s: the connection failed", _host(client_address))

    def _association_request(self, sock: socket.socket, host: str) -> bytes:
        """The whole A-ASSOCIATE-RQ within the network timeout of now (after the TLS
        handshake, within the same time); b"" (logged) when there is none to serve."""
        deadline = time.monotonic() + self.limits.timeout
        try:
            if isinstance(sock, ssl.SSLSocket) and not _handshake(sock, host, deadline):
                self.limits.refused(host, "TLS handshake failed")
                return b""
            return read_pdu(sock, deadline, expected=PduType.ASSOCIATE_RQ)
        except Refused as refusal:
            closing = "closed" if refusal.reason is None else "aborted"
            log.warning("DICOM %s: %s; %s", host, refusal.why, closing)
            self.limits.refused(host, refusal.why)
            send_abort(sock, refusal.reason)
            return b""
        finally:
            sock.settimeout(self.limits.timeout)


def _host(client_address: Any) -> str:
    return str(client_address[0]) if isinstance(client_address, tuple) else "?"


def _handshake(sock: ssl.SSLSocket, host: str, deadline: float) -> bool:
    """The TLS handshake by ``deadline``; False (logged) when it fails."""
    try:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        sock.do_handshake()
    except (OSError, ssl.SSLError) as e:
        log.warning("DICOM %s: TLS handshake failed (%s); closed", host, type(e).__name__)
        return False
    return True


def guarded_server_class(
    limits: GuardLimits, *, reuse_port: bool = False
) -> type[GuardedAssociationServer]:
    """A server class carrying ``limits`` (``AE.make_server`` builds it by class)."""
    require_hooks()
    attributes = {"limits": limits, "reuse_port": reuse_port}
    return type("GuardedServer", (GuardedAssociationServer,), attributes)
