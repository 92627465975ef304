"""What the outbound tests share: the receiver process, worklist entries with an origin,
the outbound parts on a real Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from broker.common.outbound_metrics import OutboundMetrics
from broker.hl7.destinations import Destination
from broker.mapping.outbound_spec import OutboundSpec
from broker.mapping.patient_spec import load_any_mapping
from broker.mllp.client import connect_destination
from broker.services.outbound_sender import OutboundSender
from broker.store.entry_edits import EntryEdits
from broker.store.outbound import OutboundQueue, OutboundRoutes
from broker.store.worklist import WorklistStore
from broker.worklist.model import OrderAction, OrderChange

REPO = Path(__file__).resolve().parents[2]
ROUTES = OutboundRoutes({"RIS": "ris"}, {"ris": 1000})


def outbound_spec() -> OutboundSpec:
    spec = load_any_mapping(REPO / "mappings" / "outbound.yaml")
    assert isinstance(spec, OutboundSpec)
    return spec


class Receiver:
    """``tests.mllp_receiver`` in its own process; ``records`` reads what it got."""

    def __init__(self, record: Path) -> None:
        self.record = record
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None

    def start(self, answer: str = "aa", tls: tuple[str, ...] = ()) -> None:
        """``tls``: ``--tls-cert``, ``--tls-key`` (and ``--tls-client-ca``) files."""
        cmd = [sys.executable, "-m", "tests.mllp_receiver", "--port", str(self.port),
               "--record", str(self.record), "--answer", answer]  # fmt: skip
        for flag, path in zip(("--tls-cert", "--tls-key", "--tls-client-ca"), tls, strict=False):
            cmd += [flag, path]
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "listening <port>" once it accepts connections
        assert line.startswith("listening "), line
        self.port = int(line.split()[1])
        self._proc = proc

    def kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()

    def records(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        lines = self.record.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def destination(self, **values: Any) -> Destination:
        options: dict[str, Any] = {"ack_timeout": 2.0, "connect_timeout": 2.0,
                                   "retry_first": 0.05, "retry_max": 0.2}  # fmt: skip
        options.update(values)
        return Destination("ris", "127.0.0.1", self.port, **options)


def entry(n: int) -> Dataset:
    ds = Dataset()
    ds.PatientName = "DOE^JOHN"
    ds.PatientID = f"P-{n}"
    ds.AccessionNumber = f"ACC-{n}"
    ds.PlacerOrderNumberImagingServiceRequest = f"PL-{n}"
    ds.FillerOrderNumberImagingServiceRequest = f"FI-{n}"
    ds.StudyInstanceUID = f"1.2.826.0.1.3680043.10.1234.{n}"
    ds.RequestedProcedureID = f"RP-{n}"
    sps = Dataset()
    sps.ScheduledStationAETitle = "CT1"
    sps.Modality = "CT"
    sps.ScheduledProcedureStepStartDate = "20261201"
    sps.ScheduledProcedureStepID = f"SPS-{n}"
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def put_orders(store: WorklistStore, count: int, origin: str = "RIS", first: int = 0) -> list[str]:
    """``count`` orders of one step each (numbered from ``first``), from sender ``origin``;
    their entry ids."""
    numbers = range(first, first + count)
    changes = [OrderChange(f"O-{n}", OrderAction.SCHEDULE, (entry(n),), origin=origin)
               for n in numbers]  # fmt: skip
    store.apply(changes, None)
    return [store.keys.entry_id(f"O-{n}", 1) for n in numbers]


def edits(store: WorklistStore) -> EntryEdits:
    return EntryEdits(store.client, store.keys, store.scripts, outbound=ROUTES)


def set_status(store: WorklistStore, entry_id: str, status: str) -> None:
    e = edits(store)
    e.set_status(e.read(entry_id), status)


def queue(store: WorklistStore) -> OutboundQueue:
    return OutboundQueue(store.client, store.keys, store.scripts, "ris")


def sender(
    store: WorklistStore, destination: Destination, metrics: OutboundMetrics | None = None
) -> OutboundSender:
    spec = outbound_spec()
    return OutboundSender(queue(store), destination, lambda: spec, connect_destination,
                          application="MWL_BROKER", metrics=metrics)  # fmt: skip
