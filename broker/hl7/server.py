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
  configured sender, ``broker.hl7.senders``) is closed before a byte is read.

Only public ``asyncio.start_server`` streams are used. No message content is
logged; the peer, sizes and MSH-10 (the message control id) are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable

from broker.hl7.mllp import FrameTooLarge, MLLPDecoder, frame
from broker.tls import certificate_names

__all__ = ["Handler", "MLLPServer", "Rejecter", "control_id"]

log = logging.getLogger(__name__)

Handler = Callable[[bytes, str], Awaitable[bytes]]
"""``(payload, peer) -> ACK payload``; the server frames and writes it."""

Rejecter = Callable[[bytes, str, str], bytes | None]
"""``(message or its first bytes, reason, peer) -> NAK payload``, or None to send nothing."""

READ_CHUNK = 64 * 1024
LINGER_SECONDS = 5.0
# Bytes outside any frame tolerated since the last frame. Senders put a few CR,
# LF or NUL between frames; kilobytes of them mean the peer does not speak MLLP
# (an HTTP client, a port scanner) and is closed rather than kept idle.
MAX_JUNK_BYTES = 4096
_CONTROL_ID_MAX = 64


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
    ) -> None:
        if max_frame_bytes <= 0 or idle_timeout <= 0 or max_connections <= 0:
            raise ValueError("max_frame_bytes, idle_timeout and max_connections must be > 0")
        self.admit = admit  # (source address, its TLS certificate's names) -> may it connect
        self.max_per_address = max_per_address or max_connections
        self.tls = tls
        self.handler = handler
        self.rejecter = rejecter
        self.max_frame_bytes = max_frame_bytes
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._bound: tuple[str, int] | None = None
        self._connections: dict[asyncio.Task[None], _Connection] = {}
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
    def connection_count(self) -> int:
        """Connections currently open."""
        return len(self._connections)

    async def start(self) -> None:
        """Bind and start accepting connections."""
        if self._server is not None:
            raise RuntimeError("the MLLP server was already started")
        self._server = await asyncio.start_server(
            self._accept,
            self._host,
            self._port,
            ssl=self.tls,
            ssl_handshake_timeout=min(self.idle_timeout, 30.0) if self.tls else None,
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

    def forget(self, conn: _Connection) -> None:
        """Drop a closed connection from the count (called by the connection)."""
        if conn.task is not None:
            self._connections.pop(conn.task, None)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Admit or refuse a new connection; admitted ones get a task of their own."""
        address = writer.get_extra_info("peername")
        peer = _format_peer(address)
        host = str(address[0]) if isinstance(address, tuple) and address else peer
        refusal = self._refusal(host, certificate_names(writer.get_extra_info("peercert")))
        if refusal is not None:
            log.warning("MLLP %s: refused (%s)", peer, refusal)
            writer.close()
            return
        sock: socket.socket | None = writer.get_extra_info("socket")
        if sock is not None:
            # Nagle + delayed ACK can stall small request/response exchanges 40 ms.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Connection(self, reader, writer, peer)
        conn.host = host
        task = asyncio.get_running_loop().create_task(conn.run(), name=f"mllp {peer}")
        self._connections[task] = conn
        conn.task = task
        log.info("MLLP %s: connected (%d open)", peer, len(self._connections))

    def _refusal(self, host: str, names: tuple[str, ...]) -> str | None:
        """Why a connection from ``host`` is refused before a byte is read; None: it is not."""
        if self.stopping:
            return "stopping"
        if not self.admit(host, names):
            return "not a configured sender (address, or TLS certificate name): see [hl7_senders]"
        if len(self._connections) >= self.max_connections:
            return f"{self.max_connections} connections open"
        same = sum(1 for conn in self._connections.values() if conn.host == host)
        if same >= self.max_per_address:
            return f"{same} connections open from this address"
        return None


class _Connection:
    """One peer: read, decode, handle one message at a time, write responses."""

    def __init__(
        self,
        server: MLLPServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.host = peer  # the source address alone (set by the server)
        self.decoder = MLLPDecoder(server.max_frame_bytes)
        self.busy = False
        self.handled = 0
        self.task: asyncio.Task[None] | None = None
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + server.idle_timeout
        self.junk_mark = 0  # decoder.discarded_bytes when the last frame arrived

    def _not_mllp(self) -> bool:
        """Whether the peer sent more bytes outside any frame than MLLP senders do."""
        junk = self.decoder.discarded_bytes - self.junk_mark
        if junk <= MAX_JUNK_BYTES or self.decoder.has_partial_frame:
            return False
        log.warning("MLLP %s: %d bytes outside any frame, not MLLP; closing", self.peer, junk)
        return True

    async def run(self) -> None:
        """Serve until EOF, idle timeout, an oversize frame, an error or stop()."""
        try:
            await self._serve()
        except asyncio.CancelledError:
            log.info("MLLP %s: closed by shutdown", self.peer)
        except Exception:
            log.exception("MLLP %s: connection failed", self.peer)
        finally:
            await self._close()

    async def _serve(self) -> None:
        pending: deque[bytes] = deque()
        while True:
            if not pending:
                if self.server.stopping:
                    return
                chunk = await self._read()
                if chunk is None:
                    return
                try:
                    frames = self.decoder.feed(chunk)
                except FrameTooLarge as exc:
                    await self._oversize(exc)
                    return
                if frames:
                    self.junk_mark = self.decoder.discarded_bytes
                elif self._not_mllp():
                    return
                pending.extend(frames)
                continue
            if not await self._handle(pending.popleft()) or self.server.stopping:
                return

    async def _read(self) -> bytes | None:
        """Next chunk from the peer, or None on EOF, idle timeout or a socket error."""
        try:
            async with asyncio.timeout_at(self.deadline):
                chunk = await self.reader.read(READ_CHUNK)
        except TimeoutError:
            log.info(
                "MLLP %s: no complete frame for %.1f s, closing (%d bytes buffered)",
                self.peer,
                self.server.idle_timeout,
                self.decoder.buffered_bytes,
            )
            return None
        except ConnectionError as exc:
            log.info("MLLP %s: connection lost: %s", self.peer, exc)
            return None
        if chunk:
            return chunk
        if self.decoder.has_partial_frame:
            log.info(
                "MLLP %s: peer closed mid-frame, %d bytes dropped unhandled",
                self.peer,
                self.decoder.buffered_bytes,
            )
        return None

    async def _oversize(self, exc: FrameTooLarge) -> None:
        """Answer the complete messages before it, NAK the oversize frame, then close."""
        for message in exc.messages:
            if not await self._handle(message) or self.server.stopping:
                return
        log.warning(
            "MLLP %s: MSH-10 %s: frame exceeds %d bytes, rejecting and closing",
            self.peer,
            control_id(exc.prefix),
            self.server.max_frame_bytes,
        )
        self.busy = True
        try:
            nak = self._reject(exc.prefix, "frame too large")
            if nak is not None and await self._write(nak):
                await self._linger()
        finally:
            self.busy = False

    async def _linger(self) -> None:
        """Half-close, then drop what the peer still sends, so the NAK is not lost.

        Closing a socket with unread input makes the kernel send RST, which can
        destroy the NAK before the peer reads it; read to EOF (bounded) first.
        """
        if not self.writer.can_write_eof():
            return
        with contextlib.suppress(ConnectionError, TimeoutError, OSError):
            self.writer.write_eof()
            async with asyncio.timeout(min(self.server.idle_timeout, LINGER_SECONDS)):
                while await self.reader.read(READ_CHUNK):
                    pass

    async def _handle(self, payload: bytes) -> bool:
        """Handle one message and write its response; False means close the connection."""
        self.busy = True
        try:
            response = await self._respond(payload)
            if response is None:
                log.warning("MLLP %s: no response to send, closing", self.peer)
                return False
            written = await self._write(response)
            self.handled += written
            return written
        finally:
            self.busy = False
            self.deadline = self.loop.time() + self.server.idle_timeout

    async def _respond(self, payload: bytes) -> bytes | None:
        """The framed response: the handler's, or the rejecter's if the handler fails."""
        started = time.perf_counter()
        try:
            response = frame(await self.server.handler(payload, self.peer))
        except Exception:
            log.exception(
                "MLLP %s: MSH-10 %s: handler failed (%d bytes)",
                self.peer,
                control_id(payload),
                len(payload),
            )
            return self._reject(payload, "internal error")
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "MLLP %s: MSH-10 %s: %d bytes in, %d out, %.2f ms",
                self.peer,
                control_id(payload),
                len(payload),
                len(response),
                (time.perf_counter() - started) * 1000,
            )
        return response

    def _reject(self, raw: bytes, reason: str) -> bytes | None:
        """The framed NAK from the rejecter, or None (rejecter declined or failed)."""
        try:
            nak = self.server.rejecter(raw, reason, self.peer)
            return None if nak is None else frame(nak)
        except Exception:
            log.exception("MLLP %s: rejecter failed (%s)", self.peer, reason)
            return None

    async def _write(self, data: bytes) -> bool:
        """Write and flush; a peer that does not read within idle_timeout is dropped."""
        try:
            self.writer.write(data)
            if self.writer.transport.get_write_buffer_size() == 0:
                await self.writer.drain()  # returns at once; raises if the peer is gone
            else:
                async with asyncio.timeout(self.server.idle_timeout):
                    await self.writer.drain()
        except (ConnectionError, TimeoutError) as exc:
            log.info("MLLP %s: response not delivered: %r", self.peer, exc)
            return False
        return True

    async def _close(self) -> None:
        try:
            self.writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(self.server.idle_timeout):
                    await self.writer.wait_closed()
        finally:
            # Free the slot before saying so, even if cancelled while closing.
            self.server.forget(self)
            log.info(
                "MLLP %s: closed after %d message(s), %d junk bytes",
                self.peer,
                self.handled,
                self.decoder.discarded_bytes,
            )


def control_id(payload: bytes) -> str:
    """MSH-10 (message control id) for logs, or "-" (HL7 v2.5.1 §2.15.9.10).

    MSH-1 is the field separator itself, so MSH-n is field ``n - 1`` after
    splitting the MSH segment on it. Only printable ASCII is kept: the value
    goes into log lines and must not be able to forge one.
    """
    if not payload.startswith(b"MSH") or len(payload) < 4:
        return "-"
    segment = payload[:4096].split(b"\r", 1)[0]
    fields = segment.split(payload[3:4])
    if len(fields) < 10 or not fields[9]:
        return "-"
    text = fields[9][:_CONTROL_ID_MAX].decode("ascii", errors="replace")
    return "".join(c if c.isprintable() and c.isascii() else "?" for c in text)


def _format_peer(address: object) -> str:
    """``host:port`` (``[v6]:port`` for IPv6), or the raw value for other families."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)
