"""The benchmark's MWL C-FIND client: one pynetdicom SCU for every server.

Each worker thread opens one association and sends its share of the queries
back to back; the latency of a query is from ``send_c_find`` to its final
response, the client's decoding included. Every answer's Accession Number is
read and the set compared with the expected matches, so a server that answers
the wrong entries (or the right number of wrong ones) fails the run.

pynetdicom 3.0.4's SCU has a race (``Association._reactor_checkpoint``): when a
C-FIND ends, its reactor thread is woken, and if the next request is sent
before that thread has run, it can take the next query's first response off
the queue and drop it ("Received unexpected C-FIND service message";
pydicom/pynetdicom#875). Every benchmark association is opened by
:func:`associate`, which makes the reactor's poll leave responses to the request
waiting for them (``tests.scu.leave_responses_to_requests``, the tests' SCU's
workaround). A query that still lost an answer that way would be noticed by the
warning, not counted, and sent again (``CellResult.retries``).

A server may abort an association after a query (pynetdicom's SCP does so when
one C-FIND outlasts its ``network_timeout``: its idle timer counts only data
received), and the worker's next query then meets the abort. The worker opens
a new association and sends that query again, outside its latency; the cell
reports how often that happened.
"""

from __future__ import annotations

import contextlib
import logging
import math
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pynetdicom import AE, _config

from bench.cfind_data import Query, query_dataset
from broker.dicom.server import ModalityWorklistInformationFind
from tests.scu import leave_responses_to_requests

__all__ = ["CellResult", "CountMismatch", "associate", "quiet_pynetdicom", "run_cell"]

CALLING_AE = "BENCH_SCU"
PENDING = (0xFF00, 0xFF01)


class CountMismatch(RuntimeError):
    """A server answered a query with other entries than expected."""


