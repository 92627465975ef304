"""Per-scanner profiles: who may connect, what each scanner sees, how it is answered.

A profile is chosen by the calling AE title of the association (PS3.8 A-ASSOCIATE
Calling AE Title), from the ``[scanners.<AE>]`` tables of the settings file; the
``[scanners."*"]`` table, if any, applies to every other caller ("unknown"
callers). ``ProfileSet.decide`` is the acceptance policy, checked once per
association, before any service (``broker.dicom.server``):

    caller with a table of its own        accepted from the table's addresses
                                          (required; ["any"] says any address)
    unknown caller, and
    dicom_allow_unknown_callers = false   rejected
      ... = "loopback" (the default)      accepted from loopback addresses only
                                          (127.0.0.0/8, ::1); a "*" table's
                                          addresses narrow that further (they must
                                          be loopback ones, or start-up fails)
      ... = true                          accepted from the "*" table's addresses
                                          (any address when it lists none)

So a broker with no tables serves only its own host; a site lists its scanners
(with their addresses) to serve the network::

    [scanners.CT1]
    addresses = ["10.1.2.3"]        # required: only from these source addresses or
                                    # networks ("10.1.2.0/24"); ["any"]: any address
    scope = "own"                   # "own" (stations = [its AE title]), "all", or a list
    unassigned = false              # also entries that name no station
    date_window = "today"           # when the query has no SPS Start Date: "today",
                                    # "-1..+1" (days around today), or "any"
    modality = "CT"                 # when the query has no Modality
    hidden_statuses = ["COMPLETED", "CANCELED", "DISCONTINUED"]
    max_answers = 200
    over_limit = "truncate"         # past max_answers: "truncate" (the first N, Success)
                                    # or "refuse" (no answer, A700 with a comment)
    sort = ["start", "accession"]   # answer order: start, accession, patient, modality
    character_set = "ISO_IR 100"    # how answers are encoded
    unrepresentable = "utf8"        # a value the set cannot carry: "utf8" (that answer
                                    # in ISO_IR 192), "replace" (?), "transliterate"
    mpps_update_others = false      # may also N-SET MPPS instances another AE title
                                    # created, for steps within its scope

Scope is enforced on every answer whatever the query holds: a query that asks
for another station's AE title, leaves it empty or sends ``*`` still sees only
the profile's stations; an MPPS N-CREATE may only start steps within it
(``broker.dicom.mpps``). Defaults (date window, modality) only narrow matching:
they never add return keys the query did not ask for.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from broker.common.netaddr import peer_ip
from broker.dicom.scanner import (
    ANY_ADDRESS,
    DEFAULT_PROFILE,
    ScannerProfile,
    loopback_network,
    profile_from_table,
)
from broker.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "ANY_ADDRESS",
    "DEFAULT_PROFILE",
    "LOOPBACK",
    "Decision",
    "ProfileSet",
    "Refusal",
    "ScannerProfile",
    "UnknownCallers",
    "log_caller_policy",
    "site_zone",
]

# dicom_allow_unknown_callers: False (never), "loopback" (from this host only), True
LOOPBACK: Literal["loopback"] = "loopback"
UnknownCallers = bool | Literal["loopback"]


class Refusal(Enum):
    """Why an association is not accepted (``Decision.refusal``); the value says it for a
    person, without the caller's data."""

    UNKNOWN_CALLER = "no [scanners.<AE>] table, and dicom_allow_unknown_callers = false"
    UNKNOWN_CALLER_NOT_LOOPBACK = (
        'no [scanners.<AE>] table, and dicom_allow_unknown_callers = "loopback" serves '
        "such callers from this host only"
    )
    UNKNOWN_CALLER_ADDRESS = 'no [scanners.<AE>] table, and [scanners."*"] addresses omit it'
    ADDRESS_NOT_LISTED = "its [scanners.<AE>] addresses omit the source address"
    CERTIFICATE_NAME = "its TLS client certificate does not carry the calling AE title"

    @property
    def unknown_caller(self) -> bool:
        """True when the calling AE title has no profile of its own."""
        return self is not Refusal.ADDRESS_NOT_LISTED


@dataclass(frozen=True)
class Decision:
    """The acceptance policy's answer for one association (``ProfileSet.decide``)."""

    profile: ScannerProfile | None  # the caller's profile when accepted
    refusal: Refusal | None = None  # why not, when rejected

    def __post_init__(self) -> None:
        if (self.profile is None) == (self.refusal is None):
            raise ValueError("a Decision has either a profile or a refusal")

    @property
    def accepted(self) -> bool:
        return self.refusal is None


