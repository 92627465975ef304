"""A real ``mwl-broker serve`` process for the conformance run, and its worklist seen by C-FIND."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pydicom.dataset import Dataset
from pynetdicom import AE

from tests.scu import ModalityWorklistInformationFind

REPO = Path(__file__).resolve().parents[2]
MAPPINGS = REPO / "mappings"

_PENDING = (0xFF00, 0xFF01)
_RETURN_KEYS = (
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
    "AccessionNumber", "StudyInstanceUID", "RequestedProcedureID",
    "RequestedProcedureDescription", "PlacerOrderNumberImagingServiceRequest",
    "FillerOrderNumberImagingServiceRequest", "ReferringPhysicianName",
)  # fmt: skip
_SPS_KEYS = (
    "ScheduledProcedureStepID", "Modality", "ScheduledStationAETitle",
    "ScheduledProcedureStepStartDate", "ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepDescription", "ScheduledProcedureStepStatus",
)  # fmt: skip

Identity = tuple[str, str, str, str]
Worklist = dict[Identity, Counter[str]]
"""Entries by (Study Instance UID, Requested Procedure ID, SPS ID, Accession), as JSON."""


class BrokerExited(RuntimeError):
    """The broker process is gone, or never became ready."""


@dataclass(frozen=True)
class Diff:
    """How the worklist changed between two snapshots."""

    created: int
    changed: int
    removed: int
    total: int

    @property
    def any(self) -> bool:
        return bool(self.created or self.changed or self.removed)


def diff(before: Worklist, after: Worklist) -> Diff:
    """Entries created, changed (same identity, other content) and removed."""
    created = sum(sum(after[k].values()) for k in after.keys() - before.keys())
    removed = sum(sum(before[k].values()) for k in before.keys() - after.keys())
    changed = sum(1 for k in after.keys() & before.keys() if after[k] != before[k])
    total = sum(sum(c.values()) for c in after.values())
    return Diff(created, changed, removed, total)


class BrokerProcess:
    """``python -m broker.cli serve`` on 127.0.0.1, its own data directory; ports 0 unless
    ``ports`` (HL7, DICOM, admin) names others. A listener the process does not run
    (setting ``roles``) has port 0 here."""

    def __init__(
        self,
        data_dir: Path,
        log_file: Path,
        *,
        log_level: str = "INFO",
        env: Mapping[str, str] | None = None,
        ports: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        self._log = log_file.open("wb")
        hl7, dicom, admin_port = (str(port) for port in ports)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "broker.cli", "serve", "--hl7-host", "127.0.0.1",
             "--hl7-port", hl7, "--dicom-host", "127.0.0.1", "--dicom-port", dicom,
             "--admin-port", admin_port, "--data-dir", str(data_dir),
             "--mappings-dir", str(MAPPINGS), "--log-level", log_level],
            stdout=subprocess.PIPE, stderr=self._log, text=True, cwd=REPO,
            env=None if env is None else {**os.environ, **env},
        )  # fmt: skip
        self.banner = self._read_banner()
        self.hl7_port = self._port("HL7 MLLP")
        self.dicom_port = self._port("DICOM MWL")
        admin = re.search(r"Admin API\s+(http://\S+:\d+)", self.banner)
        self.admin_url = admin[1] if admin else None
        match = re.search(r"AE title (\S+)", self.banner)
        self.ae_title = match[1] if match else "MWL_BROKER"

    def _read_banner(self) -> str:
        assert self.proc.stdout is not None
        lines = []
        for line in self.proc.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                return "".join(lines)
        code = self.proc.wait()
        raise BrokerExited(f"the broker exited with status {code} before it was ready")

    def _port(self, label: str) -> int:
        if re.search(label + r"\s+off \(not in roles\)", self.banner):
            return 0
        match = re.search(label + r"\s+127\.0\.0\.1:(\d+)", self.banner)
        if match is None:
            raise BrokerExited(f"no {label} port in the broker's banner:\n{self.banner}")
        return int(match[1])

    def exit_code(self) -> int | None:
        """None while the broker runs, else its exit status."""
        return self.proc.poll()

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, wait for an orderly stop; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> BrokerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def worklist(self) -> Worklist:
        """Every entry, through a broad MWL C-FIND (PS3.4 K.4.1) with pynetdicom."""
        ae = AE(ae_title="CONFORMANCE")
        ae.add_requested_context(ModalityWorklistInformationFind)
        assoc = ae.associate("127.0.0.1", self.dicom_port, ae_title=self.ae_title)
        if not assoc.is_established:
            raise BrokerExited("the broker refused or dropped the DICOM association")
        entries: Worklist = {}
        try:
            for status, identifier in assoc.send_c_find(_query(), ModalityWorklistInformationFind):
                code = int(status.Status) if status else -1
                if code in _PENDING and identifier is not None:
                    key = _identity(identifier)
                    entries.setdefault(key, Counter())[
                        json.dumps(identifier.to_json_dict(), sort_keys=True)
                    ] += 1
                elif code != 0:
                    raise BrokerExited(f"C-FIND failed with status 0x{code & 0xFFFF:04X}")
        finally:
            assoc.release()
        return entries


def _query() -> Dataset:
    query = Dataset()
    query.SpecificCharacterSet = "ISO_IR 192"
    for keyword in _RETURN_KEYS:
        setattr(query, keyword, "")
    step = Dataset()
    for keyword in _SPS_KEYS:
        setattr(step, keyword, "")
    query.ScheduledProcedureStepSequence = [step]
    return query


def _identity(ds: Dataset) -> Identity:
    steps = ds.get("ScheduledProcedureStepSequence") or [Dataset()]
    return (
        str(ds.get("StudyInstanceUID", "")),
        str(ds.get("RequestedProcedureID", "")),
        str(steps[0].get("ScheduledProcedureStepID", "")),
        str(ds.get("AccessionNumber", "")),
    )


def quiet_pynetdicom() -> None:
    """Our C-FIND client would log identifiers (patient names) at INFO."""
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
