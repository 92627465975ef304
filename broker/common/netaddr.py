"""IP addresses and networks as the broker's access rules read them (pure).

Used by the MLLP senders (``broker.hl7.senders``) and the DICOM acceptance policy
(``broker.dicom.profiles``) alike: addresses or CIDR networks (``10.1.2.3``,
``10.1.2.0/24``, ``fd00::/64``), host names never resolved, and an IPv4 peer seen by a
dual-stack socket as ``::ffff:a.b.c.d`` read as the IPv4 address.
"""

from __future__ import annotations

import ipaddress

__all__ = ["IPAddress", "Network", "parse_network", "peer_ip"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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
