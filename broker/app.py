"""The composition root: builds every part, starts them in order, stops them in reverse.

Start: Redis (embedded or configured, durability checked) → the audit trail
(``broker.audit``: every part below records to it) → store (key secret checked,
schema-1 keys migrated: ``broker.store.schema_version``) → mappings →
DICOM SCP (MWL and MPPS) → MLLP listener (no order is accepted before
everything that serves it is up) → the periodic retention purge → the outbound
status senders (one thread per ``[hl7_destinations]``) → the admin console and API
(``broker.admin``, uvicorn on this event loop). Stop: the admin API → stop
accepting HL7 → drain in-flight messages (each still gets its ACK) → stop the
purge → the senders end their exchange → stop the DICOM AE → write the audit
records still queued → close Redis (the embedded server flushes its AOF and exits).
A process runs the listeners and senders of its ``roles`` only (``hl7``: the MLLP
listener, ``dicom``: the SCP, ``admin``: the console, ``outbound``: the senders), beside
other processes on the same Redis (README "Several broker processes").

The application's use cases (``broker.services.application``) are built by
:func:`build_services`: ``serve`` hands their parts to the listeners (the HL7 router
to the MLLP server, the store to the DICOM server), and each one-off command of the
CLI (``broker.cli``) calls one of them on the same Redis.

The embedded redis-server is watched while the broker runs: if it exits, the
broker cannot store anything, so it says why, sets :attr:`Broker.failed` and
``serve`` stops in order and exits with :data:`EXIT_REDIS_LOST`, for its
supervisor (systemd, Docker) to restart it with a new server.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import ssl
from dataclasses import dataclass

import redis

from broker.admin.app import create_app
from broker.admin.server import AdminServer
from broker.audit.trail import AuditTrail
from broker.audit.writer import NO_AUDIT, AuditSink
from broker.common.tls import server_context
from broker.dicom.find import WorklistFindService
from broker.dicom.mpps import MppsService
from broker.dicom.profiles import log_caller_policy, site_zone
from broker.dicom.server import DicomServer, configure_pynetdicom_logging
from broker.mllp.client import connect_destination
from broker.mllp.server import MLLPServer
from broker.services.application import Services
from broker.services.batching import BatchingHandler
from broker.services.outbound_sender import SenderThreads
from broker.services.parts import (
    build_decoder,
    build_message_log,
    build_mpps_store,
    build_retention,
    build_store,
    router_config,
)
from broker.settings import Settings
from broker.store.connection import (
    EmbeddedRedis,
    connect,
)
from broker.store.embedded import ExitWatch
from broker.store.mapping_live import LiveMappings
from broker.store.msglog import MessageLog
from broker.store.ping import RedisPing
from broker.store.retention import RetentionScheduler
from broker.store.sentinel import open_site_redis
from broker.store.worklist import WorklistStore

__all__ = [
    "EXIT_REDIS_LOST",
    "Broker",
    "Endpoints",
    "build_decoder",
    "build_dicom_server",
    "build_message_log",
    "build_mpps_store",
    "build_retention",
    "build_services",
    "build_store",
    "router_config",
]

log = logging.getLogger(__name__)

EXIT_REDIS_LOST = 3  # exit status of ``serve`` when its embedded redis-server died
_MEMORY_WARNING = 0.9  # share of redis_max_memory in use at start-up that is worth a warning
_GC_YOUNG_THRESHOLD = 10_000  # objects allocated between young collections (Python: 700)


@dataclass(frozen=True)
class Endpoints:
    """Where a running broker listens (ports resolved when 0 was asked for; 0 for a listener
    this process does not run: setting ``roles``)."""

    hl7_host: str
    hl7_port: int
    dicom_host: str
    dicom_port: int
    ae_title: str
    redis: str
    admin_host: str = ""
    admin_port: int | None = None  # None: admin_enabled = false
    admin_scheme: str = "http"

    @property
    def admin_url(self) -> str | None:
        """The admin console's base URL, None when it is off."""
        if self.admin_port is None:
            return None
        host = f"[{self.admin_host}]" if ":" in self.admin_host else self.admin_host
        return f"{self.admin_scheme}://{host}:{self.admin_port}"


def build_services(s: Settings, client: redis.Redis, audit: AuditSink = NO_AUDIT) -> Services:
    """The application's use cases on ``client`` (``broker.services.application``): ``serve``
    hands them to its listeners, each one-off command of the CLI calls one of them.
    ``audit`` records what they change."""
    return Services(s, client, audit)


def listener_tls(s: Settings, face: str) -> ssl.SSLContext | None:
    """The TLS context (BCP 195) of listener ``face`` (``hl7``, ``dicom``: PS3.15 B.9,
    ``admin``), from its ``<face>_tls_*`` settings; None for plain TCP."""
    cert, key = getattr(s, f"{face}_tls_cert"), getattr(s, f"{face}_tls_key")
    if cert is None or key is None:
        return None
    return server_context(f"{face}_tls_cert", cert, key, getattr(s, f"{face}_tls_client_ca", None))


