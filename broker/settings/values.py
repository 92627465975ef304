"""How a setting's text (TOML, an environment variable, a flag) becomes its value.

Used by ``broker.settings.load_settings``; each function raises ``ValueError`` (or
``ConfigError`` naming the setting) for a value a person has to correct.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from broker.audit.syslog import SyslogTarget
from broker.common.netaddr import parse_network
from broker.dicom.profiles import LOOPBACK, UnknownCallers
from broker.errors import ConfigError
from broker.hl7.charsets import parse_sender_charsets
from broker.hl7.destinations import Destination
from broker.hl7.senders import SenderSet
from broker.store.keys import MIN_SECRET_BYTES
from broker.store.sentinel import sentinel_address

__all__ = [
    "ROLES",
    "UNKNOWN_CALLERS_VALUES",
    "check",
    "check_audit_settings",
    "check_listener_tls",
    "check_observability",
    "check_redis_settings",
    "check_scale_out",
    "check_tls_files",
    "coerce",
    "memory_bytes",
    "secret_file",
    "secret_in_settings_file",
    "unknown_callers",
]

# A Redis memory size: bytes, or a number with Redis's units (k = 1000, kb = 1024, m, mb, g, gb)
_MEMORY = re.compile(r"^(\d+)(b|k|kb|m|mb|g|gb)?$", re.IGNORECASE)
_MEMORY_UNITS = {
    "": 1, "b": 1, "k": 10**3, "kb": 2**10, "m": 10**6, "mb": 2**20, "g": 10**9, "gb": 2**30,
}  # fmt: skip


def memory_bytes(size: str) -> int | None:
    """A Redis memory size (``"512mb"``, ``"1gb"``, ``"1048576"``) in bytes; None if invalid."""
    match = _MEMORY.match(str(size).strip())
    if match is None:
        return None
    return int(match[1]) * _MEMORY_UNITS[(match[2] or "").lower()]


_MIN_MEMORY = 2**20  # below 1 MiB the mappings alone would not fit


UNKNOWN_CALLERS_VALUES = (
    'must be "loopback" (callers without a [scanners.<AE>] table are served from this host '
    "only), true (from any address) or false (never)"
)


def unknown_callers(raw: Any) -> UnknownCallers:
    """``dicom_allow_unknown_callers`` from TOML (true, false, "loopback") or text."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text == LOOPBACK:
        return LOOPBACK
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{str(raw)[:40]!r}: {UNKNOWN_CALLERS_VALUES}")


def coerce(name: str, raw: Any, target: Any) -> Any:
    """Turn a TOML, environment or flag value into the field's type."""
    if raw is None:
        return None
    kind = target if isinstance(target, type) else None
    text = str(raw).strip()
    try:
        if target == "UnknownCallers":
            return unknown_callers(raw)
        if target == "bool" or kind is bool:
            if isinstance(raw, bool):
                return raw
            if text.lower() in {"1", "true", "yes", "on"}:
                return True
            if text.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"{text!r} is not true/false")
        if target == "int" or kind is int:
            if isinstance(raw, bool):
                raise ValueError("expected a whole number")
            return int(raw)
        if target == "float" or kind is float:
            return float(raw)
        if target == "Path" or kind is Path:
            return Path(text)
        if target == "Path | None":
            return Path(text) if text else None
        if target == "tuple[str, ...]":
            items = raw if isinstance(raw, list | tuple) else text.split(",")
            return tuple(str(item).strip() for item in items if str(item).strip())
        if target == "Mapping[str, str]":
            return MappingProxyType(parse_sender_charsets(raw))
        if target == "Mapping[str, Any]":
            raise ValueError(
                "set in the settings file as [scanners.<AE title>] tables "
                "or [hl7_senders.<name>] tables"
            )
        if target == "str | None":
            return text or None
        return text
    except ValueError as e:
        raise ConfigError(name, f"invalid value: {e}") from e


def secret_file(variable: str, path: str) -> str:
    """The secret held by the file ``path`` names (one line; a final newline is dropped)."""
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(variable, f"cannot read the secret file {path}: {e}") from None