class _DropCounter(logging.Handler):
    """Counts pynetdicom's warning about a response its reactor took, per thread."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.by_thread: dict[int, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if "unexpected" in record.getMessage():
            ident = threading.get_ident()
            self.by_thread[ident] = self.by_thread.get(ident, 0) + 1


_drops = _DropCounter()


def quiet_pynetdicom() -> None:
    """No identifier logging and no per-PDU log handlers in the client (same for all servers)."""
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    _config.LOG_HANDLER_LEVEL = "none"
    logger = logging.getLogger("pynetdicom")
    logger.setLevel(logging.WARNING)
    if _drops not in logger.handlers:
        logger.addHandler(_drops)


@dataclass
class CellResult:
    """Latencies (ms) of one server, one query kind, one concurrency."""

    latencies: list[float]
    seconds: float
    answers: list[int]
    retries: int = 0  # queries sent again after the client lost a response
    reassociations: int = 0  # associations the server aborted after a query
    extra: dict[str, Any] = field(default_factory=dict)

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def qps(self) -> float:
        return len(self.latencies) / self.seconds


def associate(ae: Any, port: int, called_ae: str = "MWL_BROKER", **kwargs: Any) -> Any:
    """``ae``'s association to 127.0.0.1:``port`` (``kwargs``: ``ae.associate``'s), its
    reactor leaving every response to the request waiting for it (see the module docstring)."""
    return leave_responses_to_requests(
        ae.associate("127.0.0.1", port, ae_title=called_ae, **kwargs)
    )


def _one_query(assoc: Any, identifier: Any, msg_id: int) -> tuple[float, list[str], int]:
    """(latency ms, accession numbers answered, final status) of one C-FIND."""
    accessions: list[str] = []
    final = -1
    t0 = time.perf_counter()
    for status, answer in assoc.send_c_find(
        identifier, ModalityWorklistInformationFind, msg_id=msg_id
    ):
        code = int(status.get("Status", -1))
        if code in PENDING:
            accessions.append(str(answer.AccessionNumber))
        else:
            final = code
    latency = (time.perf_counter() - t0) * 1000
    return latency, accessions, final


class _Client:
    """One worker's association to the server (opened again when the server aborts it), its
    message ids, and how often a query was sent again."""

    def __init__(self, port: int, called_ae: str) -> None:
        self.port, self.called_ae = port, called_ae
        self.ae = AE(ae_title=CALLING_AE)
        self.ae.acse_timeout = 120
        self.ae.dimse_timeout = self.ae.network_timeout = 1800
        self.ae.add_requested_context(ModalityWorklistInformationFind)
        self.assoc: Any = None
        self.msg_id = 0
        self.retries = self.reassociations = 0

    def associate(self) -> Any:
        assoc = associate(self.ae, self.port, self.called_ae)
        if not assoc.is_established:
            raise RuntimeError(f"{self.called_ae}: association not established")
        return assoc

    def connect(self) -> None:
        self.assoc = self.associate()

    def release(self) -> None:
        if self.assoc is not None and self.assoc.is_established:
            self.assoc.release()

    def query(
        self, q: Query, identifier: Any, expected: dict[Query, list[str]]
    ) -> tuple[float, list[str]]:
        """(latency ms, accession numbers) of ``q``, answered as expected; sent again after an
        abort or a lost response (see the module docstring), CountMismatch otherwise."""
        while True:
            if not self.assoc.is_established:  # the server ended it after the last query
                self.reassociations += 1
                self.assoc = self.associate()
            self.msg_id = self.msg_id % 65535 + 1
            dropped = _drops.by_thread.get(threading.get_ident(), 0)
            latency, accessions, final = _one_query(self.assoc, identifier, self.msg_id)
            if final == 0 and sorted(accessions) == expected[q]:
                return latency, accessions
            if final == -1 and not accessions and not self.assoc.is_established:
                continue  # aborted before it was served: sent again on a new association
            if _drops.by_thread.get(threading.get_ident(), 0) > dropped:
                self.retries += 1  # the client lost a response (see the module docstring)
                continue
            raise CountMismatch(
                f"{self.called_ae} {q}: status {final:#06x}, {len(accessions)} answers, "
                f"expected {len(expected[q])}"
                + ("" if len(accessions) != len(expected[q]) else " (other entries)")
            )


_Tally = tuple[list[float], list[int], int, int]  # latencies, answers, retries, reassociations


def _work(
    client: _Client,
    plan: list[Query],
    expected: dict[Query, list[str]],
    warmup: int,
    barrier: threading.Barrier,
) -> _Tally:
    """One worker's queries: the first ``warmup`` unmeasured, then the barrier, then measured."""
    lat: list[float] = []
    counts: list[int] = []
    identifiers = {q: query_dataset(q) for q in set(plan)}
    for k, q in enumerate(plan):
        if k == warmup:
            barrier.wait()
        latency, accessions = client.query(q, identifiers[q], expected)
        if k >= warmup:
            lat.append(latency)
            counts.append(len(accessions))
    return lat, counts, client.retries, client.reassociations


def _cell_result(results: list[_Tally], seconds: float) -> CellResult:
    return CellResult(
        latencies=[x for r in results for x in r[0]],
        seconds=seconds,
        answers=[x for r in results for x in r[1]],
        retries=sum(r[2] for r in results),
        reassociations=sum(r[3] for r in results),
    )


def run_cell(
    port: int,
    called_ae: str,
    queries: list[Query],
    expected: dict[Query, list[str]],
    *,
    concurrency: int,
    reps: int,
    warmup: int,
) -> CellResult:
    """``reps`` queries (cycling through ``queries``) over ``concurrency`` associations."""
    per_worker = [reps // concurrency + (i < reps % concurrency) for i in range(concurrency)]
    barrier = threading.Barrier(concurrency + 1)
    results: list[_Tally] = [([], [], 0, 0)] * concurrency
    finished = [0.0] * concurrency
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        client = _Client(port, called_ae)
        try:
            client.connect()
            plan = [
                queries[(index + concurrency * k) % len(queries)]
                for k in range(-warmup, per_worker[index])
            ]
            tally = _work(client, plan, expected, warmup, barrier)
            finished[index] = time.perf_counter()
            results[index] = tally
        except BaseException as e:
            errors.append(e)
            barrier.abort()
        finally:
            client.release()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait()  # a worker failed: its error is raised below
    started = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return _cell_result(results, max(finished) - started)
