"""The broker's audit trail as the composition root builds it: the writer, and the syslog
export when ``audit_syslog_address`` is set; started first and stopped last, so that
the broker's own start and stop are on the record too."""

from __future__ import annotations

import socket
import ssl
from typing import Any

import redis

from broker.audit.atna import AtnaSource
from broker.audit.events import AuditEvent, AuditType
from broker.audit.exporter import SyslogExporter
from broker.audit.syslog import SyslogSender, SyslogTarget, client_context
from broker.audit.writer import AuditWriter
from broker.errors import ConfigError
from broker.settings import Settings
from broker.store.keys import KeySchema

__all__ = ["AuditTrail", "build_exporter"]

_SEND_TIMEOUT = 10.0  # seconds to connect to the collector or hand it one message


def build_exporter(s: Settings, client: redis.Redis) -> SyslogExporter | None:
    """The syslog export as configured, or None; ConfigError names a TLS file it cannot use."""
    if not s.audit_syslog_address:
        return None
    target = SyslogTarget.parse(s.audit_syslog_address)
    context = None
    if target.protocol == "tls":
        try:
            context = client_context(
                s.audit_syslog_tls_ca, s.audit_syslog_tls_cert, s.audit_syslog_tls_key
            )
        except (OSError, ssl.SSLError) as e:
            setting = "audit_syslog_tls_cert" if s.audit_syslog_tls_cert else "audit_syslog_tls_ca"
            raise ConfigError(setting, f"cannot use it for the syslog export: {e}") from e
    sender = SyslogSender(target, timeout=_SEND_TIMEOUT, tls=context)
    source = AtnaSource(s.audit_syslog_app_name, s.ae_title, socket.gethostname())
    return SyslogExporter(client, KeySchema(s.redis_key_prefix), sender, source)


class AuditTrail:
    """The writer (the sink every part is given) and the optional export, in one piece."""

    def __init__(self, s: Settings, client: redis.Redis) -> None:
        self.writer = AuditWriter(
            client,
            KeySchema(s.redis_key_prefix).audit(),
            max_events=s.audit_max_events,
            log_phi=s.log_phi,
        )
        self.exporter = build_exporter(s, client)

    def __repr__(self) -> str:
        return f"AuditTrail(writer={self.writer!r}, exporter={self.exporter!r})"

    def start(self) -> None:
        self.writer.start()
        if self.exporter is not None:
            self.exporter.start()

    def started(self, **details: Any) -> None:
        """Record that the broker serves now (its endpoints as ``details``)."""
        self.writer.record(AuditEvent(AuditType.APPLICATION_START, details=details))

    def stop(self, timeout: float) -> None:
        """Record the stop, write what is queued (at most ``timeout`` s), stop the export."""
        self.writer.record(AuditEvent(AuditType.APPLICATION_STOP))
        self.writer.stop(timeout)
        if self.exporter is not None:
            self.exporter.stop(timeout)
