"""Who is calling: source addresses, the networks a profile lists, loggable AE titles.

Pure helpers for the acceptance policy (``broker.dicom.profiles.ProfileSet.decide``)
and for log lines. A profile's ``addresses`` are IP addresses or networks in CIDR
form (``10.1.2.3``, ``10.1.2.0/24``, ``fd00::/64``); host names are not resolved.
An IPv4 peer seen by a dual-stack socket as ``::ffff:a.b.c.d`` is the IPv4 address.
"""

from __future__ import annotations

import ipaddress
from typing import Any

__all__ = [
    "IPAddress",
    "Network",
    "caller_of",
    "calling_ae",
    "loggable_ae",
    "parse_network",
    "peer_ip",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_AE_TITLE_MAX = 16  # PS3.5 Table 6.2-1: an AE value is at most 16 characters


def parse_network(text: str) -> Network:
    """An address (a network of one) or a CIDR network; ValueError says what is wrong."""
    value = text.strip()
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as e:
        if "has host bits set" in str(e):
            wide = ipaddress.ip_network(value, strict=False)
            raise ValueError(f"{value!r} has host bits set: the network is {wide}") from None
        raise ValueError(
            f"{value!r} is not an IP address or network such as 10.1.2.3 or 10.1.2.0/24 "
            "(host names are not resolved)"
        ) from None


def peer_ip(address: str) -> IPAddress | None:
    """The peer's address as an IP address (IPv4-mapped IPv6 as IPv4); None if not one."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def loggable_ae(title: object) -> str:
    """An AE title as received, safe for a log line: printable ASCII only (anything else,
    such as a line break, is ``?``), without leading and trailing spaces, at most 16
    characters (more are cut, and ``...`` says so)."""
    text = str(title).strip()
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in text[:_AE_TITLE_MAX])
    return cleaned + ("..." if len(text) > _AE_TITLE_MAX else "")


def calling_ae(event: Any) -> str:
    """The calling AE title of a pynetdicom event's association, for log lines
    (``loggable_ae``); ``?`` when there is none."""
    try:
        return loggable_ae(event.assoc.requestor.ae_title)
    except AttributeError:
        return "?"


def caller_of(event: Any) -> tuple[str, str]:
    """The calling AE title and source address of a pynetdicom event's association, as
    received, for the acceptance policy."""
    try:
        requestor = event.assoc.requestor
        return str(requestor.ae_title), str(requestor.address)
    except AttributeError:
        return "", ""
