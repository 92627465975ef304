"""The parts of the application built from the settings, the same for every face.

The worklist store (its key secret checked, schema-1 keys migrated), the message
log, MPPS instances, the retention purge, how received bytes are decoded, and the
HL7 router's settings: ``serve`` (``broker.app``) and the one-off commands
(``broker.services.application``) build them here, so that a command works on the
very objects a running broker does.
"""

from __future__ import annotations

from types import MappingProxyType

import redis

from broker.audit.writer import NO_AUDIT, AuditSink
from broker.dicom.profiles import site_zone
from broker.hl7.message import MessageDecoder
from broker.services.routing import RouterConfig
from broker.settings import Settings
from broker.store.key_secret import key_schema
from broker.store.keys import KeySchema
from broker.store.mpps import MppsStore
from broker.store.msglog import MessageLog
from broker.store.outbound import OutboundRoutes
from broker.store.retention import Retention, RetentionPolicy
from broker.store.schema_version import ensure_key_schema
from broker.store.scripts import ScriptRunner
from broker.store.worklist import WorklistStore

__all__ = [
    "build_decoder",
    "build_message_log",
    "build_mpps_store",
    "build_retention",
    "build_store",
    "outbound_routes",
    "router_config",
]


def build_store(s: Settings, client: redis.Redis) -> WorklistStore:
    """The worklist store on ``client``, as configured. Its key secret (``broker.store.key_secret``)
    is checked against the Redis, whose schema-1 keys are migrated first if it has any
    (``broker.store.schema_version``)."""
    keys = key_schema(s)
    alias_ttl = round(s.patient_alias_days * 86_400)
    ensure_key_schema(client, keys, alias_ttl=alias_ttl)
    return WorklistStore(
        client,
        keys=keys,
        dedup_ttl_seconds=s.dedup_window_seconds,
        wait_replicas=s.redis_wait_replicas,
        entry_cache=s.dicom_entry_cache,
        alias_ttl_seconds=alias_ttl,
    )


def build_message_log(s: Settings, client: redis.Redis) -> MessageLog:
    """The message log on ``client``, with the configured retention."""
    return MessageLog(
        client,
        keys=KeySchema(s.redis_key_prefix),
        max_messages=s.message_log_max,
        retention_days=s.message_log_days,
        max_bytes=s.message_log_max_bytes,
        refused_prefix=s.message_log_refused_bytes,
        scripts=ScriptRunner(client, wait_replicas=s.redis_wait_replicas),
    )


def build_mpps_store(s: Settings, store: WorklistStore) -> MppsStore:
    """MPPS instances next to the worklist, with the configured event stream length."""
    return MppsStore(store, events_max=s.mpps_events_max, outbound=outbound_routes(s))


def outbound_routes(s: Settings) -> OutboundRoutes:
    """Which destination each sender's orders' status goes to (``broker.store.outbound``)."""
    bounds = {name: d.max_queued for name, d in s.destinations.items()}
    routes = {t.name: t.destination for t in s.senders.senders if t.destination}
    return OutboundRoutes(MappingProxyType(routes), MappingProxyType(bounds))


def build_retention(s: Settings, store: WorklistStore) -> Retention:
    """The purge, as configured (``serve`` runs it periodically, ``purge`` on demand)."""
    policy = RetentionPolicy(
        ended_days=s.retention_ended_days,
        stale_days=s.retention_stale_days,
        mpps_days=s.retention_mpps_days,
        zone=site_zone(s.site_timezone),
    )
    return Retention(store, policy)


def build_decoder(s: Settings) -> MessageDecoder:
    """How received bytes are decoded (charsets, MSH-7 zones): for intake, reprocessing and
    the mapping preview alike."""
    charsets, zones = dict(s.hl7_sender_charsets), dict(s.hl7_sender_timezones)
    for sender in s.senders.senders:  # by the MSH-3/MSH-4 they carry
        key = f"{sender.application}^{sender.facility}" if sender.facility else sender.application
        if key and sender.charset:
            charsets[key] = sender.charset
        if key and sender.timezone:
            zones[key] = sender.timezone
    return MessageDecoder(
        default_charset=s.hl7_default_charset,
        sender_charsets=charsets,
        sender_zones={k: z for k, v in zones.items() if (z := site_zone(v))},
        local_zone=site_zone(s.site_timezone),
    )


def router_config(s: Settings, audit: AuditSink = NO_AUDIT) -> RouterConfig:
    """The router's settings, as ``serve`` and ``messages reprocess`` both use them."""
    return RouterConfig(
        decoder=build_decoder(s),
        application=s.hl7_application,
        facility=s.hl7_facility,
        processing_ids=frozenset(s.hl7_processing_ids),
        versions=frozenset(s.hl7_versions),
        accepted_senders=frozenset(s.hl7_accepted_senders),
        senders=s.senders,
        max_clock_skew=s.hl7_max_clock_skew,
        audit=audit,
    )
