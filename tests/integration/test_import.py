"""`mwl-broker import`: worklist folders of DCMTK wlmscpfs and Orthanc into a real store.

The importer runs against a real redis-server (the ``store`` fixture); the
command runs as a person runs it, in its own process. Worklist files are written
here with pydicom; the tests marked ``corpus`` also import the public corpus's
``dicom/orthanc-mirror`` (Orthanc's sample worklist, Part-10, ISO_IR 100) and
``orthanc-tests/encodings`` (a Latin-1 file from an HL7 gateway).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from broker.services.importer import FileOutcome, FileReport, import_folder
from broker.store.worklist import WorklistStore
from broker.worklist.model import CandidateCriteria, OrderAction, OrderChange
from tests.broker_runner import REPO
from tests.corpus import corpus_path

MWL_SOP_CLASS = "1.2.276.0.7230010.3.1.0.1"  # what DCMTK writes in worklist files


def item(
    accession: str = "A1",
    *,
    study: str | None = "1.2.3.4",
    sps_ids: tuple[str, ...] = ("SPS1",),
    status: str = "",
    name: str = "DOE^JOHN",
    charset: str | list[str] | None = None,
) -> Dataset:
    ds = Dataset()
    if charset is not None:
        ds.SpecificCharacterSet = charset
    ds.AccessionNumber = accession
    ds.PatientName = name
    ds.PatientID = f"P-{accession}"
    if study is not None:
        ds.StudyInstanceUID = study
    ds.RequestedProcedureID = f"RP-{accession}"
    steps = []
    for sps_id in sps_ids:
        sps = Dataset()
        sps.Modality = "CT"
        sps.ScheduledStationAETitle = "CT1"
        sps.ScheduledProcedureStepStartDate = "20261125"
        sps.ScheduledProcedureStepID = sps_id
        if status:
            sps.ScheduledProcedureStepStatus = status
        steps.append(sps)
    ds.ScheduledProcedureStepSequence = steps
    return ds


def write(path: Path, ds: Dataset, *, part10: bool = True) -> Path:
    """A worklist file: Part-10 (preamble, meta, explicit VR) or a bare implicit-VR dataset."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if part10:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = UID(MWL_SOP_CLASS)
        ds.file_meta.MediaStorageSOPInstanceUID = UID("1.2.3.4.5")
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.save_as(path, implicit_vr=True, little_endian=True)
    return path


def run(store: WorklistStore, root: Path, *, dry_run: bool = False) -> dict[str, FileReport]:
    return {r.name: r for r in import_folder(store, root, dry_run=dry_run)}


def outcomes(reports: dict[str, FileReport]) -> dict[str, FileOutcome]:
    return {name: r.outcome for name, r in reports.items()}


def all_entries(store: WorklistStore) -> list[Dataset]:
    return list(store.candidates(CandidateCriteria()))


def only_entry(store: WorklistStore) -> Dataset:
    (entry,) = all_entries(store)
    return entry


def sample_folder(folder: Path, count: int = 10) -> Path:
    """A folder of Part-10 worklist files as a wlmscpfs site keeps them (ISO_IR 100)."""
    for n in range(1, count + 1):
        ds = item(f"ACC{n}", study=f"1.2.826.0.1.3680043.10.543.77.{n}", sps_ids=(f"SPS{n}",),
                  name=f"MÜLLER{n}^JÜRGEN", charset="ISO_IR 100")  # fmt: skip
        write(folder / f"wklist{n}.wl", ds)
    return folder


def test_a_folder_imports_then_updates_in_place(store: WorklistStore, tmp_path: Path) -> None:
    folder = sample_folder(tmp_path / "wl")
    first = run(store, folder)
    assert set(outcomes(first).values()) == {FileOutcome.IMPORTED}
    assert len(first) == 10 and store.count() == 10
    identity = "IMPORT:1.2.826.0.1.3680043.10.543.77.1|RP-ACC1|SPS1"
    assert first["wklist1.wl"].detail == f"1 step: {identity}"
    ids = store.order_entry_ids(identity)
    again = run(store, folder)
    assert set(outcomes(again).values()) == {FileOutcome.UPDATED}
    assert store.count() == 10
    assert store.order_entry_ids(identity) == ids


@pytest.mark.corpus
def test_orthanc_folder_imports_then_updates_in_place(store: WorklistStore, tmp_path: Path) -> None:
    folder = tmp_path / "wl"
    shutil.copytree(corpus_path("dicom", "orthanc-mirror"), folder)
    first = run(store, folder)
    assert set(outcomes(first).values()) == {FileOutcome.IMPORTED}
    assert len(first) == 10 and store.count() == 10
    assert (
        first["wklist1.wl"].detail == "1 step: IMPORT:1.2.276.0.7230010.3.2.101|RP454G234|SPD3445"
    )
    ids = store.order_entry_ids("IMPORT:1.2.276.0.7230010.3.2.101|RP454G234|SPD3445")
    again = run(store, folder)
    assert set(outcomes(again).values()) == {FileOutcome.UPDATED}
    assert store.count() == 10
    assert store.order_entry_ids("IMPORT:1.2.276.0.7230010.3.2.101|RP454G234|SPD3445") == ids