def secret_in_settings_file(config_file: Path, key: str, raw: Any) -> str:
    """``<secret>_file = "path"`` of the settings file: the secret that file holds (a
    relative path is taken from the settings file's directory)."""
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"{config_file}: {key}", "must be the path of a file")
    return secret_file(key, str(config_file.parent / Path(raw.strip()).expanduser()))


def check(name: str, ok: bool, message: str) -> None:
    """ConfigError naming setting ``name`` unless ``ok``."""
    if not ok:
        raise ConfigError(name, message)


def check_observability(settings: Any) -> None:
    """``log_format`` is text or json; ``metrics_allow`` lists addresses or networks."""
    check("log_format", settings.log_format in {"text", "json"}, 'must be "text" or "json"')
    for network in settings.metrics_allow:
        try:
            parse_network(network)
        except ValueError as e:
            raise ConfigError("metrics_allow", str(e)) from None


def check_tls_files(settings: Any, prefix: str, over_tls: bool, needs: str) -> None:
    """``<prefix>_tls_ca``, ``_cert`` and ``_key`` of a client connection: set only when it
    goes over TLS (``needs`` says how), the certificate and its key together."""
    for name in (f"{prefix}_tls_ca", f"{prefix}_tls_cert", f"{prefix}_tls_key"):
        check(name, getattr(settings, name) is None or over_tls, needs)
    cert, key = getattr(settings, f"{prefix}_tls_cert"), getattr(settings, f"{prefix}_tls_key")
    check(
        f"{prefix}_tls_key",
        (cert is None) == (key is None),
        f"{prefix}_tls_cert and {prefix}_tls_key are set together (or neither)",
    )


def check_listener_tls(s: Any) -> None:
    """A listener's certificate and key come together (files are read when it starts);
    a client CA needs TLS."""
    for face, what in (("hl7", "MLLP"), ("dicom", "DICOM"), ("admin", "HTTPS")):
        cert, key = getattr(s, f"{face}_tls_cert"), getattr(s, f"{face}_tls_key")
        check(
            f"{face}_tls_key",
            (cert is None) == (key is None),
            f"{face}_tls_cert and {face}_tls_key are set together (or neither)",
        )
        client_ca = getattr(s, f"{face}_tls_client_ca", None)
        check(
            f"{face}_tls_client_ca",
            client_ca is None or cert is not None,
            f"client certificates need {what} over TLS: set {face}_tls_cert and {face}_tls_key too",
        )


_APP_NAME = re.compile(r"^[!-~]{1,48}$")  # RFC 5424 APP-NAME: PRINTUSASCII, 1 to 48


def check_audit_settings(s: Any) -> None:
    """The ``audit_*`` settings of ``s`` (``broker.settings.Settings``): the stream's bound,
    and where and how the export goes; ConfigError names the setting."""

    check("audit_max_events", s.audit_max_events >= 100, "must be at least 100 records")
    check(
        "audit_syslog_app_name",
        bool(_APP_NAME.match(s.audit_syslog_app_name)),
        "must be 1 to 48 printable ASCII characters without spaces (RFC 5424 APP-NAME)",
    )
    target = None
    if s.audit_syslog_address:
        try:
            target = SyslogTarget.parse(s.audit_syslog_address)
        except ValueError as e:
            raise ConfigError("audit_syslog_address", str(e)) from None
    tls = target is not None and target.protocol == "tls"
    needs = 'is for an export over TLS: audit_syslog_address = "tls://host:6514"'
    check_tls_files(s, "audit_syslog", tls, needs)


_TABLES = (  # settings-file tables -> the setting holding them
    ("hl7_senders", "hl7_senders", "[hl7_senders.<name>]"),
    ("hl7_destinations", "hl7_destinations", "[hl7_destinations.<name>]"),
    ("scanners", "dicom_scanners", "[scanners.<AE title>]"),
)


def settings_tables(config_file: Path, data: dict[str, Any]) -> dict[str, Any]:
    """The named tables of a settings file (taken out of ``data``), by setting name."""
    values: dict[str, Any] = {}
    for table, setting, shape in _TABLES:
        found = data.pop(table, {})
        if not isinstance(found, dict):
            raise ConfigError(f"{config_file}: {table}", f"must be tables {shape}")
        if found:
            values[setting] = MappingProxyType(found)
    return values


