"""SPS Start Date/Time queries: the broker answers as DCMTK ``wlmscpfs`` does, on the same files.

One folder of worklist files, written here with pydicom, is served by DCMTK 3.6.7
``wlmscpfs`` (``DIR/WLMSCPFS/*.wl`` and a ``lockfile``) and imported into a
running broker (real embedded redis-server). Every query goes to both over the
network, through one pynetdicom association per server (neither negotiates
anything, PS3.4 K.5.1), and the Accession Numbers answered are compared; a few
go through DCMTK ``findscu`` too.

The queries are the product of the SPS Start Date key forms (single date,
``a-b``, ``a-``, ``-b``, universal, absent) and the SPS Start Time key forms
(single time, ``a-b``, ``a-``, ``-b``, ``a-b`` over midnight, universal,
absent), a few values of each (11 date keys by 14 time keys: 154 queries), over
a week of entries at whole minutes (several a day, at 00:00 and at 23:59). The
answers are equal for every query but one class, where the difference is the
documented one (docs/dicom-conformance.md 3.1): to a closed date range with an
open time range (``a-b`` with ``a-`` or ``-b``) wlmscpfs answers one period,
taking the missing time bound as 00:00, where the broker matches key by key
(C.2.2.2.5.4 combines only ranges of the same form). Both sides of that
difference are checked, so that a change on either side fails.

Entries timed to the second (on another station) show a second difference, in
a test of its own with literal answers: wlmscpfs takes a time key written to
the minute as that minute's first second (``1145`` is 11:45:00, so ``-2359``
ends at 23:59:00), the broker as the whole minute (``broker.dicom.matching``:
a value of reduced precision covers what it leaves out). Written to the second,
the same keys get the same answers from both.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom import config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pynetdicom import AE

from broker.dicom.server import configure_pynetdicom_logging
from broker.dicom.status import Status
from broker.services.importer import FileOutcome, import_folder
from tests.broker_runner import broker_settings, running_broker
from tests.conftest import require_tool
from tests.scu import ModalityWorklistInformationFind, Verification

pytestmark = pytest.mark.interop

WLMSCPFS_AE = "WLMSCPFS"  # wlmscpfs serves DIR/<called AE title>/*.wl
CALLING = "DATETIME_SCU"
STATION = "CT1"  # the week at whole minutes
SECONDS_STATION = "CT2"  # entries timed to the second
STARTUP_SECONDS = 30

# Accession Number: (SPS Start Date, SPS Start Time), station CT1.
WEEK = {
    "A01": ("20240103", "080000"),
    "A02": ("20240103", "235900"),
    "A03": ("20240104", "000000"),
    "A04": ("20240104", "093000"),
    "A05": ("20240104", "180000"),
    "A06": ("20240105", "000000"),
    "A07": ("20240105", "060000"),
    "A08": ("20240105", "120000"),
    "A09": ("20240105", "174500"),
    "A10": ("20240105", "233000"),
    "A11": ("20240106", "000000"),
    "A12": ("20240106", "001500"),
    "A13": ("20240106", "100000"),
    "A14": ("20240106", "214500"),
    "A15": ("20240107", "063000"),
    "A16": ("20240107", "180000"),
    "A17": ("20240107", "235900"),
    "A18": ("20240108", "000000"),
    "A19": ("20240108", "114500"),
    "A20": ("20240109", "090000"),
    "A21": ("20240109", "230000"),
}
# Station CT2: times with seconds.
TO_THE_SECOND = {
    "S01": ("20240104", "235959"),
    "S02": ("20240106", "114530"),
    "S03": ("20240108", "000030"),
    "S04": ("20240105", "175959"),
}

# Key values by form; None: the key is absent, "": universal matching.
DATE_KEYS: dict[str, list[str | None]] = {
    "single": ["20240105", "20240108"],
    "a-b": ["20240104-20240106", "20240105-20240105", "20240103-20240109"],
    "a-": ["20240105-", "20240108-"],
    "-b": ["-20240105", "-20240106"],
    "universal": [""],
    "absent": [None],
}
TIME_KEYS: dict[str, list[str | None]] = {
    "single": ["0000", "1145", "174500"],
    "a-b": ["0600-1800", "1200-2359", "000000-120000"],
    "a-": ["1800-", "0000-"],
    "-b": ["-0600", "-2359"],
    "over midnight": ["1800-0600", "2300-0100"],
    "universal": [""],
    "absent": [None],
}

Query = tuple[str | None, str | None]  # (date key, time key)
GRID: list[Query] = [
    (date_key, time_key)
    for date_keys in DATE_KEYS.values()
    for date_key in date_keys
    for time_keys in TIME_KEYS.values()
    for time_key in time_keys
]


def combined_by_wlmscpfs_alone(query: Query) -> bool:
    """A closed date range with an open time range: one period for wlmscpfs only."""
    date_key, time_key = query
    return date_key in DATE_KEYS["a-b"] and (
        time_key in TIME_KEYS["a-"] or time_key in TIME_KEYS["-b"]
    )


SAME = [q for q in GRID if not combined_by_wlmscpfs_alone(q)]
DIFFERENT = [q for q in GRID if combined_by_wlmscpfs_alone(q)]


def query_id(query: Query) -> str:
    return "|".join("absent" if k is None else k or "universal" for k in query)


# -- the worklist folder --------------------------------------------------------


def worklist_item(accession: str, station: str, start_date: str, start_time: str) -> Dataset:
    """A worklist item wlmscpfs accepts: every Type 1 return key it checks is present."""
    n = int(accession[1:])
    ds = Dataset()
    ds.AccessionNumber = accession
    ds.PatientName = f"TEST^{accession}"
    ds.PatientID = f"ID-{accession}"
    ds.StudyInstanceUID = f"1.2.826.0.1.3680043.10.1024.{ord(accession[0])}.{n}"
    ds.RequestedProcedureID = f"RP-{accession}"
    ds.RequestedProcedureDescription = "TEST PROCEDURE"
    ds.ReferencedStudySequence = []
    ds.ReferencedPatientSequence = []
    step = Dataset()
    step.ScheduledStationAETitle = station
    step.Modality = "CT"
    step.ScheduledProcedureStepStartDate = start_date
    step.ScheduledProcedureStepStartTime = start_time
    step.ScheduledProcedureStepDescription = "TEST STEP"
    step.ScheduledProcedureStepID = f"SPS-{accession}"
    step.ScheduledProcedureStepStatus = "SCHEDULED"
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def write_worklist_folder(root: Path) -> Path:
    """``root/WLMSCPFS/*.wl`` (bare implicit VR datasets) and the lockfile wlmscpfs wants."""
    folder = root / WLMSCPFS_AE
    folder.mkdir(parents=True)
    (folder / "lockfile").touch()
    for station, entries in ((STATION, WEEK), (SECONDS_STATION, TO_THE_SECOND)):
        for accession, (start_date, start_time) in entries.items():
            item = worklist_item(accession, station, start_date, start_time)
            item.save_as(folder / f"{accession}.wl", implicit_vr=True, little_endian=True)
    return root


# -- the two servers ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def echo(port: int, called: str) -> bool:
    """Whether a C-ECHO on a new association succeeds."""
    ae = AE(ae_title=CALLING)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_echo()
        return status is not None and bool(status.Status == Status.SUCCESS)
    finally:
        assoc.release()


def start_wlmscpfs(root: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``wlmscpfs`` on a free loopback port, once it answers a C-ECHO.

    The port is found by binding port 0 and closing; if another process takes it
    first, wlmscpfs exits and another port is tried.
    """
    exe = require_tool("wlmscpfs")
    env = {**os.environ, "TCP_NODELAY": "1"}  # DCMTK leaves Nagle on otherwise
    for _ in range(3):
        port = free_port()
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [exe, "-dhl", "-dfp", str(root), str(port)],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        if wait_until_listening(proc, port) and echo(port, WLMSCPFS_AE):
            return proc, port
        stop(proc)
    pytest.fail(f"wlmscpfs did not start: {log.read_text(errors='replace')[-2000:]}")


def wait_until_listening(proc: subprocess.Popen[bytes], port: int) -> bool:
    """Poll a TCP connect until it succeeds (True), the process exits or the deadline passes."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            try:
                proc.wait(timeout=0.05)  # the pause between tries ends early if it exits
                return False
            except subprocess.TimeoutExpired:
                pass
    return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def identifier(station: str, query: Query) -> Dataset:
    """A modality's query: its station, the SPS start keys as given, Accession Number returned.

    Keys are set without pydicom's validation: ``20240104-`` is a key, not a DA value.
    """
    date_key, time_key = query
    keys = {
        "ScheduledStationAETitle": station,
        "ScheduledProcedureStepStartDate": date_key,
        "ScheduledProcedureStepStartTime": time_key,
        "ScheduledProcedureStepID": "",
    }
    step = Dataset()
    for keyword, value in keys.items():
        if value is not None:
            tag = tag_for_keyword(keyword)
            assert tag is not None
            step.add(DataElement(tag, dictionary_VR(tag), value, validation_mode=config.IGNORE))
    ds = Dataset()
    ds.AccessionNumber = ""
    ds.ScheduledProcedureStepSequence = [step]
    return ds


@dataclass
class Peer:
    """One SCP, queried over one association; answers kept per query."""

    port: int
    called: str
    assoc: Any = None
    answered: dict[tuple[str, Query], list[str]] = field(default_factory=dict)

    def open(self) -> None:
        ae = AE(ae_title=CALLING)
        ae.add_requested_context(ModalityWorklistInformationFind)
        self.assoc = ae.associate("127.0.0.1", self.port, ae_title=self.called)
        assert self.assoc.is_established, f"no association with {self.called}"
        # pynetdicom sends a C-FIND-RQ as two PDUs and leaves Nagle on: against a peer
        # that delays its ACKs (wlmscpfs) every query would stall ~40 ms.
        self.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self.assoc is not None and self.assoc.is_established:
            self.assoc.release()

    def wait_for_reactor(self) -> None:
        """Until the association's reactor thread has resumed after the C-FIND.

        pynetdicom 3.0.4 pauses it during a C-FIND and wakes it at the end; a request
        sent before it has run can lose its first response to it ("Received unexpected
        C-FIND service message"; seen about once in 700 back-to-back queries).
        """
        for _ in range(10_000):
            if not self.assoc._is_paused:
                return
            time.sleep(0.0001)

    def answers(self, query: Query, station: str = STATION) -> list[str]:
        """The Accession Numbers answered, sorted; the C-FIND must end in Success."""
        if (station, query) not in self.answered:
            found: list[str] = []
            final = None
            for status, ds in self.assoc.send_c_find(
                identifier(station, query), ModalityWorklistInformationFind
            ):
                assert status is not None, f"{self.called}: no response to {query}"
                if status.Status in (Status.PENDING, Status.PENDING_WARNING):
                    found.append(str(ds.AccessionNumber))
                else:
                    final = status.Status
            assert final == Status.SUCCESS, f"{self.called}: {query} ended with {final}"
            self.wait_for_reactor()
            self.answered[station, query] = sorted(found)
        return self.answered[station, query]


@dataclass
class Servers:
    wlmscpfs: Peer
    broker: Peer


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    configure_pynetdicom_logging()
    root = write_worklist_folder(tmp_path_factory.mktemp("worklists"))
    proc, port = start_wlmscpfs(root, tmp_path_factory.mktemp("wlmscpfs") / "wlmscpfs.log")
    try:
        settings = broker_settings(
            tmp_path_factory.mktemp("broker"),
            retention_interval_seconds=0,  # the entries are in 2024: no purge of stale steps
            dicom_network_timeout=600,  # one association for the whole module
        )
        with running_broker(settings) as broker:
            assert broker.store is not None and broker.endpoints is not None
            reports = list(import_folder(broker.store, root))
            assert [r.outcome for r in reports] == [FileOutcome.IMPORTED] * len(reports)
            assert broker.store.count() == len(WEEK) + len(TO_THE_SECOND)
            peers = Servers(
                Peer(port, WLMSCPFS_AE), Peer(broker.endpoints.dicom_port, settings.ae_title)
            )
            peers.wlmscpfs.open()
            peers.broker.open()
            try:
                yield peers
            finally:
                peers.wlmscpfs.close()
                peers.broker.close()
    finally:
        stop(proc)


# -- the comparison -------------------------------------------------------------


def test_both_serve_every_entry(servers: Servers) -> None:
    """wlmscpfs skips files it finds incomplete: every one must count."""
    for station, entries in ((STATION, WEEK), (SECONDS_STATION, TO_THE_SECOND)):
        assert servers.wlmscpfs.answers(("", ""), station) == sorted(entries)
        assert servers.broker.answers(("", ""), station) == sorted(entries)


@pytest.mark.parametrize("query", SAME, ids=[query_id(q) for q in SAME])
def test_same_answers(servers: Servers, query: Query) -> None:
    assert servers.broker.answers(query) == servers.wlmscpfs.answers(query)


def wlmscpfs_period(query: Query) -> list[str]:
    """What wlmscpfs answers to a closed date range with an open time range: one period
    from the first date at the time's lower bound to the last date at its upper bound,
    a missing bound being 00:00 (and a bound written to the minute its first second)."""
    date_key, time_key = query
    assert date_key is not None and time_key is not None
    first_date, last_date = date_key.split("-")
    low, high = (bound.ljust(6, "0") for bound in time_key.split("-"))
    return sorted(a for a, (d, t) in WEEK.items() if first_date + low <= d + t <= last_date + high)


@pytest.mark.parametrize("query", DIFFERENT, ids=[query_id(q) for q in DIFFERENT])
def test_closed_date_range_with_open_time_range(servers: Servers, query: Query) -> None:
    """wlmscpfs answers one period; the broker matches the keys apart (C.2.2.2.5.4)."""
    date_key, time_key = query
    assert servers.wlmscpfs.answers(query) == wlmscpfs_period(query)
    key_by_key = set(servers.broker.answers((date_key, None))) & set(
        servers.broker.answers((None, time_key))
    )
    assert servers.broker.answers(query) == sorted(key_by_key)


def test_the_difference_by_example(servers: Servers) -> None:
    """18:00 on the 4th to 00:00 on the 6th, against 18:00 or later on any of the three days."""
    query = ("20240104-20240106", "1800-")
    assert servers.wlmscpfs.answers(query) == ["A05", "A06", "A07", "A08", "A09", "A10", "A11"]
    assert servers.broker.answers(query) == ["A05", "A10", "A14"]


# (date key, time key) -> (wlmscpfs's answers, the broker's answers), station CT2.
MINUTE_KEYS: dict[Query, tuple[list[str], list[str]]] = {
    ("", "1145"): ([], ["S02"]),
    ("20240108-", "0000"): ([], ["S03"]),
    ("20240104", "-2359"): ([], ["S01"]),
    ("-20240106", "1200-2359"): (["S04"], ["S01", "S04"]),
    ("20240103-20240104", "1800-2359"): ([], ["S01"]),  # one period, to 23:59 on the 4th
    ("20240105", "1700-1759"): ([], ["S04"]),
}


def to_the_second(query: Query) -> Query:
    """The time key with each value written out to the second (``1145`` as ``114500``)."""
    date_key, time_key = query
    assert time_key is not None
    return date_key, "-".join(part.ljust(6, "0") if part else "" for part in time_key.split("-"))


@pytest.mark.parametrize("query", list(MINUTE_KEYS), ids=[query_id(q) for q in MINUTE_KEYS])
def test_time_keys_written_to_the_minute(servers: Servers, query: Query) -> None:
    """wlmscpfs reads ``1145`` as 11:45:00, the broker as 11:45:00 to 11:45:59.999999;
    written to the second, the key means the same to both."""
    expected_wlmscpfs, expected_broker = MINUTE_KEYS[query]
    assert servers.wlmscpfs.answers(query, SECONDS_STATION) == expected_wlmscpfs
    assert servers.broker.answers(query, SECONDS_STATION) == expected_broker
    seconds = to_the_second(query)
    assert servers.wlmscpfs.answers(seconds, SECONDS_STATION) == expected_wlmscpfs
    assert servers.broker.answers(seconds, SECONDS_STATION) == expected_wlmscpfs


# -- DCMTK findscu, which negotiates nothing --------------------------------------

FINDSCU_QUERIES: list[Query] = [
    ("20240104-20240106", "1000-1800"),  # one period
    ("20240104-20240106", "1800-0600"),  # one period over midnight
    ("20240105-", "-0600"),  # apart
    ("20240104-20240106", "1800-"),  # the difference
    ("", "0600-1800"),
    ("-20240105", None),
]


def findscu(peer: Peer, out: Path, query: Query) -> list[str]:
    """Accession Numbers ``findscu -W`` receives for these SPS start keys on station CT1."""
    exe = require_tool("findscu")
    out.mkdir(parents=True)
    keys = ["AccessionNumber", f"(0040,0100)[0].ScheduledStationAETitle={STATION}"]
    for keyword, value in zip(
        ("ScheduledProcedureStepStartDate", "ScheduledProcedureStepStartTime"), query, strict=True
    ):
        if value is not None:
            keys.append(f"(0040,0100)[0].{keyword}" + (f"={value}" if value else ""))
    args = [exe, "-W", "-aet", CALLING, "-aec", peer.called, "-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    result = subprocess.run(
        [*args, "127.0.0.1", str(peer.port)],
        capture_output=True, timeout=60, check=False, env={**os.environ, "TCP_NODELAY": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return sorted(str(pydicom.dcmread(p).AccessionNumber) for p in out.glob("rsp*.dcm"))


@pytest.mark.parametrize("query", FINDSCU_QUERIES, ids=[query_id(q) for q in FINDSCU_QUERIES])
def test_findscu_gets_the_same(servers: Servers, tmp_path: Path, query: Query) -> None:
    for name, peer in (("broker", servers.broker), ("wlmscpfs", servers.wlmscpfs)):
        assert findscu(peer, tmp_path / name, query) == peer.answers(query), name
