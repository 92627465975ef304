"""The legitimate clients of the attack benchmark: a scanner polling, a RIS sending orders.

Both run in threads of the benchmark's own process for a whole scenario (baseline
and attack) and keep one sample per request: when it started, how long it took,
and what went wrong, if anything. A phase's figures are the samples that started in
it. The attacks run in another process, so their work does not compete with these
clients for this interpreter's lock and distort what they measure.

- The scanner (a listed ``[scanners.<AE>]``, from 127.0.0.1) polls its station's
  worklist the way modalities do: a new association, one C-FIND, release, every
  ``interval`` seconds (at once when a poll took longer). Its latency runs from the
  association request to the final C-FIND response; an error is a rejected or aborted
  association, a status other than Success, or other answers than expected.
- The RIS (a listed ``[hl7_senders.<name>]``, from 127.0.0.1) sends distinct
  ORM^O01 orders, one at a time, paced, on one MLLP connection; its latency is the
  ACK's; an error is an ACK other than AA or a failed exchange (then it reconnects).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass

from pynetdicom import AE

from bench.cfind_client import CellResult, _one_query, associate
from bench.cfind_data import Query, query_dataset
from broker.dicom.server import ModalityWorklistInformationFind
from broker.mllp.client import MLLPClient, MLLPClientError, summarize_ack

__all__ = ["LegitClient", "Phase", "Poller", "Ris", "order"]

ORDER = (
    "MSH|^~\\&|RIS|RADIOLOGY|MWL_BROKER|HOSPITAL|{stamp}||ORM^O01|{id}|P|2.3.1\r"
    "PID|||{id}^^^HOSP||Doe^Jane^Q||19700101|F\r"
    "PV1||O|RAD^ROOM1^1|||||1234^Smith^Anna|||||||||||V{id}\r"
    "ORC|NW|P{id}^RIS|F{id}^RIS||SC||1^once^^20270601093000^^R||{stamp}\r"
    "OBR|1|P{id}^RIS|F{id}^RIS|CTHEAD^CT head^LOCAL||||||||||||1234^Smith^Anna||{id}|"
    "R{id}|S{id}||||CT|||1^once^^20270601093000^^R\r"
)  # scheduled in 2027: outside the dates the scanner polls, so its answers stay known


def order(control_id: str, application: str = "RIS", stamp: str | None = None) -> bytes:
    """An ORM^O01 new order; ``control_id`` also makes its identifiers and accession."""
    text = ORDER.format(id=control_id, stamp=stamp or time.strftime("%Y%m%d%H%M%S"))
    return text.replace("|RIS|RADIOLOGY|", f"|{application}|RADIOLOGY|", 1).encode()


@dataclass
class Phase:
    """The figures of one client in one phase (ms)."""

    requests: int
    p50: float
    p99: float
    max: float
    errors: Counter[str]

    def text(self) -> str:
        if not self.requests:
            return "none"
        return f"{self.p50:.0f} / {self.p99:.0f} / {self.max:.0f}"


class LegitClient:
    """Samples ``(started, ms, error or "")`` of one client, taken by its own thread."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float, str]] = []
        self.stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def finish(self) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join()

    def phase(self, since: float, until: float) -> Phase:
        """Figures of the requests that started in ``[since, until)``."""
        inside = [(ms, err) for t, ms, err in self.samples if since <= t < until]
        if not inside:
            return Phase(0, 0.0, 0.0, 0.0, Counter())
        cell = CellResult(latencies=[ms for ms, _ in inside], seconds=until - since, answers=[])
        errors = Counter(err for _, err in inside if err)
        return Phase(len(inside), cell.p50, cell.pct(99), max(cell.latencies), errors)

    def _run(self) -> None:
        next_start = time.monotonic()
        while not self.stop.is_set():
            started = time.monotonic()
            t0 = time.perf_counter()
            try:
                error = self.request()
            except Exception as e:  # a client error is a sample, not the end of the run
                error = type(e).__name__
            self.samples.append((started, (time.perf_counter() - t0) * 1000, error))
            next_start = max(next_start + self.interval, time.monotonic())
            self.stop.wait(next_start - time.monotonic())
        self.close()

    def request(self) -> str:
        """One request; "" when it went right, else what went wrong."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the client holds."""


class Poller(LegitClient):
    """The scanner: a station poll on a new association (see the module docstring)."""

    def __init__(
        self, port: int, calling: str, polls: list[Query], expected: dict[Query, list[str]]
    ) -> None:
        super().__init__(interval=0.1)
        self.port = port
        self.polls = polls
        self.expected = expected
        self.ae = AE(ae_title=calling)
        self.ae.acse_timeout = self.ae.dimse_timeout = self.ae.network_timeout = 30
        self.ae.add_requested_context(ModalityWorklistInformationFind)
        self.identifiers = {q: query_dataset(q) for q in polls}
        self.count = 0

    def request(self) -> str:
        q = self.polls[self.count % len(self.polls)]
        self.count += 1
        assoc = associate(self.ae, self.port, bind_address=("127.0.0.1", 0))
        if not assoc.is_established:
            return "association rejected" if assoc.is_rejected else "association failed"
        try:
            _, answers, final = _one_query(assoc, self.identifiers[q], 1)
        finally:
            if assoc.is_established:
                assoc.release()
        if final != 0:
            return "aborted" if final == -1 else f"status 0x{final:04X}"
        if sorted(answers) != self.expected[q]:
            return "other answers than expected"
        return ""


class Ris(LegitClient):
    """The RIS: paced orders on one MLLP connection (see the module docstring)."""

    def __init__(self, port: int, prefix: str, interval: float = 0.2) -> None:
        super().__init__(interval=interval)
        self.port = port
        self.prefix = prefix
        self.client: MLLPClient | None = None
        self.count = 0

    def request(self) -> str:
        self.count += 1
        try:
            if self.client is None:
                self.client = MLLPClient("127.0.0.1", self.port, timeout=30)
            ack = summarize_ack(self.client.send(order(f"{self.prefix}{self.count}")))
        except MLLPClientError:
            self.close()
            return "no ACK"
        return "" if ack.code == "AA" else f"ACK {ack.code}"

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
