"""Blocking MLLP client, for ``mwl-broker send`` and our own tests.

``MLLPClient`` sends one message at a time and waits for its ACK (HL7 v2.5.1
§2.9, original acknowledgment rules). Reading files into messages
(``split_messages``, :mod:`broker.hl7.files`) and reading ACKs (``summarize_ack``,
:mod:`broker.hl7.ack_summary`) need no connection; they are importable from here too.
"""

from __future__ import annotations

import socket
import ssl
import time
from types import TracebackType

from broker.errors import BrokerError
from broker.hl7.ack_summary import AckSummary, summarize_ack
from broker.hl7.destinations import Destination
from broker.hl7.files import split_messages
from broker.mllp.framing import FrameTooLarge, MLLPDecoder, frame

__all__ = [
    "AckSummary",
    "MLLPClient",
    "MLLPClientError",
    "connect_destination",
    "split_messages",
    "summarize_ack",
]

MAX_RESPONSE_BYTES = 16 * 1024 * 1024


class MLLPClientError(BrokerError):
    """The peer could not be reached, or gave no usable response in time."""


class MLLPClient:
    """A blocking MLLP connection: ``send()`` one message, get its ACK payload back.

    ``timeout`` bounds connecting and each ``send()`` as a whole. Use as a
    context manager, or call ``close()``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float,
        *,
        connect_timeout: float | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.address = f"{host}:{port}"
        self.timeout = timeout
        try:
            sock = socket.create_connection((host, port), timeout=connect_timeout or timeout)
            if tls is not None:
                try:
                    sock = tls.wrap_socket(sock, server_hostname=host)
                except BaseException:
                    sock.close()
                    raise
        except (OSError, ssl.SSLError) as exc:
            raise MLLPClientError(f"cannot connect to {self.address}: {exc}") from exc
        self._sock = sock
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._decoder = MLLPDecoder(MAX_RESPONSE_BYTES)

    def __enter__(self) -> MLLPClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._sock.close()

    def send(self, message: bytes) -> bytes:
        """Send one message in an MLLP block and return the response payload (unframed).

        MLLP Release 1: one block out, one block back. Responses beyond the
        first in the same read cannot belong to this message and are dropped.
        """
        deadline = time.monotonic() + self.timeout
        try:
            self._sock.sendall(frame(message))
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                self._sock.settimeout(remaining)
                chunk = self._sock.recv(64 * 1024)
                if not chunk:
                    raise MLLPClientError(
                        f"{self.address} closed the connection without a response"
                    )
                responses = self._decoder.feed(chunk)
                if responses:
                    return responses[0]
        except TimeoutError as exc:
            raise MLLPClientError(
                f"no response from {self.address} within {self.timeout:g} s"
            ) from exc
        except FrameTooLarge as exc:
            raise MLLPClientError(
                f"response from {self.address} exceeds {MAX_RESPONSE_BYTES} bytes"
            ) from exc
        except OSError as exc:
            raise MLLPClientError(f"connection to {self.address} failed: {exc}") from exc


def connect_destination(destination: Destination) -> MLLPClient:
    """A connection to an ``[hl7_destinations.<name>]`` receiver (TLS when it has a CA or
    a client certificate: the receiver's certificate is verified, as BCP 195 says)."""
    d = destination
    tls = None
    if d.over_tls:
        tls = ssl.create_default_context(cafile=str(d.tls_ca) if d.tls_ca else None)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        if d.tls_cert is not None and d.tls_key is not None:
            tls.load_cert_chain(d.tls_cert, d.tls_key)
    return MLLPClient(d.host, d.port, d.ack_timeout, connect_timeout=d.connect_timeout, tls=tls)
