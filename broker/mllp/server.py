"""Asyncio MLLP server: frames in, one handler call per message, ACK out.

Transport rules (HL7 Transport Specification: MLLP, Release 1 and Release 2;
HL7 v2.5.1 §2.9, original acknowledgment rules):

- every well-framed message gets exactly one framed response, written by this
  server; a handler only returns the ACK/NAK payload and never sees a socket;
- messages on one connection are handled one at a time, in the order they
  arrived, and each response goes out before the next message is handled
  (the sender waits for a message's ACK before it sends the next one);
- limits on every input: frame size, idle time, number of connections, in all
  and per source address; a source address the ``admit`` policy refuses (not a
  configured sender, ``broker.hl7.senders``) is closed before a byte is read;
- with TLS, the handshake runs in the connection's task (so it counts against
  the connection caps and has the idle timeout), then the policy sees the
  client certificate's names; every refusal, a failed handshake included, is
  logged (address only) and put on the audit trail (``broker.audit``).

Only public ``asyncio.start_server`` streams are used. No message content is
logged; the peer, sizes and MSH-10 (the message control id) are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable

from broker.audit.record import RefusalRecords
from broker.audit.writer import NO_AUDIT, AuditSink
from broker.common.metrics import MLLP_REFUSALS, BrokerMetrics
from broker.common.refusals import RefusalLog
from broker.mllp.connection import MAX_JUNK_BYTES, NOT_A_SENDER, MLLPConnection, control_id

__all__ = ["MAX_JUNK_BYTES", "Handler", "MLLPServer", "Rejecter", "control_id"]

log = logging.getLogger(__name__)

Handler = Callable[[bytes, str], Awaitable[bytes]]
"""``(payload, peer) -> ACK payload``; the server frames and writes it."""

Rejecter = Callable[[bytes, str, str], bytes | None]
"""``(message or its first bytes, reason, peer) -> NAK payload``, or None to send nothing."""


class MLLPServer:
    """An MLLP listener; see the module docstring for the transport rules."""

    def __init__(
        self,
        handler: Handler,
        rejecter: Rejecter,
        *,
        host: str,
        port: int,
        max_frame_bytes: int,
        idle_timeout: float,
        max_connections: int,
        admit: Callable[[str, tuple[str, ...]], bool] = lambda address, names: True,
        max_per_address: int | None = None,
        tls: ssl.SSLContext | None = None,
        audit: AuditSink = NO_AUDIT,
        metrics: BrokerMetrics | None = None,
        reuse_port: bool = False,
    ) -> None:
        if max_frame_bytes <= 0 or idle_timeout <= 0 or max_connections <= 0:
            raise ValueError("max_frame_bytes, idle_timeout and max_connections must be > 0")
        self.admit = admit  # (source address, its TLS certificate's names) -> may it connect
        self.max_per_address = max_per_address or max_connections
        self.tls = tls
        self.audit = RefusalRecords(audit, "hl7")  # refused connections, at a bounded rate
        self._refusal_log = RefusalLog(log, "MLLP")  # and their log lines
        m = metrics or BrokerMetrics()
        self.ingest_seconds = m.ingest_seconds  # frame received -> its ACK written
        self._refusals = {kind: m.mllp_refused(kind) for kind in MLLP_REFUSALS}
        self.handler = handler
        self.rejecter = rejecter
        self.max_frame_bytes = max_frame_bytes
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self._host = host
        self._port = port
        self._reuse_port = reuse_port  # SO_REUSEPORT: other processes may listen on the port
        self._server: asyncio.Server | None = None
        self._bound: tuple[str, int] | None = None
        self._connections: dict[asyncio.Task[None], MLLPConnection] = {}
        self.stopping = False

    @property
    def host(self) -> str:
        """The address actually bound (the configured host before ``start()``)."""
        return self._host if self._bound is None else self._bound[0]

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0); known from ``start()`` on."""
        if self._bound is None:
            raise RuntimeError("the MLLP server was not started")
        return self._bound[1]

    @property
    def listening(self) -> bool:
        """Whether it accepts connections: started and not stopping."""
        return self._server is not None and not self.stopping

    @property
    def connection_count(self) -> int:
        """Connections currently open."""
        return len(self._connections)

    async def start(self) -> None:
        """Bind and start accepting connections."""
        if self._server is not None:
            raise RuntimeError("the MLLP server was already started")
        self._server = await asyncio.start_server(
            self._accept, self._host, self._port, reuse_port=self._reuse_port or None
        )
        address = self._server.sockets[0].getsockname()
        self._bound = (str(address[0]), int(address[1]))
        log.info("MLLP listening on %s%s", _format_peer(address), " (TLS)" if self.tls else "")

    async def stop(self, drain_timeout: float) -> None:
        """Stop accepting, let in-flight messages finish and get their ACK, then close.

        A connection waiting for data is closed at once. A connection whose
        handler is running gets up to ``drain_timeout`` seconds to finish and
        write the response; messages it has received but not started are not
        handled (no ACK: the sender will resend them, HL7 v2.5.1 §2.9).
        Calling it again, or before ``start()``, returns at once.
        """
        if self.stopping or self._server is None:
            self.stopping = True
            return
        self.stopping = True
        self._server.close()  # stop accepting first, before any await
        log.info(
            "MLLP stopping: %d connection(s) open, draining up to %.1f s",
            len(self._connections),
            drain_timeout,
        )
        for task, conn in list(self._connections.items()):
            if not conn.busy:
                task.cancel()
        tasks = set(self._connections)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=drain_timeout)
            if late:
                log.warning("MLLP drain timeout: closing %d busy connection(s)", len(late))
                for task in late:
                    task.cancel()
                await asyncio.wait(late)
        await self._server.wait_closed()
        log.info("MLLP server stopped")

    def forget(self, conn: MLLPConnection) -> None:
        """Drop a closed connection from the count (called by the connection)."""
        if conn.task is not None:
            self._connections.pop(conn.task, None)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Admit or refuse a new connection; admitted ones get a task of their own."""
        address = writer.get_extra_info("peername")
        peer = _format_peer(address)
        host = str(address[0]) if isinstance(address, tuple) and address else peer
        refusal = self._refusal(host)
        if refusal is not None:
            self.refused(host, *refusal)
            writer.close()
            return
        if self.tls is not None:  # not a byte read until the handshake (MLLPConnection.secure)
            transport = writer.transport
            if isinstance(transport, asyncio.ReadTransport):
                transport.pause_reading()
        sock: socket.socket | None = writer.get_extra_info("socket")
        if sock is not None:
            # Nagle + delayed ACK can stall small request/response exchanges 40 ms.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = MLLPConnection(self, reader, writer, peer)
        conn.host = host
        task = asyncio.get_running_loop().create_task(conn.run(), name=f"mllp {peer}")
        self._connections[task] = conn
        conn.task = task
        log.info("MLLP %s: connected (%d open)", peer, len(self._connections))

    def refused(self, host: str, reason: str, kind: str = "other") -> None:
        """Say that a connection was refused (log, and audit unless the server stops), at a
        bounded rate per address (``broker.common.refusals``); count it under ``kind``
        (``broker.common.metrics.MLLP_REFUSALS``)."""
        self.count_refusal(kind)
        self._refusal_log.refused(host, f"refused ({reason})")
        if not self.stopping:
            self.audit.refused(host, reason)

    def count_refusal(self, kind: str) -> None:
        """Count a refused (or, not speaking MLLP, closed) connection under ``kind``."""
        self._refusals[kind if kind in self._refusals else "other"].inc()

    def _refusal(self, host: str) -> tuple[str, str] | None:
        """Why a connection from ``host`` is refused before a byte is read, and its class;
        None: it is not. With TLS the sender policy is asked after the handshake
        (``MLLPConnection.secure``)."""
        if self.stopping:
            return "stopping", "stopping"
        if self.tls is None and not self.admit(host, ()):
            return NOT_A_SENDER, "not_sender"
        if len(self._connections) >= self.max_connections:
            return f"{self.max_connections} connections open", "connection_limit"
        same = sum(1 for conn in self._connections.values() if conn.host == host)
        if same >= self.max_per_address:
            return f"{same} connections open from this address", "connection_limit"
        return None


def _format_peer(address: object) -> str:
    """``host:port`` (``[v6]:port`` for IPv6), or the raw value for other families."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)
