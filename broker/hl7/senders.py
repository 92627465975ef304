"""Who may send HL7 to the broker: the ``[hl7_senders.<name>]`` tables of the settings file.

MSH-3/MSH-4 are written by the sender itself, so they prove nothing: a sender is
known by the source address of its connection, and what its messages may call
themselves in MSH-3/MSH-4 is bound to that address::

    [hl7_senders.RIS]
    addresses = ["10.1.2.3", "10.1.8.0/24"]   # source addresses or networks (required)
    application = "RIS"                       # MSH-3 (HD-1) its messages must carry
    facility = "RADIOLOGY"                    # MSH-4 (HD-1); optional
    charset = "8859/1"                        # when its MSH-18 is empty; optional
    timezone = "Europe/Berlin"                # of its MSH-7 values without an offset
    tls_names = ["ris.hospital.example"]      # with MLLP over TLS and client certificates:
                                              # its certificate must carry one of these names
    destination = "RIS"                       # [hl7_destinations.<name>] its orders' status
                                              # goes back to (broker.hl7.destinations)

With no table, only loopback may connect (the README's first steps); a site lists
its senders to serve the network. A connection from an address no table lists is
closed at once, before a byte is read; a message whose MSH-3/MSH-4 is not what its
address's table says is answered AR at MSH-3 and stores nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from broker.common.netaddr import Network, parse_network, peer_ip
from broker.errors import ConfigError, HL7Error
from broker.hl7.charsets import charset_codec
from broker.hl7.codes import AckCode, ErrorCode
from broker.hl7.message import ParsedMessage

__all__ = ["HL7Sender", "SenderSet", "peer_address"]

_KEYS = frozenset(
    {"addresses", "application", "facility", "charset", "timezone", "tls_names", "destination"}
)


@dataclass(frozen=True)
class HL7Sender:
    """One configured sender: where it connects from and what it calls itself."""

    name: str
    networks: tuple[Network, ...]
    application: str = ""  # MSH-3 HD-1 required of its messages; "": not checked
    facility: str = ""  # MSH-4 HD-1; "": not checked
    charset: str = ""  # HL7 table 0211 name for messages without MSH-18
    timezone: str = ""  # IANA zone of MSH-7 values without an offset
    tls_names: frozenset[str] = frozenset()  # names its client certificate must carry one of
    destination: str = ""  # [hl7_destinations.<name>] of its orders' status; "": none

    def check_identity(self, application: str, facility: str) -> None:
        """AR at MSH-3 (or MSH-4) when the message names another sender than this one."""
        for field, expected, got in (
            ("MSH-3", self.application, application),
            ("MSH-4", self.facility, facility),
        ):
            if expected and got != expected:
                raise HL7Error(
                    AckCode.REJECT,
                    ErrorCode.APPLICATION_INTERNAL_ERROR,
                    field,
                    f"{field} is {got or '(empty)'}, but this connection's address belongs to "
                    f"sender {self.name}, whose messages carry {field} {expected}",
                )


@dataclass(frozen=True)
class SenderSet:
    """The configured senders; with none, loopback only."""

    senders: tuple[HL7Sender, ...] = ()

    @classmethod
    def parse(cls, tables: Mapping[str, Any]) -> SenderSet:
        """From the ``[hl7_senders.<name>]`` tables; ConfigError names the table and key."""
        return cls(tuple(_sender(name, table) for name, table in tables.items()))

    def sender_for(self, address: str) -> HL7Sender | None:
        """The sender whose addresses hold ``address`` (the most specific network wins)."""
        ip = peer_ip(address)
        if ip is None:
            return None
        best: tuple[int, HL7Sender] | None = None
        for sender in self.senders:
            for net in sender.networks:
                inside = ip.version == net.version and ip in net
                if inside and (best is None or net.prefixlen > best[0]):
                    best = (net.prefixlen, sender)
        return best[1] if best is not None else None

    def origin(self, peer: str) -> str:
        """The name of the sender a connection from ``peer`` (``host:port``) belongs to
        ("" for none: loopback without tables, a reprocess)."""
        sender = self.sender_for(peer_address(peer))
        return sender.name if sender is not None else ""

    def check_message(self, peer: str, msg: ParsedMessage) -> None:
        """AR at MSH-3/MSH-4 when ``msg`` names another sender than its connection's address
        belongs to (``peer`` as the MLLP server names it: ``host:port``, ``[v6]:port``)."""
        sender = self.sender_for(peer_address(peer))
        if sender is not None:
            separator = msg.encoding_characters[:1] or "^"
            sender.check_identity(
                msg.sending_application.split(separator, 1)[0].strip(),
                msg.sending_facility.split(separator, 1)[0].strip(),
            )

    def admits(self, address: str, certificate_names: tuple[str, ...] = ()) -> bool:
        """Whether a connection from ``address`` may be served; with TLS client
        certificates, ``certificate_names`` are the names the verified certificate carries
        (a sender with ``tls_names`` needs one of them)."""
        if not self.senders:
            ip = peer_ip(address)
            return ip is not None and ip.is_loopback
        sender = self.sender_for(address)
        if sender is None:
            return False
        return not sender.tls_names or bool(sender.tls_names & set(certificate_names))


def peer_address(peer: str) -> str:
    """The host of ``host:port`` or ``[v6]:port``; other peers ("reprocess of …") as they are."""
    if peer.startswith("["):
        return peer[1:].split("]", 1)[0]
    host, sep, port = peer.rpartition(":")
    return host if sep and port.isdigit() else peer


def _sender(name: str, table: Any) -> HL7Sender:
    where = f"hl7_senders.{name}"
    if not isinstance(table, Mapping):
        raise ConfigError(where, "must be a table: [hl7_senders.<name>] with addresses = [...]")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        known = ", ".join(sorted(_KEYS))
        raise ConfigError(f"{where}.{unknown[0]}", f"unknown key (known: {known})")
    addresses = table.get("addresses")
    if not isinstance(addresses, list) or not addresses:
        raise ConfigError(f"{where}.addresses", "required: a list of addresses or networks")
    networks = []
    for text in addresses:
        try:
            networks.append(parse_network(str(text)))
        except ValueError as e:
            raise ConfigError(f"{where}.addresses", str(e)) from None
    names = table.get("tls_names", [])
    if not isinstance(names, list):
        raise ConfigError(f"{where}.tls_names", "must be a list of names")
    values = {key: str(table.get(key, "")).strip() for key in _KEYS - {"addresses", "tls_names"}}
    if values["charset"] and charset_codec(values["charset"]) is None:
        bad = values["charset"]
        raise ConfigError(f"{where}.charset", f"{bad!r} is not an HL7 table 0211 name")
    tls_names = frozenset(str(n).strip().lower() for n in names if str(n).strip())
    return HL7Sender(name, tuple(networks), tls_names=tls_names, **values)