def check_destinations(senders: SenderSet, destinations: Mapping[str, Destination]) -> None:
    """Each sender's ``destination`` names a ``[hl7_destinations.<name>]`` table."""
    for table in senders.senders:  # ConfigError: hl7_senders.<name>.<key>
        if table.destination and table.destination not in destinations:
            raise ConfigError(
                f"hl7_senders.{table.name}.destination",
                f"{table.destination!r} is not a [hl7_destinations.<name>] table",
            )


def check_redis_settings(s: Any) -> None:
    """The Redis to use: the embedded server's memory, ``redis_url`` or the sentinels (not
    both), TLS files only over TLS, the key secret's length."""
    size = memory_bytes(s.redis_max_memory)
    check(
        "redis_max_memory",
        size == 0 or (size is not None and size >= _MIN_MEMORY),
        "must be 0 (no limit) or a size of at least 1mb: bytes, or a number with a unit "
        "kb, mb or gb (Redis's units, e.g. 512mb or 2gb)",
    )
    if s.redis_url is not None:
        check(
            "redis_url",
            s.redis_url.split("://", 1)[0] in {"redis", "rediss", "unix"},
            "must start with redis://, rediss:// or unix://",
        )
    _check_sentinels(s)
    if s.redis_sentinels:  # TLS to the sentinels and the Redis they name: redis_tls_ca says so
        tls = s.redis_tls_ca is not None
        needs = "applies to a Redis reached over TLS: with redis_sentinels, set redis_tls_ca too"
    else:
        tls = s.redis_url is not None and s.redis_url.startswith("rediss://")
        needs = "applies to a Redis reached over TLS: redis_url must start with rediss://"
    check_tls_files(s, "redis", tls, needs)
    secret = s.redis_key_secret
    short = secret is not None and len(secret.encode("utf-8")) < MIN_SECRET_BYTES
    too_short = f"must be at least {MIN_SECRET_BYTES} characters (mwl-broker init writes one)"
    check("redis_key_secret", not short, too_short)


def _check_sentinels(s: Any) -> None:
    if not s.redis_sentinels:
        for name in ("redis_sentinel_master", "redis_sentinel_password"):
            check(name, not getattr(s, name), "applies only with redis_sentinels")
        return
    check(
        "redis_sentinels",
        s.redis_url is None,
        "and redis_url exclude each other: the sentinels name the Redis to use; set one",
    )
    for text in s.redis_sentinels:
        try:
            sentinel_address(text)
        except ValueError as e:
            raise ConfigError("redis_sentinels", f"{e}: each must be host:port") from None
    check(
        "redis_sentinel_master",
        bool(s.redis_sentinel_master.strip()) and " " not in s.redis_sentinel_master,
        "must name the service the sentinels monitor (sentinel monitor <name> ...)",
    )


# What one ``serve`` process may do (setting ``roles``): take HL7 (the MLLP listener), serve
# DICOM (MWL C-FIND, MPPS), run the admin console and API, send status back to the RIS.
ROLES: tuple[str, ...] = ("hl7", "dicom", "admin", "outbound")
_SHARED_REDIS = "set redis_url or redis_sentinels to the Redis the processes share"


def check_scale_out(s: Any) -> None:
    """``roles`` names known roles, each once; a process serving only some roles, or
    sharing its ports (``listen_reuse_port``), works with others on one Redis: never its
    own embedded one, where what it took would be invisible to the rest."""
    unknown = ", ".join(repr(role) for role in s.roles if role not in ROLES)
    check("roles", not unknown, f"unknown role {unknown}: each is one of {', '.join(ROLES)}")
    check("roles", bool(s.roles), "must name at least one role: " + ", ".join(ROLES))
    check("roles", len(set(s.roles)) == len(s.roles), "names a role twice")
    external = s.redis_url is not None or bool(s.redis_sentinels)
    check(
        "roles",
        external or set(s.roles) == set(ROLES),
        "a process with only some roles works beside others on one Redis: " + _SHARED_REDIS,
    )
    check(
        "listen_reuse_port",
        external or not s.listen_reuse_port,
        "processes that share their ports must share their data too: " + _SHARED_REDIS,
    )