def build_dicom_server(services: Services, audit: AuditSink = NO_AUDIT) -> DicomServer:
    """The MWL C-FIND and MPPS SCP on the services' store, with their scanner profiles."""
    s, profiles = services.settings, services.profiles
    log_caller_policy(profiles, s.dicom_host)
    find = WorklistFindService(
        services.store,
        max_answers=s.dicom_max_answers,
        character_set=s.dicom_character_set,
        pn_case_insensitive=s.dicom_pn_case_insensitive,
        hidden_statuses=frozenset(s.dicom_hidden_statuses),
        profiles=profiles,
        zone=site_zone(s.site_timezone),
        answer_cache=s.dicom_entry_cache,
        max_candidates=s.dicom_max_candidates,
        query_cpu_seconds=s.dicom_query_cpu_seconds,
        gate=services.broad_queries,
        audit=audit,
    )
    return DicomServer(
        ae_title=s.ae_title,
        host=s.dicom_host,
        port=s.dicom_port,
        find_service=find,
        mpps_service=MppsService(services.mpps, profiles=profiles, audit=audit),
        network_timeout=s.dicom_network_timeout,
        max_associations=s.dicom_max_associations,
        max_per_address=s.dicom_max_connections_per_address,
        admission=profiles.decide,
        reachable=profiles.may_connect,
        tls=listener_tls(s, "dicom"),
        audit=audit,
        metrics=services.metrics,
        reuse_port=s.listen_reuse_port,
    )


def _check_memory(client: redis.Redis) -> None:
    """Warn at start-up when the embedded Redis is already near its memory budget: once it
    is full, every order is refused (AR) until entries are purged or the budget raised."""
    try:
        info = client.info("memory")
    except redis.RedisError as e:
        log.warning("cannot read the embedded Redis's memory use: %s", e)
        return
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    if limit and used >= _MEMORY_WARNING * limit:
        log.warning(
            "the embedded Redis uses %d of its %d bytes (redis_max_memory): orders are refused "
            "when it is full; raise redis_max_memory or shorten the retention",
            used,
            limit,
        )


