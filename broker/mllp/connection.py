"""One MLLP connection: read, unframe, hand each message to the handler in turn, write
its response; with TLS, the handshake and the sender policy first.

The rules are the listener's (``broker.mllp.server``, which owns the connections and
their caps); this is the per-connection half. It logs under the listener's logger
name, so an operator filters one name for everything MLLP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from typing import TYPE_CHECKING

from broker.common.tls import certificate_names
from broker.mllp.framing import FrameTooLarge, MLLPDecoder, frame

if TYPE_CHECKING:
    from broker.mllp.server import MLLPServer

__all__ = ["MAX_JUNK_BYTES", "NOT_A_SENDER", "MLLPConnection", "control_id"]

log = logging.getLogger("broker.mllp.server")

READ_CHUNK = 64 * 1024
LINGER_SECONDS = 5.0
# Bytes outside any frame tolerated since the last frame. Senders put a few CR,
# LF or NUL between frames; kilobytes of them mean the peer does not speak MLLP
# (an HTTP client, a port scanner) and is closed rather than kept idle.
MAX_JUNK_BYTES = 4096
_CONTROL_ID_MAX = 64
NOT_A_SENDER = "not a configured sender (address, or TLS certificate name): see [hl7_senders]"


class MLLPConnection:
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
        self.server.count_refusal("not_mllp")
        return True

    async def secure(self, context: ssl.SSLContext) -> bool:
        """The TLS handshake, under the idle timeout (30 s at most), then the sender policy
        with the client certificate's names; False (said) when either refuses."""
        server = self.server
        try:
            timeout = min(server.idle_timeout, 30.0)
            await self.writer.start_tls(context, ssl_handshake_timeout=timeout)
        except OSError as e:  # ssl.SSLError, a timeout, the peer gone
            server.refused(self.host, f"TLS handshake failed ({type(e).__name__})", "tls")
            return False
        if not server.admit(self.host, certificate_names(self.writer.get_extra_info("peercert"))):
            server.refused(self.host, NOT_A_SENDER, "not_sender")
            return False
        return True

    async def run(self) -> None:
        """Serve until EOF, idle timeout, an oversize frame, an error or stop()."""
        try:
            if self.server.tls is not None and not await self.secure(self.server.tls):
                return
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
        """Handle one message and write its response; False means close the connection.
        The time from here (the frame is whole) to the response written is measured."""
        self.busy = True
        started = time.perf_counter()
        try:
            response = await self._respond(payload)
            if response is None:
                log.warning("MLLP %s: no response to send, closing", self.peer)
                return False
            written = await self._write(response)
            self.handled += written
            if written:
                self.server.ingest_seconds.observe(time.perf_counter() - started)
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
