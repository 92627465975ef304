"""Where procedure status goes back to: the ``[hl7_destinations.<name>]`` tables.

A destination is an HL7 receiver the broker connects to over MLLP (a RIS, an
interface engine) to send its outbound status messages (IHE RAD TF-2: the Order
Filler's procedure status to the Order Placer)::

    [hl7_destinations.RIS]
    host = "ris.hospital.example"   # required
    port = 2576                     # required
    tls_ca = "/etc/mwl/ris-ca.pem"  # MLLP over TLS: the CA that signed the receiver's certificate
    tls_cert = "/etc/mwl/me.pem"    # a client certificate for the receiver (with tls_key)
    tls_key = "/etc/mwl/me.key"
    connect_timeout = 10            # seconds to connect
    ack_timeout = 30                # seconds to wait for the ACK of one message
    retry_first = 1                 # seconds before the first retry, doubled up to retry_max
    retry_max = 300
    max_queued = 10000              # events waiting; beyond, new ones are parked (README)

Which destination an order's status goes to is said by the sender the order came
from: ``destination = "RIS"`` in its ``[hl7_senders.<name>]`` table
(``broker.hl7.senders``). The destination's name is part of Redis key names
(``{p}:out:<name>:queue``): letters, digits, ``-``, ``_`` and ``.`` only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.errors import ConfigError

__all__ = ["Destination", "parse_destinations"]

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_REQUIRED = ("host", "port")
_NUMBERS = {
    "connect_timeout": 10.0,
    "ack_timeout": 30.0,
    "retry_first": 1.0,
    "retry_max": 300.0,
}
_KEYS = frozenset({*_REQUIRED, *_NUMBERS, "tls_ca", "tls_cert", "tls_key", "max_queued"})


@dataclass(frozen=True)
class Destination:
    """One configured receiver of outbound status messages."""

    name: str
    host: str
    port: int
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    connect_timeout: float = 10.0
    ack_timeout: float = 30.0
    retry_first: float = 1.0
    retry_max: float = 300.0
    max_queued: int = 10_000

    @property
    def over_tls(self) -> bool:
        return self.tls_ca is not None or self.tls_cert is not None

    def backoff(self, attempts: int) -> float:
        """Seconds to wait before attempt ``attempts + 1`` (``attempts`` >= 1 failed)."""
        return float(min(self.retry_max, self.retry_first * 2 ** min(attempts - 1, 30)))


def parse_destinations(tables: Mapping[str, Any]) -> dict[str, Destination]:
    """The ``[hl7_destinations.<name>]`` tables; ConfigError names the table and key."""
    return {name: _destination(name, table) for name, table in tables.items()}


def _destination(name: str, table: Any) -> Destination:
    where = f"hl7_destinations.{name}"
    if not _NAME.fullmatch(name):
        raise ConfigError(where, "a destination's name is letters, digits, '-', '_' and '.'")
    if not isinstance(table, Mapping):
        raise ConfigError(where, "must be a table: [hl7_destinations.<name>] with host and port")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(_KEYS))})"
        )
    host = str(table.get("host", "")).strip()
    if not host:
        raise ConfigError(f"{where}.host", "required: the receiver's host name or address")
    port = table.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ConfigError(f"{where}.port", "required: a TCP port from 1 to 65535")
    numbers = {key: _positive(f"{where}.{key}", table.get(key, d)) for key, d in _NUMBERS.items()}
    if numbers["retry_max"] < numbers["retry_first"]:
        raise ConfigError(f"{where}.retry_max", "must be at least retry_first")
    bound = table.get("max_queued", 10_000)
    if not isinstance(bound, int) or isinstance(bound, bool) or bound < 1:
        raise ConfigError(f"{where}.max_queued", "must be a whole number of at least 1")
    files = {key: _path(table.get(key)) for key in ("tls_ca", "tls_cert", "tls_key")}
    if (files["tls_cert"] is None) != (files["tls_key"] is None):
        raise ConfigError(f"{where}.tls_key", "tls_cert and tls_key are set together (or neither)")
    for key, path in files.items():
        if path is not None and not path.is_file():
            raise ConfigError(f"{where}.{key}", f"{path} is not a readable file")
    return Destination(
        name, host, port, files["tls_ca"], files["tls_cert"], files["tls_key"],
        numbers["connect_timeout"], numbers["ack_timeout"], numbers["retry_first"],
        numbers["retry_max"], bound,
    )  # fmt: skip


def _positive(where: str, raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
        raise ConfigError(where, "must be a number of seconds above 0")
    return float(raw)


def _path(raw: Any) -> Path | None:
    text = str(raw).strip() if raw is not None else ""
    return Path(text) if text else None
