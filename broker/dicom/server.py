"""The DICOM application entity: Verification, Modality Worklist FIND and MPPS SCP.

A thin wrapper over pynetdicom's threaded association server. Each association
runs in its own thread and calls ``WorklistFindService.handle`` (and, for MPPS
N-CREATE / N-SET, ``MppsService.handle_create`` / ``handle_set``) synchronously;
the store client is synchronous and thread-safe, so no bridge to asyncio is
needed.

Who may connect is decided once per association, as soon as the A-ASSOCIATE-RQ
is read (pynetdicom's EVT_REQUESTED, before presentation contexts are
negotiated), by a pure policy ``(calling AE title, source address) -> Decision``
(``broker.dicom.profiles.ProfileSet.decide``). A refused caller gets an
A-ASSOCIATE-RJ (PS3.8 9.3.4), rejected-permanent, source DICOM UL service user:

    calling AE title without a table of its own   reason 3, calling AE title
      that unknown callers may not use, or from     not recognized
      an address they may not use
    AE title with a table, from an address it     reason 1, no reason given (PS3.8
      does not list                                 Table 9-21 has none for addresses)
    the policy itself failed                      rejected-transient, reason 1

and one WARNING line with the source address and the calling AE title
(printable characters only, at most 16); no service of the broker runs for it.
Every association, accepted or rejected, is on the audit trail (``broker.audit``),
as are the connections the guard closes (``broker.dicom.guard``).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from pydicom import config as pydicom_config
from pydicom.uid import UID
from pynetdicom import AE, DEFAULT_TRANSFER_SYNTAXES, _config, evt

from broker.audit.record import AssociationRecords, RefusalRecords
from broker.audit.writer import NO_AUDIT, AuditSink
from broker.common.metrics import BrokerMetrics
from broker.dicom.acceptance import Admission, admission_check
from broker.dicom.guard import GuardLimits, guarded_server_class
from broker.dicom.metering import AssociationMeter, measured
from broker.dicom.peers import calling_ae
from broker.dicom.profiles import ProfileSet
from broker.dicom.transport import hang_up

__all__ = [
    "Admission",
    "DicomServer",
    "FindHandler",
    "MppsHandler",
    "configure_pynetdicom_logging",
]

log = logging.getLogger(__name__)

_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)

# Answers between two waits for the DUL queue to drain: bounds buffered answers
# and C-CANCEL latency; 32 costs no measurable throughput (1,000-answer query).
_PACE_EVERY = 32

# PS3.6 Annex A (pynetdicom generates its sop_class names at run time, untyped).
Verification = UID("1.2.840.10008.1.1")
ModalityWorklistInformationFind = UID("1.2.840.10008.5.1.4.31")
ModalityPerformedProcedureStep = UID("1.2.840.10008.3.1.2.3.3")


class FindHandler(Protocol):
    """Anything with an EVT_C_FIND handler (``broker.dicom.find.WorklistFindService``)."""

    def handle(self, event: Any) -> Iterator[Any]: ...


class MppsHandler(Protocol):
    """EVT_N_CREATE and EVT_N_SET handlers (``broker.dicom.mpps.MppsService``)."""

    def handle_create(self, event: Any) -> tuple[Any, Any]: ...

    def handle_set(self, event: Any) -> tuple[Any, Any]: ...


def configure_pynetdicom_logging() -> None:
    """Keep patient data out of logs: pynetdicom logs every C-FIND identifier at
    INFO by default; pydicom, reading a value that is not valid for its VR, logs
    and warns, some of it with the value itself (``Invalid value for VR UI:
    '1.2.*'``). The broker checks keys itself (``broker.dicom.limits``) and says
    which key, never its value, so pydicom's validation on reading is off.
    Process-wide, so called once by the composition root, before any
    ``DicomServer`` is built."""
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
    # The standard per-PDU/DIMSE handlers only log below WARNING; unbound, they
    # cost nothing (about 5 % of a large C-FIND's time otherwise).
    _config.LOG_HANDLER_LEVEL = "none"
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)


def _set_nodelay(event: Any) -> None:
    """Disable Nagle on an accepted socket (EVT_CONN_OPEN).

    pynetdicom sends a C-FIND response as several PDUs; with Nagle on both
    ends each exchange can wait 40-80 ms for a delayed ACK. pynetdicom has no
    public socket-option hook, so this reaches the socket through the DUL.
    """
    try:
        sock = event.assoc.dul.socket.socket
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError) as e:
        log.warning("could not set TCP_NODELAY on a DICOM connection: %s", e)


def _paced(
    handler: Callable[[Any], Iterator[Any]], max_wait: float
) -> Callable[[Any], Iterator[Any]]:
    """Every ``_PACE_EVERY`` C-FIND answers, wait until the DUL queue is empty.

    pynetdicom queues responses for its DUL thread without limit, and that
    thread reads the socket only when its queue is empty. A handler that
    produces answers faster than they are sent would therefore buffer every
    answer in memory and not see a C-CANCEL (PS3.7 9.3.2.3) until the end.
    Letting the queue drain now and then gives streaming with bounded memory,
    and moments in which the DUL reads the peer's C-CANCEL.

    A peer that does not take the answers within ``max_wait`` (the network
    timeout) has stopped reading: its connection is reset, which ends the DUL's
    blocked send and the association (A-P-ABORT), and no more answers are made.
    When the association has ended otherwise (the DUL's own send timed out, an
    A-ABORT came), the query stops too.
    """

    def handle(event: Any) -> Iterator[Any]:
        for count, result in enumerate(handler(event), start=1):
            yield result
            _busy(event)
            if count % _PACE_EVERY:
                continue
            drained = _drained(event.assoc, max_wait)
            if drained is None:
                return
            if not drained:
                log.warning(
                    "DICOM C-FIND from %s, calling AE title '%s': answers not read for %g s; "
                    "connection reset",
                    event.assoc.requestor.address,
                    calling_ae(event),
                    max_wait,
                )
                hang_up(getattr(event.assoc.dul.socket, "socket", None), reset=True)
                return

    return handle


def _drained(assoc: Any, max_wait: float) -> bool | None:
    """Whether the DUL sent every queued answer within ``max_wait``; None when the
    association ended meanwhile."""
    dul = assoc.dul
    deadline = time.monotonic() + max_wait
    while dul.to_provider_queue.qsize():
        if not (assoc.is_established and dul.is_alive()):
            return None
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.0002)
    return True


def _busy(event: Any) -> None:
    """An association sending answers is not idle: restart its idle (network) timer.

    pynetdicom restarts that timer only on data received, so a C-FIND whose
    answers take longer than ``network_timeout`` to produce would be aborted
    right after its last answer. No public API exists; the timer is the DUL's.
    """
    timer = getattr(getattr(event.assoc, "dul", None), "_idle_timer", None)
    if timer is not None:
        timer.restart()


def _quick_ack(event: Any) -> None:
    """Acknowledge received data at once (EVT_DATA_RECV; Linux TCP_QUICKACK).

    Modalities that leave Nagle on (pynetdicom's SCU, DCMTK by default) send a
    C-FIND-RQ as two PDUs and hold the second until the first is ACKed; a
    delayed ACK then stalls every query by ~40 ms. Quick-ack mode is not
    sticky in Linux, so it is renewed on every receive.
    """
    with contextlib.suppress(AttributeError, OSError):  # connection closing, or not TCP
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)


class DicomServer:
    """Accepts associations for one AE title: C-ECHO, MWL C-FIND (PS3.4 K) and,
    when given an MPPS service, MPPS N-CREATE / N-SET (PS3.4 F.7).

    ``admission`` decides who may connect, for every service (module docstring);
    by default ``ProfileSet({}).decide``: any calling AE title, from this host
    only. ``reachable`` says from which addresses anyone may (``may_connect``).
    The called AE title must be ours, or the association is rejected
    (PS3.8 9.3.4, A-ASSOCIATE-RJ reason 7).
    """

    def __init__(
        self,
        *,
        ae_title: str,
        host: str,
        port: int,
        find_service: FindHandler,
        mpps_service: MppsHandler | None = None,
        acse_timeout: float = 30.0,
        dimse_timeout: float = 30.0,
        network_timeout: float = 60.0,
        max_associations: int = 32,
        max_per_address: int | None = None,
        admission: Admission | None = None,
        reachable: Callable[[str], bool] | None = None,
        tls: ssl.SSLContext | None = None,
        audit: AuditSink = NO_AUDIT,
        metrics: BrokerMetrics | None = None,
        reuse_port: bool = False,
    ) -> None:
        self._ae_title = ae_title
        self._reuse_port = reuse_port
        self._metrics = metrics or BrokerMetrics()
        self._admit = admission or ProfileSet({}).decide
        # whether ``admission`` could accept anyone from an address: when not, the
        # connection is closed as it is accepted (ProfileSet.may_connect)
        self._reachable = reachable or (
            ProfileSet({}).may_connect if admission is None else lambda host: True
        )
        self._host = host
        self._requested_port = port
        self._find = find_service
        self._mpps = mpps_service
        self._acse_timeout = acse_timeout
        self._dimse_timeout = dimse_timeout
        self._network_timeout = network_timeout
        self._max_associations = max_associations
        self._max_per_address = max_per_address or max_associations
        self._tls = tls
        self._audit = audit
        self._server: Any = None

    def __repr__(self) -> str:
        return f"DicomServer(ae_title={self._ae_title!r}, host={self._host!r}, port={self.port})"

    def _build_ae(self) -> AE:
        ae = AE(ae_title=self._ae_title)
        ae.require_called_aet = True
        ae.acse_timeout = self._acse_timeout
        ae.dimse_timeout = self._dimse_timeout
        ae.network_timeout = self._network_timeout
        ae.maximum_associations = self._max_associations
        ae.add_supported_context(Verification, DEFAULT_TRANSFER_SYNTAXES)
        ae.add_supported_context(ModalityWorklistInformationFind, DEFAULT_TRANSFER_SYNTAXES)
        if self._mpps is not None:
            ae.add_supported_context(ModalityPerformedProcedureStep, DEFAULT_TRANSFER_SYNTAXES)
        return ae

    def start(self) -> None:
        """Bind and start serving in background threads; returns at once."""
        if self._server is not None:
            raise RuntimeError("DicomServer already started")
        audit, records = self._audit, AssociationRecords(self._audit)
        meter = AssociationMeter(self._metrics)
        find = measured(self._find.handle, self._metrics)
        handlers: list[evt.EventHandlerType] = [
            (evt.EVT_REQUESTED, admission_check(self._admit, self._client_certificates, records)),
            (evt.EVT_ACCEPTED, records.accepted),
            (evt.EVT_REJECTED, records.rejected),
            (evt.EVT_ACCEPTED, meter.accepted),
            (evt.EVT_REJECTED, meter.rejected),
            (evt.EVT_CONN_OPEN, _set_nodelay),
            *([(evt.EVT_DATA_RECV, _quick_ack)] if _TCP_QUICKACK is not None else []),
            (evt.EVT_C_FIND, _paced(find, self._network_timeout)),
        ]
        if self._mpps is not None:
            handlers += [
                (evt.EVT_N_CREATE, self._mpps.handle_create),
                (evt.EVT_N_SET, self._mpps.handle_set),
            ]
        ae = self._build_ae()
        limits = GuardLimits(
            self._max_associations, self._max_per_address, self._network_timeout, self._reachable
        )
        audited = RefusalRecords(audit, "dicom").refused  # at a bounded rate

        def refused(host: str, reason: str) -> None:
            meter.count(reason)
            audited(host, reason)

        limits.refused = refused
        server = ae.make_server(
            (self._host, self._requested_port),
            evt_handlers=handlers,
            ssl_context=self._tls,
            server_class=guarded_server_class(limits, reuse_port=self._reuse_port),
        )
        thread = threading.Thread(target=server.serve_forever, name="dicom-acceptor", daemon=True)
        thread.start()
        self._server = server
        log.info("DICOM SCP %s listening on %s:%d", self._ae_title, self._host, self.port)

    @property
    def _client_certificates(self) -> bool:
        """Whether callers present verified certificates (TLS with a client CA)."""
        return self._tls is not None and self._tls.verify_mode == ssl.CERT_REQUIRED

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for), or the requested one."""
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])

    @property
    def active_associations(self) -> int:
        """How many associations are open now (for metrics and health checks)."""
        return 0 if self._server is None else len(self._server.active_associations)

    def stop(self, drain_timeout: float = 5.0) -> None:
        """Stop accepting, let open associations finish for up to ``drain_timeout``
        seconds, then abort the rest (A-ABORT)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        deadline = time.monotonic() + drain_timeout
        for assoc in server.active_associations:
            assoc.join(max(0.0, deadline - time.monotonic()))
        remaining = server.active_associations
        for assoc in remaining:
            assoc.abort()
        log.info("DICOM SCP %s stopped (%d associations aborted)", self._ae_title, len(remaining))
