"""RFC 5424 syslog messages, and sending them over UDP, TCP or TLS.

A message (RFC 5424 §6): ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG``,
facility 10 (security/authorization), severity notice for a success and warning
for a refusal or failure, MSGID ``IHE+RFC-3881`` as IHE ATNA (ITI-20) asks, no
structured data, and the audit message as MSG: UTF-8 with its BOM (§6.4).

Transports, chosen by the address's scheme (``audit_syslog_address``):

    udp://host:port   RFC 5426, one datagram per message (port 514 if not given);
                      also a bare ``host:port``
    tcp://host:port   RFC 6587 octet counting: ``LENGTH SP MESSAGE`` (port 601)
    tls://host:port   RFC 5425: the same framing over TLS 1.2+ (port 6514); the server
                      certificate is verified (``audit_syslog_tls_ca``, else the system's
                      CAs) and a client certificate offered if one is configured
"""

from __future__ import annotations

import os
import select
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SyslogSender", "SyslogTarget", "client_context", "rfc5424"]

FACILITY = 10  # security/authorization messages (RFC 5424 Table 1)
NOTICE, WARNING = 5, 4
MSGID = "IHE+RFC-3881"
_BOM = b"\xef\xbb\xbf"
_DEFAULT_PORTS = {"udp": 514, "tcp": 601, "tls": 6514}
_UDP_MAX = 65_507  # largest UDP payload over IPv4


def _header_field(text: str, limit: int) -> str:
    """An RFC 5424 header field: printable US-ASCII without spaces, at most ``limit``
    characters, ``-`` (NILVALUE) when empty."""
    cleaned = "".join(c if "!" <= c <= "~" else "_" for c in text)[:limit]
    return cleaned or "-"


def rfc5424(
    body: bytes, *, timestamp: str, hostname: str, app_name: str, warning: bool = False
) -> bytes:
    """``body`` as one RFC 5424 message (``timestamp`` in RFC 3339 form, UTC)."""
    pri = FACILITY * 8 + (WARNING if warning else NOTICE)
    header = (
        f"<{pri}>1 {timestamp} {_header_field(hostname, 255)} {_header_field(app_name, 48)} "
        f"{os.getpid()} {MSGID} -"
    )
    return header.encode("ascii") + b" " + _BOM + body


@dataclass(frozen=True)
class SyslogTarget:
    """Where audit messages go, and how."""

    protocol: str  # "udp", "tcp" or "tls"
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> SyslogTarget:
        """``[udp|tcp|tls://]host[:port]`` (``[v6]:port`` for IPv6); ValueError says why."""
        scheme, sep, rest = text.strip().partition("://")
        if not sep:
            scheme, rest = "udp", text.strip()
        scheme = scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise ValueError(f"{scheme!r} is not udp, tcp or tls (as in tcp://host:601)")
        if rest.startswith("["):
            host, _, after = rest[1:].partition("]")
            port_text = after.removeprefix(":")
        else:
            host, _, port_text = rest.partition(":")
        if not host or "/" in rest:
            raise ValueError(f"{text.strip()!r} is not [udp|tcp|tls://]host[:port]")
        if not port_text:
            return cls(scheme, host, _DEFAULT_PORTS[scheme])
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{port_text!r} is not a port from 1 to 65535")
        return cls(scheme, host, int(port_text))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.protocol}://{host}:{self.port}"


def client_context(
    ca: Path | None = None, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """A TLS 1.2+ client context that verifies the collector (``ca``, else the system's
    CAs) and offers ``cert``/``key`` when given (RFC 5425 §5)."""
    context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


def _closed(sock: socket.socket) -> bool:
    """Whether the collector closed the connection (or sent something: it never should).
    RFC 6587 has no acknowledgements, so a message written after the collector went away
    would be lost unseen; this look before each write catches a collector that stopped."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class SyslogSender:
    """One connection to the collector, opened on first use and again after a failure.
    ``send`` raises ``OSError`` when the message could not be handed over."""

    def __init__(
        self, target: SyslogTarget, *, timeout: float, tls: ssl.SSLContext | None = None
    ) -> None:
        if target.protocol == "tls" and tls is None:
            tls = client_context()
        self.target = target
        self._timeout = timeout
        self._tls = tls
        self._sock: socket.socket | None = None

    def __repr__(self) -> str:
        return f"SyslogSender({str(self.target)!r})"

    def send(self, message: bytes) -> None:
        """Send one message (framed for TCP and TLS)."""
        if self._sock is not None and self.target.protocol != "udp" and _closed(self._sock):
            self.close()  # the collector hung up: a write would vanish into the void
        sock = self._sock or self._connect()
        try:
            if self.target.protocol == "udp":
                if len(message) > _UDP_MAX:
                    raise OSError(f"a {len(message)}-byte message does not fit a UDP datagram")
                sock.send(message)
            else:
                sock.sendall(str(len(message)).encode("ascii") + b" " + message)
        except OSError:
            self.close()
            raise

    def _connect(self) -> socket.socket:
        t = self.target
        if t.protocol == "udp":
            family = socket.AF_INET6 if ":" in t.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.settimeout(self._timeout)
            try:
                sock.connect((t.host, t.port))
            except OSError:
                sock.close()
                raise
        else:
            sock = socket.create_connection((t.host, t.port), timeout=self._timeout)
            if self._tls is not None:
                try:
                    sock = self._tls.wrap_socket(sock, server_hostname=t.host)
                except (OSError, ssl.SSLError):
                    sock.close()
                    raise
        self._sock = sock
        return sock

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