def test_dry_run_writes_nothing(store: WorklistStore, tmp_path: Path) -> None:
    folder = sample_folder(tmp_path / "wl")
    reports = run(store, folder, dry_run=True)
    assert set(outcomes(reports).values()) == {FileOutcome.IMPORTED}
    assert all(r.detail.startswith("(dry run) ") for r in reports.values())
    assert store.count() == 0


def test_latin1_file_is_stored_as_unicode(store: WorklistStore, tmp_path: Path) -> None:
    """PS3.5 6.1: the file's ISO_IR 100 decides how its bytes read; the entry is Unicode."""
    ds = item("A1", sps_ids=("",), name="VANILLÉ^LAURA^^^Mme", charset="ISO_IR 100")
    del ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID
    ds.RequestedProcedureDescription = "ÉCHOGRAPHIE"
    ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepDescription = "ÉCHOGRAPHIE"
    path = write(tmp_path / "wl" / "latin1.wl", ds)
    assert "VANILLÉ".encode("latin-1") in path.read_bytes()
    reports = run(store, tmp_path / "wl")
    # the file has no SPS ID: its identity is its name
    assert reports["latin1.wl"].detail == "1 step: IMPORT-FILE:latin1.wl"
    entry = only_entry(store)
    assert str(entry.PatientName) == "VANILLÉ^LAURA^^^Mme"
    assert entry.RequestedProcedureDescription == "ÉCHOGRAPHIE"
    assert (
        entry.ScheduledProcedureStepSequence[0].ScheduledProcedureStepDescription == "ÉCHOGRAPHIE"
    )
    assert "SpecificCharacterSet" not in entry


@pytest.mark.corpus
def test_orthanc_latin1_file_is_stored_as_unicode(store: WorklistStore, tmp_path: Path) -> None:
    wl = tmp_path / "wl"
    wl.mkdir()
    shutil.copy(corpus_path("dicom", "orthanc-tests", "encodings", "issue49-latin1.wl"),
                wl / "issue49.wl")  # fmt: skip
    reports = run(store, wl)
    assert reports["issue49.wl"].detail == "1 step: IMPORT-FILE:issue49.wl"
    entry = only_entry(store)
    assert str(entry.PatientName) == "VANILLÉ^LAURA^^^Mme"
    assert entry.RequestedProcedureDescription == "ÉCHOGRAPHIE"


def test_iso2022_japanese_file(store: WorklistStore, tmp_path: Path) -> None:
    """PS3.5 H.3.1: ISO 2022 IR 87 with escape sequences, read into Unicode."""
    wl = tmp_path / "wl"
    name = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    write(wl / "jp.wl", item(name=name, charset=["", "ISO 2022 IR 87"]))
    assert b"\x1b$B" in (wl / "jp.wl").read_bytes()
    assert outcomes(run(store, wl)) == {"jp.wl": FileOutcome.IMPORTED}
    assert str(only_entry(store).PatientName) == name


def test_bare_dataset_in_an_ae_folder(store: WorklistStore, tmp_path: Path) -> None:
    """wlmscpfs's layout: DIR/<AE>/*.wl with a lockfile; files without preamble or meta."""
    wl = tmp_path / "wl"
    write(wl / "OFFIS" / "a.wl", item("A1"), part10=False)
    (wl / "OFFIS" / "lockfile").touch()
    (wl / ".hidden.wl").write_bytes(b"junk")
    assert outcomes(run(store, wl)) == {"OFFIS/a.wl": FileOutcome.IMPORTED}
    assert only_entry(store).AccessionNumber == "A1"


def test_bad_files_are_reported_and_the_rest_imported(store: WorklistStore, tmp_path: Path) -> None:
    wl = tmp_path / "wl"
    write(wl / "good.wl", item("A1"))
    (wl / "text.wl").write_text("MSH|^~\\&|not a worklist\r")
    (wl / "empty.wl").write_bytes(b"")
    no_sps = item("A2")
    del no_sps.ScheduledProcedureStepSequence
    write(wl / "no-sps.wl", no_sps)
    empty_sps = item("A3", sps_ids=())
    write(wl / "empty-sps.wl", empty_sps)
    unknown = write(wl / "unknown-charset.wl", item("A4", charset="ISO_IR 100"))
    unknown.write_bytes(unknown.read_bytes().replace(b"ISO_IR 100", b"ISO_IR 999"))
    bad_bytes = write(wl / "bad-utf8.wl", item("A5", name="Zoë^Anna", charset="ISO_IR 192"))
    bad_bytes.write_bytes(bad_bytes.read_bytes().replace("Zoë".encode(), b"Zo\xeb\xeb"))
    (wl / "notes.txt").write_text("migration notes")
    whole = write(tmp_path / "whole.wl", item("A6")).read_bytes()
    sps_tag = whole.index(b"\x40\x00\x00\x01SQ")  # (0040,0100), explicit VR little endian
    (wl / "truncated.wl").write_bytes(whole[: sps_tag + 40])

    reports = run(store, wl)
    assert outcomes(reports) == {
        "bad-utf8.wl": FileOutcome.SKIPPED,
        "empty-sps.wl": FileOutcome.SKIPPED,
        "empty.wl": FileOutcome.SKIPPED,
        "good.wl": FileOutcome.IMPORTED,
        "no-sps.wl": FileOutcome.SKIPPED,
        "notes.txt": FileOutcome.IGNORED,
        "text.wl": FileOutcome.SKIPPED,
        "truncated.wl": FileOutcome.SKIPPED,
        "unknown-charset.wl": FileOutcome.SKIPPED,
    }
    assert reports["text.wl"].detail == "not DICOM"
    assert reports["empty.wl"].detail == "not DICOM"
    assert reports["truncated.wl"].detail == "truncated: the file ends inside (0040,0100)"
    assert reports["no-sps.wl"].detail == "no Scheduled Procedure Step Sequence (0040,0100)"
    assert "has no item" in reports["empty-sps.wl"].detail
    assert reports["unknown-charset.wl"].detail.startswith("unreadable character set: Unknown")
    assert reports["bad-utf8.wl"].detail.startswith("unreadable character set: Failed to decode")
    assert store.count() == 1