class ProfileSet:
    """The profiles of a broker, looked up by calling AE title."""

    def __init__(
        self, profiles: Mapping[str, ScannerProfile], *, allow_unknown: UnknownCallers = LOOPBACK
    ) -> None:
        if allow_unknown not in (True, False, LOOPBACK):
            raise ValueError(f"allow_unknown must be True, False or {LOOPBACK!r}")
        self._profiles = dict(profiles)
        self.allow_unknown = allow_unknown

    def __repr__(self) -> str:
        return f"ProfileSet({sorted(self._profiles)}, allow_unknown={self.allow_unknown!r})"

    @classmethod
    def parse(
        cls, raw: Mapping[str, Any], *, allow_unknown: UnknownCallers = LOOPBACK
    ) -> ProfileSet:
        """Validate the ``[scanners]`` tables; errors name ``scanners.<AE>.<key>``."""
        profiles = {}
        for ae_title, table in raw.items():
            profiles[ae_title] = profile_from_table(str(ae_title), table)
        default = profiles.get("*")
        if allow_unknown == LOOPBACK and default is not None:
            outside = [str(n) for n in default.addresses if not loopback_network(n)]
            if outside:
                raise ConfigError(
                    "scanners.*.addresses",
                    f"{outside[0]} is not a loopback address, but callers without a table "
                    "of their own are served from this host only (dicom_allow_unknown_callers "
                    '= "loopback", the default): set dicom_allow_unknown_callers = true to '
                    "serve them from these addresses, or list those scanners in tables of "
                    "their own",
                )
        return cls(profiles, allow_unknown=allow_unknown)

    @property
    def known_callers(self) -> list[str]:
        """The AE titles with a profile of their own."""
        return sorted(t for t in self._profiles if t != "*")

    @property
    def profiles(self) -> list[ScannerProfile]:
        """Every profile of the site's tables, by AE title ("*" first when there is one)."""
        return [self._profiles[t] for t in sorted(self._profiles)]

    @property
    def from_any_address(self) -> list[str]:
        """The AE titles whose table says ``addresses = ["any"]``."""
        return sorted(
            t for t, p in self._profiles.items() if t != "*" and p.addresses == ANY_ADDRESS
        )

    def own_profile(self, ae_title: str) -> ScannerProfile | None:
        """The profile of the table named after ``ae_title`` (compared without padding)."""
        title = ae_title.strip()
        return None if title == "*" else self._profiles.get(title)

    def decide(self, calling_ae: str, address: str) -> Decision:
        """The acceptance policy: may this Calling AE Title (PS3.8 9.3.2) connect from this
        source address, and with which profile (module docstring)."""
        ip = peer_ip(address)
        own = self.own_profile(calling_ae)
        if own is not None:
            return Decision(own) if own._admits(ip) else Decision(None, Refusal.ADDRESS_NOT_LISTED)
        if self.allow_unknown is False:
            return Decision(None, Refusal.UNKNOWN_CALLER)
        if self.allow_unknown == LOOPBACK and not (ip is not None and ip.is_loopback):
            return Decision(None, Refusal.UNKNOWN_CALLER_NOT_LOOPBACK)
        default = self._profiles.get("*", DEFAULT_PROFILE)
        if not default._admits(ip):
            return Decision(None, Refusal.UNKNOWN_CALLER_ADDRESS)
        return Decision(default)

    def may_connect(self, address: str) -> bool:
        """Whether some calling AE title could be accepted from ``address`` (``decide``):
        when none could, the connection is closed as it is accepted, before a thread is
        started or a byte read (``broker.dicom.guard``)."""
        ip = peer_ip(address)
        if any(p._admits(ip) for t, p in self._profiles.items() if t != "*"):
            return True
        if self.allow_unknown is False:
            return False
        if self.allow_unknown == LOOPBACK and not (ip is not None and ip.is_loopback):
            return False
        return self._profiles.get("*", DEFAULT_PROFILE)._admits(ip)

    def for_caller(self, ae_title: str, address: str) -> ScannerProfile | None:
        """The caller's profile, or None when it may not connect (``decide``)."""
        return self.decide(ae_title, address).profile

    def regardless_of_address(self, ae_title: str) -> ScannerProfile | None:
        """The caller's profile if some source address would be accepted, else None (for
        ``mwl-broker explain`` without an address)."""
        own = self.own_profile(ae_title)
        if own is not None:
            return own
        return None if self.allow_unknown is False else self._profiles.get("*", DEFAULT_PROFILE)


def site_zone(name: str) -> dt.tzinfo | None:
    """The site's time zone (IANA name), None for the machine's local zone."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ConfigError("site_timezone", f"{name!r} is not an IANA time zone name") from e


def log_caller_policy(profiles: ProfileSet, host: str) -> None:
    """Say at start-up who the DICOM side serves when it is easy to get wrong."""
    listening = peer_ip(host)
    local_only = host == "localhost" or (listening is not None and listening.is_loopback)
    if profiles.allow_unknown == LOOPBACK and not profiles.known_callers and not local_only:
        log.warning(
            "DICOM: no [scanners.<AE title>] table, so only callers on this host (loopback) "
            "are served; list each scanner with its addresses to serve the network "
            '(README "Scanner profiles")'
        )
    if profiles.from_any_address:
        log.warning(
            'DICOM: [scanners] tables with addresses = ["any"], accepted from any address by '
            "AE title alone: %s",
            ", ".join(profiles.from_any_address),
        )
