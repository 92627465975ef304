"""One scanner's profile (``[scanners.<AE>]``): what it may see and how it is answered.

``profile_from_table`` reads one table of the settings file into a ``ScannerProfile``
and names the setting of any bad value (``ConfigError``); ``broker.dicom.profiles``
holds the set of profiles and the acceptance policy, and documents every key.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydicom.charset import python_encoding

from broker.common.netaddr import IPAddress, Network, parse_network, peer_ip
from broker.errors import ConfigError

__all__ = [
    "ANY_ADDRESS",
    "DEFAULT_PROFILE",
    "SORT_KEYS",
    "ScannerProfile",
    "loopback_network",
    "profile_from_table",
]

_KEYS = (
    "addresses", "scope", "unassigned", "date_window", "modality", "hidden_statuses",
    "max_answers", "over_limit", "sort", "character_set", "unrepresentable",
    "mpps_update_others",
)  # fmt: skip
_WINDOW_RE = re.compile(r"([+-]?\d{1,3})\.\.([+-]?\d{1,3})")
SORT_KEYS = ("start", "accession", "patient", "modality")
_POLICIES = ("utf8", "replace", "transliterate")
_STATUSES = frozenset(
    {"SCHEDULED", "ARRIVED", "READY", "STARTED", "DEPARTED", "CANCELED", "DISCONTINUED",
     "COMPLETED"}
)  # fmt: skip


@dataclass(frozen=True)
class ScannerProfile:
    """What one calling AE title may see and how it is answered (module docstring)."""

    ae_title: str  # "*": the profile of callers without one of their own
    addresses: tuple[Network, ...] = ()  # empty: any source address
    stations: frozenset[str] | None = None  # None: every station
    unassigned: bool = True  # entries naming no station (only when stations is set)
    date_window: tuple[int, int] | None = None  # days around today; None: no default
    modality: str | None = None
    hidden_statuses: frozenset[str] | None = None  # None: the broker's setting
    max_answers: int | None = None  # None: the broker's setting
    refuse_over_limit: bool = False
    sort: tuple[str, ...] = ()
    character_set: str | None = None  # None: the broker's setting
    unrepresentable: str = "utf8"
    mpps_update_others: bool = False  # may N-SET MPPS instances other AE titles created

    def allows_address(self, address: str) -> bool:
        """Whether the profile's ``addresses`` (IPs or CIDR networks) admit ``address``."""
        return self._admits(peer_ip(address))

    def _admits(self, ip: IPAddress | None) -> bool:
        if not self.addresses:
            return True
        return ip is not None and any(ip in network for network in self.addresses)

    def sees_station(self, stations: list[str]) -> bool:
        """Whether an entry with these Scheduled Station AE Titles is in scope."""
        if self.stations is None:
            return True
        if not any(s.strip() for s in stations):
            return self.unassigned
        return any(s.strip() in self.stations for s in stations)

    def window(self, today: dt.date) -> tuple[str, str] | None:
        """The default SPS Start Date range ``(from, to)`` as DICOM DA, or None."""
        if self.date_window is None:
            return None
        low, high = self.date_window
        return (
            (today + dt.timedelta(days=low)).strftime("%Y%m%d"),
            (today + dt.timedelta(days=high)).strftime("%Y%m%d"),
        )


DEFAULT_PROFILE = ScannerProfile("*")
# ``addresses = ["any"]``: every IPv4 and IPv6 source, said on purpose.
ANY_ADDRESS: tuple[Network, ...] = (
    ipaddress.ip_network("0.0.0.0/0"),
    ipaddress.ip_network("::/0"),
)


def profile_from_table(ae_title: str, raw: object) -> ScannerProfile:
    where = f"scanners.{ae_title}"
    table = _table(where, ae_title, raw)
    stations = _stations(where, ae_title, table)
    max_answers = table.get("max_answers")
    if max_answers is not None and (not isinstance(max_answers, int) or max_answers < 1):
        raise ConfigError(f"{where}.max_answers", "must be a whole number of at least 1")
    over = table.get("over_limit", "truncate")
    if over not in ("truncate", "refuse"):
        raise ConfigError(f"{where}.over_limit", 'must be "truncate" or "refuse"')
    sort = tuple(_text_list(where, table, "sort"))
    if any(k not in SORT_KEYS for k in sort):
        raise ConfigError(f"{where}.sort", f"keys are {', '.join(SORT_KEYS)}")
    charset = _character_set(where, table)
    policy = table.get("unrepresentable", "utf8")
    if policy not in _POLICIES:
        raise ConfigError(f"{where}.unrepresentable", f"must be one of {', '.join(_POLICIES)}")
    hidden_set = _hidden_statuses(where, table)
    unassigned = table.get("unassigned", stations is None)
    if not isinstance(unassigned, bool):
        raise ConfigError(f"{where}.unassigned", "must be true or false")
    modality = table.get("modality")
    if modality is not None and (not isinstance(modality, str) or not modality.strip()):
        raise ConfigError(f"{where}.modality", "must be a modality code such as CT")
    update_others = table.get("mpps_update_others", False)
    if not isinstance(update_others, bool):
        raise ConfigError(f"{where}.mpps_update_others", "must be true or false")
    return ScannerProfile(
        ae_title=ae_title,
        addresses=_addresses(where, ae_title, table),
        stations=stations,
        unassigned=unassigned,
        date_window=_window(where, table.get("date_window", "any")),
        modality=modality.strip().upper() if modality else None,
        hidden_statuses=hidden_set,
        max_answers=max_answers,
        refuse_over_limit=over == "refuse",
        sort=sort,
        character_set=charset,
        unrepresentable=policy,
        mpps_update_others=update_others,
    )