def test_each_step_of_a_file_is_an_entry_with_its_status(
    store: WorklistStore, tmp_path: Path
) -> None:
    wl = tmp_path / "wl"
    write(wl / "two.wl", item("A1", sps_ids=("S1", "S2"), status="ARRIVED"))
    reports = run(store, wl)
    assert reports["two.wl"].detail == "2 steps: IMPORT:1.2.3.4|RP-A1|S1, IMPORT:1.2.3.4|RP-A1|S2"
    entries = all_entries(store)
    steps = sorted(
        (e.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID,
         e.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus)
        for e in entries
    )  # fmt: skip
    assert steps == [("S1", "ARRIVED"), ("S2", "ARRIVED")]


def test_identity_falls_back_to_the_file_name(store: WorklistStore, tmp_path: Path) -> None:
    wl = tmp_path / "wl"
    write(wl / "a.wl", item("A1", study=None))
    write(wl / "b.wl", item("B1", sps_ids=("", "")))
    reports = run(store, wl)
    assert reports["a.wl"].detail == "1 step: IMPORT-FILE:a.wl"
    assert reports["b.wl"].detail == "2 steps: IMPORT-FILE:b.wl#1, IMPORT-FILE:b.wl#2"
    assert outcomes(run(store, wl)) == {
        "a.wl": FileOutcome.UPDATED,
        "b.wl": FileOutcome.UPDATED,
    }
    assert store.count() == 3


def test_two_files_with_one_identity(store: WorklistStore, tmp_path: Path) -> None:
    wl = tmp_path / "wl"
    write(wl / "a.wl", item("A1"))
    write(wl / "b.wl", item("A1"))
    reports = run(store, wl)
    assert outcomes(reports) == {"a.wl": FileOutcome.IMPORTED, "b.wl": FileOutcome.SKIPPED}
    assert reports["b.wl"].detail.endswith("as a.wl")


def test_a_step_that_is_over_is_not_scheduled_again(store: WorklistStore, tmp_path: Path) -> None:
    wl = tmp_path / "wl"
    write(wl / "a.wl", item("A1"))
    run(store, wl)
    store.apply(
        [OrderChange("IMPORT:1.2.3.4|RP-A1|SPS1", OrderAction.SET_STATUS, status="COMPLETED")], None
    )
    report = run(store, wl)["a.wl"]
    assert report.outcome is FileOutcome.UNCHANGED
    assert "already completed" in report.notes[-1]


# -- the command, in its own process ---------------------------------------


def cli_import(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", "import", *args, "--data-dir", str(data)],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
        env={k: v for k, v in os.environ.items() if not k.startswith("MWL_BROKER_")},
    )  # fmt: skip


def test_command_without_a_running_broker(tmp_path: Path) -> None:
    folder = tmp_path / "wl"
    write(folder / "good.wl", item("A1"))
    dry = cli_import("--dry-run", str(folder), data=tmp_path / "data")
    assert dry.returncode == 0, dry.stderr
    assert "good.wl: would be imported: 1 step: IMPORT:1.2.3.4|RP-A1|SPS1" in dry.stdout
    assert "dry run, nothing written: 1 imported" in dry.stdout

    (folder / "bad.wl").write_text("not DICOM")
    done = cli_import(str(folder), data=tmp_path / "data")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "bad.wl: skipped: not DICOM" in done.stdout
    assert "good.wl: imported: " in done.stdout
    assert "1 imported, 1 skipped" in done.stdout
    assert done.stderr == ""
    assert not (tmp_path / "data" / "redis" / "redis.pid").exists()

    again = cli_import(str(folder / "missing"), data=tmp_path / "data")
    assert again.returncode == 1 and "is not a folder" in again.stderr


def test_command_help_lists_import() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "broker.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert "import" in result.stdout
