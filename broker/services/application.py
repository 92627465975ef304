"""The application: every use case of the broker on one Redis, for every face.

``broker.app.build_services`` builds one :class:`Services` per process: ``serve``
hands its parts to the MLLP listener (``intake``) and to the DICOM server (the
store), a one-off command (``broker.cli``) calls the service it is about, and the
admin console will call the same objects. Each part is built on first use, so a
command builds only what it needs: ``mapping history`` never touches the worklist
store, whose construction checks the key secret and migrates schema-1 keys
(``broker.services.parts.build_store``).

========================  ===================================================
``intake``                the HL7 router (``routing``; ``batching`` runs it)
``mappings``              check, preview, history, diff, publish, roll back, export
``messages``              the message log: find, show, dismiss
``reprocess``             a logged message through intake again
``worklist``              search, explain why a scanner (does not) see an order
``mpps``                  MPPS create, update, retrieve (DIMSE and DICOMweb alike)
``purge``                 the retention purge on demand
``importer``              DCMTK / Orthanc worklist folders
``keys``                  the Redis key schema, checked or migrated
``backup``                the data to a backup file, and a backup file restored
``audit_trail``           read the audit trail
``auth``                  console users, sessions and API tokens (who may do what)
``outbound``              the status queues for the RIS: list, show, retry
========================  ===================================================

Services return values and raise :class:`broker.errors.BrokerError` (or its
subclasses); they never print, and import no face.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property
from typing import Any

import redis

from broker.audit.writer import NO_AUDIT, AuditSink
from broker.common.clock import SYSTEM_CLOCK
from broker.common.metrics import BrokerMetrics
from broker.dicom.gate import BroadQueryGate
from broker.dicom.profiles import ProfileSet, site_zone
from broker.mapping.outbound_spec import OutboundSpec
from broker.services.audit_trail import AuditTrailService
from broker.services.auth import AuthService
from broker.services.backup import BackupService
from broker.services.broad_search import BroadSearches, WorkerSpec
from broker.services.dashboard import DashboardService
from broker.services.dispatch import Dispatcher, SitePolicy
from broker.services.entries import EntryService
from broker.services.importer import ImportService
from broker.services.keys import KeySchemaService
from broker.services.mappings import MappingService
from broker.services.messages import MessageService
from broker.services.mpps import MppsService
from broker.services.outbound import OutboundService
from broker.services.outbound_sender import Connect, OutboundSender
from broker.services.parts import (
    build_decoder,
    build_message_log,
    build_mpps_store,
    build_retention,
    build_store,
    outbound_routes,
    router_config,
)
from broker.services.purge import PurgeService
from broker.services.reprocess import ReprocessService
from broker.services.routing import HL7Router
from broker.services.worklist import WorklistService
from broker.services.worklist_counts import SharedWorklistCounts
from broker.settings import Settings
from broker.store.counts import Counts
from broker.store.entry_edits import EntryEdits
from broker.store.keys import KeySchema
from broker.store.mapping_live import LiveMappings
from broker.store.mapping_versions import MappingVersions
from broker.store.mpps import MppsStore
from broker.store.msglog import MessageLog
from broker.store.outbound import OutboundQueue
from broker.store.retention import Retention
from broker.store.scripts import ScriptRunner
from broker.store.sentinel import sentinel_recipe
from broker.store.users import UserStore
from broker.store.worklist import WorklistStore

__all__ = ["Services"]


class Services:
    """The use cases on ``client`` (see the module docstring); ``audit`` records what they
    change: the broker's audit trail in ``serve``, a command's own in the CLI."""

    def __init__(self, settings: Settings, client: redis.Redis, audit: AuditSink = NO_AUDIT):
        self.settings = settings
        self.client = client
        self.audit = audit

    def __repr__(self) -> str:
        return f"Services(prefix={self.settings.redis_key_prefix!r})"

    # -- parts -------------------------------------------------------------

    def _store(self) -> WorklistStore:
        """The store, for a service that builds it only when it gets that far."""
        return self.store

    @cached_property
    def store(self) -> WorklistStore:
        """The worklist store (key secret checked, schema-1 keys migrated first)."""
        return build_store(self.settings, self.client)

    @cached_property
    def message_log(self) -> MessageLog:
        return build_message_log(self.settings, self.client)

    @cached_property
    def mapping_versions(self) -> MappingVersions:
        keys = KeySchema(self.settings.redis_key_prefix)
        scripts = ScriptRunner(self.client, wait_replicas=self.settings.redis_wait_replicas)
        return MappingVersions(self.client, keys, audit=self.audit, scripts=scripts)

    @cached_property
    def live_mappings(self) -> LiveMappings:
        """The active mapping version (``load`` it; ``serve`` also ``start``s it)."""
        return LiveMappings(self.mapping_versions, self.settings.mappings_dir)

    @cached_property
    def dispatcher(self) -> Dispatcher:
        """How received bytes are decoded and dispatched, as intake does it."""
        s = self.settings
        site = SitePolicy(
            frozenset(s.hl7_processing_ids),
            frozenset(s.hl7_versions),
            frozenset(s.hl7_accepted_senders),
        )
        return Dispatcher(build_decoder(s), s.senders, site)

    @cached_property
    def mpps_store(self) -> MppsStore:
        """MPPS instances next to the worklist (what every MPPS face changes)."""
        return build_mpps_store(self.settings, self.store)

    @cached_property
    def profiles(self) -> ProfileSet:
        """The scanner profiles: one set for acceptance, C-FIND, MPPS and explain."""
        s = self.settings
        return ProfileSet.parse(s.dicom_scanners, allow_unknown=s.dicom_allow_unknown_callers)

    @cached_property
    def retention(self) -> Retention:
        return build_retention(self.settings, self.store)

    # -- use cases ---------------------------------------------------------

    @cached_property
    def intake(self) -> HL7Router:
        """The HL7 router on the live mappings, recording into the message log."""
        config = dataclasses.replace(router_config(self.settings, self.audit), metrics=self.metrics)
        live = self.live_mappings
        return HL7Router(self.store, live.current, config, recorder=self.message_log)

    @cached_property
    def mappings(self) -> MappingService:
        return MappingService(self.mapping_versions, self.settings.mappings_dir, self.dispatcher)

    @cached_property
    def messages(self) -> MessageService:
        return MessageService(self.message_log, self.audit, self._store)

    @cached_property
    def reprocess(self) -> ReprocessService:
        # The router's own refusals are not audited again: the reprocess record says it.
        config = router_config(self.settings)
        log, mappings = self.message_log, self.live_mappings
        return ReprocessService(log, self._store, mappings, config, self.audit)

    @cached_property
    def broad_queries(self) -> BroadQueryGate:
        """The one gate broad queries take turns in: C-FIND and DICOMweb searches."""
        s = self.settings
        return BroadQueryGate(
            s.dicom_broad_query_candidates, s.dicom_broad_queries, s.dicom_broad_query_wait
        )

    @cached_property
    def worklist(self) -> WorklistService:
        """Searches and explanations; a broad search takes turns in ``broad_queries`` and
        runs in ``broad_searches``."""
        gate, broad = self.broad_queries, self.broad_searches
        return WorklistService(self.store, gate=gate, broad=broad, **self.worklist_options())

    def worklist_options(self) -> dict[str, Any]:
        """The worklist service's arguments besides its store, gate and search process."""
        s = self.settings
        return {
            "profiles": self.profiles,
            "max_answers": s.dicom_max_answers,
            "hidden_statuses": frozenset(s.dicom_hidden_statuses),
            "pn_case_insensitive": s.dicom_pn_case_insensitive,
            "zone": site_zone(s.site_timezone),
            "profiled": bool(s.dicom_scanners),
            "max_candidates": s.dicom_max_candidates,
            "query_cpu_seconds": s.dicom_query_cpu_seconds,
        }

    @cached_property
    def broad_searches(self) -> BroadSearches:
        """The process that broad console and DICOMweb searches run in, started on their
        first use (``broker.services.broad_search``); ``close`` stops it."""
        s, keys = self.settings, self.store.keys
        assert keys.secret is not None  # the store is keyed
        connection = WorkerSpec.connection_of(self.client)
        options = self.worklist_options()
        spec = WorkerSpec(connection, keys.prefix, keys.secret, s.dicom_entry_cache,
                          WorklistService, options, sentinel_recipe(self.client))  # fmt: skip
        return BroadSearches(spec, timeout=max(30.0, 3 * s.dicom_query_cpu_seconds))

    def close(self) -> None:
        """Stop what runs beside the broker's process (the search process, if started)."""
        broad = self.__dict__.get("broad_searches")
        if broad is not None:
            broad.close()

    @cached_property
    def entries(self) -> EntryService:
        """One worklist entry read, edited, its status set or removed by hand (audited)."""
        store, routes = self.store, outbound_routes(self.settings)
        edits = EntryEdits(store.client, store.keys, store.scripts, outbound=routes)
        return EntryService(edits, self.audit)

    @cached_property
    def mpps(self) -> MppsService:
        """The MPPS state machine on ``mpps_store``: the DICOM server's N-CREATE/N-SET
        and the DICOMweb MPPS resources share it."""
        return MppsService(self.mpps_store, self.profiles, self.metrics)

    @cached_property
    def outbound_queues(self) -> dict[str, OutboundQueue]:
        """Each ``[hl7_destinations.<name>]``'s queue (``broker.store.outbound``)."""
        store = self.store
        return {name: OutboundQueue(store.client, store.keys, store.scripts, name)
                for name in self.settings.destinations}  # fmt: skip

    def outbound_senders(self, connect: Connect) -> list[OutboundSender]:
        """One sender per destination, on the live mapping set's outbound mapping; ``serve``
        runs them (``broker.services.outbound_sender``), ``connect`` opens MLLP links."""
        s, live = self.settings, self.live_mappings

        def mapping() -> OutboundSpec | None:
            return live.current().outbound

        return [OutboundSender(self.outbound_queues[name], d, mapping, connect,
                               application=s.hl7_application, facility=s.hl7_facility,
                               metrics=self.metrics.outbound)
                for name, d in s.destinations.items()]  # fmt: skip

    @cached_property
    def outbound(self) -> OutboundService:
        """The outbound status queues: list, show, retry (audited)."""
        return OutboundService(self.outbound_queues, self.settings.destinations, self.audit)

    @cached_property
    def purge(self) -> PurgeService:
        return PurgeService(self.retention, self.audit)

    @cached_property
    def importer(self) -> ImportService:
        return ImportService(self.store, self.audit)

    @cached_property
    def keys(self) -> KeySchemaService:
        return KeySchemaService(self.settings, self.client, self._store)

    @cached_property
    def backup(self) -> BackupService:
        return BackupService(self.client, self._store, self.audit)

    @cached_property
    def audit_trail(self) -> AuditTrailService:
        stream = KeySchema(self.settings.redis_key_prefix).audit()
        return AuditTrailService(self.client, stream, self.audit)

    @cached_property
    def dashboard(self) -> DashboardService:
        counts = Counts(self.client, KeySchema(self.settings.redis_key_prefix))
        return DashboardService(counts, self.settings.dicom_scanners, self.worklist_counts)

    @cached_property
    def worklist_counts(self) -> SharedWorklistCounts:
        """The worklist's entries by station and state, one pass every few seconds shared
        by the dashboard and the metrics."""
        counts = Counts(self.client, KeySchema(self.settings.redis_key_prefix))
        return SharedWorklistCounts(counts, self.settings.dicom_scanners)

    @cached_property
    def metrics(self) -> BrokerMetrics:
        """This process's metrics (``/metrics``), their labels bounded by the configured
        senders, scanners and destinations; the worklist's counts and the outbound queues'
        depths read at scrape (as the dashboard's)."""
        s = self.settings
        metrics = BrokerMetrics(
            senders=s.hl7_senders, scanners=s.dicom_scanners, destinations=s.destinations
        )
        shared = self.worklist_counts

        def worklist() -> tuple[dict[str, int], int, int, dict[str, int] | None]:
            found = shared.get().counts
            return found.by_station, found.total, found.ended, found.ended_by_station

        metrics.worklist_counts = worklist
        metrics.outbound.state = self._outbound_state
        return metrics

    def _outbound_state(self) -> dict[str, tuple[int, int, float]]:
        """Each destination's events waiting, parked, and the oldest waiting one's age."""
        now, found = SYSTEM_CLOCK.now(), {}
        for name, queue in self.outbound_queues.items():
            waiting, parked, at = queue.depth()
            found[name] = (waiting, parked, now - at if at is not None else 0.0)
        return found

    @cached_property
    def auth(self) -> AuthService:
        users = UserStore(self.client, KeySchema(self.settings.redis_key_prefix))
        seconds = self.settings.admin_session_minutes * 60
        return AuthService(users, session_seconds=seconds, audit=self.audit)