def _table(where: str, ae_title: str, table: object) -> Mapping[str, Any]:
    """The ``[scanners.<AE>]`` table, once its name and keys are known good."""
    if not isinstance(table, Mapping):
        raise ConfigError(where, "must be a table of profile settings")
    if ae_title != "*" and not (0 < len(ae_title) <= 16 and ae_title.isprintable()):
        raise ConfigError(where, "the table name must be a calling AE title (1-16 characters)")
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", f"unknown setting; known: {', '.join(_KEYS)}")
    return table


def _text_list(where: str, table: Mapping[str, Any], key: str) -> list[str]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}.{key}", "must be a list of text values")
    return [v.strip() for v in value]


def _addresses(where: str, ae_title: str, table: Mapping[str, Any]) -> tuple[Network, ...]:
    """The ``addresses`` list: IP addresses or CIDR networks, or ``"any"``.

    A scanner's own table must say where it connects from: an AE title is typed by anyone
    at any device, so a table without addresses would hand that title's worklist (and its
    MPPS rights) to every host that knows it. ``"any"`` says so on purpose. The ``"*"``
    table may leave it out: its callers are held to ``dicom_allow_unknown_callers``."""
    texts = _text_list(where, table, "addresses")
    if ae_title != "*" and not texts:
        raise ConfigError(
            f"{where}.addresses",
            'required: the scanner\'s IP addresses or networks (["10.1.2.3"], '
            '["10.1.2.0/24"]), or ["any"] to accept this AE title from any address',
        )
    if "any" in (t.lower() for t in texts):
        if len(texts) > 1:
            raise ConfigError(f"{where}.addresses", '"any" cannot be combined with addresses')
        return ANY_ADDRESS
    networks = []
    for text in texts:
        try:
            networks.append(parse_network(text))
        except ValueError as e:
            raise ConfigError(f"{where}.addresses", str(e)) from None
    return tuple(networks)


def loopback_network(network: Network) -> bool:
    return network.network_address.is_loopback and network.broadcast_address.is_loopback


def _stations(where: str, ae_title: str, table: Mapping[str, Any]) -> frozenset[str] | None:
    """The stations the profile sees (``scope``); None: every station."""
    scope = table.get("scope", "all")
    if scope == "all":
        stations = None
    elif scope == "own":
        if ae_title == "*":
            raise ConfigError(f"{where}.scope", '"own" needs a profile named after an AE title')
        stations = frozenset({ae_title})
    else:
        stations = (
            frozenset(_text_list(where, table, "scope")) if isinstance(scope, list) else frozenset()
        )
        if not stations:
            raise ConfigError(f"{where}.scope", 'must be "own", "all" or a list of AE titles')
    return stations


def _character_set(where: str, table: Mapping[str, Any]) -> str | None:
    charset = table.get("character_set")
    if charset is not None and (not isinstance(charset, str) or charset not in python_encoding):
        raise ConfigError(
            f"{where}.character_set",
            "must be a DICOM Specific Character Set term, e.g. ISO_IR 192, ISO_IR 100, "
            "ISO 2022 IR 87",
        )
    return charset


def _hidden_statuses(where: str, table: Mapping[str, Any]) -> frozenset[str] | None:
    hidden = table.get("hidden_statuses")
    hidden_set = None
    if hidden is not None:
        hidden_set = frozenset(s.upper() for s in _text_list(where, table, "hidden_statuses"))
        if hidden_set - _STATUSES:
            raise ConfigError(f"{where}.hidden_statuses", f"statuses are {sorted(_STATUSES)}")
    return hidden_set


def _window(where: str, raw: object) -> tuple[int, int] | None:
    if raw == "any":
        return None
    if raw == "today":
        return (0, 0)
    found = _WINDOW_RE.fullmatch(str(raw).strip()) if isinstance(raw, str) else None
    if found is None or int(found[1]) > int(found[2]):
        raise ConfigError(
            f"{where}.date_window", 'must be "today", "any" or a day range such as "-1..+1"'
        )
    return int(found[1]), int(found[2])