def _settle_garbage_collector() -> None:
    """Move what start-up built (mappings, pydicom's and hl7apy's dictionaries) out of the
    collector's sight, and let it run less often: each message allocates thousands of
    short-lived objects, and every full collection would walk the start-up heap again."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


class Broker:
    """One broker process: owns every component and their order of start and stop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._embedded: EmbeddedRedis | None = None
        self._watch: ExitWatch | None = None
        self._redis: redis.Redis | None = None
        self._dicom: DicomServer | None = None
        self._mllp: MLLPServer | None = None
        self._batching: BatchingHandler | None = None
        self._purge: RetentionScheduler | None = None
        self._outbound: SenderThreads | None = None
        self._admin: AdminServer | None = None
        self._ping: RedisPing | None = None
        self.audit: AuditTrail | None = None
        self.services: Services | None = None
        self.store: WorklistStore | None = None
        self.messages: MessageLog | None = None
        self.mappings: LiveMappings | None = None
        self.endpoints: Endpoints | None = None
        self.failed = asyncio.Event()  # set when the broker can no longer work (see module doc)

    def __repr__(self) -> str:
        return f"Broker(endpoints={self.endpoints!r})"

    async def start(self) -> Endpoints:
        """Start everything; on any failure, stop what was started and re-raise."""
        try:
            return await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> Endpoints:
        s = self.settings
        configure_pynetdicom_logging()
        client, redis_label = await asyncio.to_thread(self._open_redis)
        embedded = self._embedded
        if embedded is not None and embedded.process is not None:
            loop = asyncio.get_running_loop()
            self._watch = ExitWatch(embedded.process, loop, self._redis_exited)
        self.audit = trail = AuditTrail(s, client)
        trail.start()
        audit = trail.writer
        self.services = services = build_services(s, client, audit)
        self.store = await asyncio.to_thread(lambda: services.store)
        self.mappings = live = services.live_mappings
        await asyncio.to_thread(live.load)
        live.start()
        self.messages = services.message_log
        if "dicom" in s.roles:
            self._dicom = build_dicom_server(services, audit)
            self._dicom.start()
        if "hl7" in s.roles:
            await self._start_intake(services, client)
        self._start_background(services, client)
        if s.admin_enabled and "admin" in s.roles:
            app = create_app(services, s, listeners=self._listener_ports)
            tls = listener_tls(s, "admin")
            self._admin = AdminServer(app, host=s.admin_host, port=s.admin_port, tls=tls)
            await self._admin.start()
        _settle_garbage_collector()
        ports = self._listener_ports()
        hl7_port, dicom_port = ports.get("hl7") or 0, ports.get("dicom") or 0
        self.endpoints = Endpoints(
            hl7_host=s.hl7_host,
            hl7_port=hl7_port,
            dicom_host=s.dicom_host,
            dicom_port=dicom_port,
            ae_title=s.ae_title,
            redis=redis_label,
            admin_host=s.admin_host,
            admin_port=self._admin.port if self._admin else None,
            admin_scheme=self._admin.scheme if self._admin else "http",
        )
        trail.started(hl7_port=hl7_port, dicom_port=dicom_port, ae_title=s.ae_title)
        return self.endpoints

    async def _start_intake(self, services: Services, client: redis.Redis) -> None:
        """The MLLP listener, its messages handled in batches by the HL7 router."""
        s, router = self.settings, services.intake
        self._batching = handle = BatchingHandler(router.handle_steps, router.answer, client)
        self._mllp = MLLPServer(
            handle,
            router.reject,
            host=s.hl7_host,
            port=s.hl7_port,
            max_frame_bytes=s.hl7_max_frame_bytes,
            idle_timeout=s.hl7_idle_timeout,
            max_connections=s.hl7_max_connections,
            admit=s.senders.admits,
            max_per_address=s.hl7_max_connections_per_address,
            tls=listener_tls(s, "hl7"),
            audit=services.audit,
            metrics=services.metrics,
            reuse_port=s.listen_reuse_port,
        )
        await self._mllp.start()

    def _start_background(self, services: Services, client: redis.Redis) -> None:
        """What runs beside the listeners: the periodic purge (idempotent: every process
        may run it), the senders of status messages to the RIS (role ``outbound``; a lease
        per destination keeps two processes from sending the same event), the Redis ping
        of the metrics."""
        s = self.settings
        if s.retention_interval_seconds > 0:
            self._purge = RetentionScheduler(services.retention, s.retention_interval_seconds)
            self._purge.start()
        if not s.redis_external:  # one broker per embedded Redis: a lease left is a dead run's
            for queue in services.outbound_queues.values():
                if queue.break_lease():
                    log.info(
                        "outbound %s: the lease of a run that died is dropped", queue.destination
                    )
        if "outbound" in s.roles:
            self._outbound = SenderThreads(services.outbound_senders(connect_destination))
            self._outbound.start()
        elif s.destinations:
            log.info("status messages to the RIS are queued here and sent by a process with "
                     "the outbound role (roles)")  # fmt: skip
        self._ping = RedisPing(client, services.metrics).start()
        services.metrics.up.set(1)

    def _listener_ports(self) -> dict[str, int | None]:
        """The ports of the listeners this process runs (its ``roles``), None for one that
        is not up (the admin API's readyz)."""
        mllp, dicom, roles = self._mllp, self._dicom, self.settings.roles
        ports: dict[str, int | None] = {}
        if "hl7" in roles:
            ports["hl7"] = mllp.port if mllp is not None and mllp.listening else None
        if "dicom" in roles:
            ports["dicom"] = dicom.port if dicom is not None else None
        return ports

    def _redis_exited(self, returncode: int) -> None:
        how = f"killed by signal {-returncode}" if returncode < 0 else f"status {returncode}"
        log.error(
            "the embedded redis-server exited (%s): nothing can be stored; the broker stops "
            "(exit status %d) for its supervisor to restart it",
            how,
            EXIT_REDIS_LOST,
        )
        self.failed.set()

    def _open_redis(self) -> tuple[redis.Redis, str]:
        s = self.settings
        if not s.redis_external:
            self._embedded = embedded = EmbeddedRedis(
                s.data_dir / "redis", binary=s.redis_server_binary, max_memory=s.redis_max_memory
            )
            embedded.start()
            client = connect(embedded.url, timeout=s.redis_timeout)
            self._redis = client
            _check_memory(client)
            return client, f"embedded redis-server {embedded.version}, data in {embedded.data_dir}"
        if s.redis_server_binary is not None:
            log.warning("redis_server_binary is ignored: the broker uses the site's Redis")
        client, label = open_site_redis(s)
        self._redis = client
        return client, label

    async def stop(self) -> None:
        """Stop in order: HL7 intake and drain, DICOM, then Redis."""
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()  # from here on, the embedded server stops because we stop it
        admin, self._admin = self._admin, None
        if admin is not None:
            await admin.stop()
        mllp, self._mllp = self._mllp, None
        if mllp is not None:
            await mllp.stop(self.settings.drain_timeout)
        batching, self._batching = self._batching, None
        if batching is not None:
            await asyncio.to_thread(batching.close)
        mappings, self.mappings = self.mappings, None
        if mappings is not None:
            await asyncio.to_thread(mappings.stop)
        ping, self._ping = self._ping, None
        if ping is not None:
            await asyncio.to_thread(ping.stop)
        purge, self._purge = self._purge, None
        if purge is not None:
            await asyncio.to_thread(purge.stop)
        outbound, self._outbound = self._outbound, None
        if outbound is not None:
            await asyncio.to_thread(outbound.stop, self.settings.drain_timeout)
        dicom, self._dicom = self._dicom, None
        if dicom is not None:
            await asyncio.to_thread(dicom.stop, self.settings.drain_timeout)
        if self.services is not None:
            await asyncio.to_thread(self.services.close)
        trail, self.audit = self.audit, None
        if trail is not None:
            await asyncio.to_thread(trail.stop, self.settings.drain_timeout)
        client, self._redis = self._redis, None
        if client is not None:
            client.close()
        embedded, self._embedded = self._embedded, None
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
