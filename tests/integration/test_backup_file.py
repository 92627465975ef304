"""Backup files that cannot be restored, and Redis that already holds data: a clear error
naming the problem, and nothing half restored."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import redis

from broker.audit.events import AuditType, Outcome
from broker.cli import main
from broker.errors import BrokerError
from broker.services.backup import BackupService
from broker.services.backup_file import FORMAT, BackupFileError
from broker.store.keys import KeySchema
from broker.store.worklist import WorklistStore
from broker.worklist.model import CandidateCriteria, OrderAction, OrderChange
from tests.conftest import keys_for
from tests.integration.admin_helpers import Recorded
from tests.integration.dicom_find_helpers import entry, put

N = 450  # more than two write batches


@pytest.fixture
def backup(store: WorklistStore, tmp_path: Path) -> Path:
    """A backup of N entries (prefix ``mwl``)."""
    put(store, *(entry(f"ACC{n:04}", "CT1", "20261126") for n in range(N)))
    path = tmp_path / "site.mwlbackup"
    BackupService(store.client, lambda: store).backup(path)
    return path


@pytest.fixture
def target(redis_client: redis.Redis) -> WorklistStore:
    """An empty broker on the same Redis, under prefix ``other``."""
    keys = keys_for("other")
    return WorklistStore(redis_client, keys=keys)


def restore(target: WorklistStore, path: Path, **options: Any) -> Any:
    return BackupService(target.client, lambda: target).restore(path, **options)


def keys_of(target: WorklistStore) -> list[bytes]:
    return sorted(k for k in target.client.scan_iter(match="other:*") if b"keyschema" not in k)


def lines(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def write(path: Path, rows: list[dict[str, Any]], *, sealed: bool = True) -> Path:
    """A backup file of ``rows`` (header and records), with a correct manifest."""
    text = "".join(json.dumps(r) + "\n" for r in rows)
    counts: dict[str, int] = {}
    for r in rows[1:]:
        if "kind" in r:
            counts[r["kind"]] = counts.get(r["kind"], 0) + 1
    manifest = {"records": len(rows) - 1, "counts": counts,
                "sha256": hashlib.sha256(text.encode()).hexdigest()}  # fmt: skip
    if sealed:
        text += json.dumps({"manifest": manifest}) + "\n"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(text)
    return path


def test_a_restored_backup_answers_every_entry(backup: Path, target: WorklistStore) -> None:
    result = restore(target, backup)
    assert result.header.counts == {"order": N} and result.same_secret
    assert target.count() == N
    assert len(target.candidate_ids(CandidateCriteria(station_aet="CT1"))) == N
    (one,) = target.candidates(CandidateCriteria(accession_number="ACC0042"))
    assert one.PatientID == "P-ACC0042"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: b[:40] + bytes([b[40] ^ 0xFF]) + b[41:], "corrupted"),
        (lambda b: b"not a backup at all", "not a backup file"),
    ],
)
def test_a_damaged_file_is_refused_before_anything_is_written(
    backup: Path, target: WorklistStore, damage: Any, message: str
) -> None:
    backup.write_bytes(damage(backup.read_bytes()))
    with pytest.raises(BackupFileError, match=message) as caught:
        restore(target, backup)
    assert str(backup) in str(caught.value)
    assert keys_of(target) == []


def test_damage_that_garbles_the_header_is_named_as_damage(
    backup: Path, target: WorklistStore
) -> None:
    """Stored (level 0) deflate blocks decode a flipped byte as a flipped byte: the header is
    no longer one, and only the stream's CRC at its end says why."""
    raw = bytearray(gzip.compress(gzip.decompress(backup.read_bytes()), compresslevel=0))
    raw[raw.index(FORMAT.encode())] ^= 0x20  # the format's first letter, in another case
    backup.write_bytes(bytes(raw))
    with pytest.raises(BackupFileError, match=r"corrupted .*CRC"):
        restore(target, backup)
    assert keys_of(target) == []


def test_a_changed_record_fails_the_checksum(backup: Path, target: WorklistStore) -> None:
    rows = lines(backup)
    rows[5]["entries"][0]["status"] = "COMPLETED"
    write(backup, rows, sealed=False)  # the old manifest kept
    with pytest.raises(BackupFileError, match="checksum does not match"):
        restore(target, backup)
    write(backup, rows[:100], sealed=False)  # cut at a line: no manifest
    with pytest.raises(BackupFileError, match="truncated \\(no manifest"):
        restore(target, backup)
    assert keys_of(target) == []


def test_a_newer_format_is_refused_naming_both_versions(
    tmp_path: Path, target: WorklistStore
) -> None:
    path = write(tmp_path / "new.mwlbackup", [{"format": FORMAT, "version": 7, "broker": "9.0"}])
    with pytest.raises(BackupFileError, match=r"format version 7, written by mwl-broker 9\.0"):
        restore(target, path)
    rows = [{"format": FORMAT, "version": 1}, {"kind": "hologram", "x": 1}]
    with pytest.raises(BackupFileError, match="line 2: unknown record kind 'hologram'"):
        restore(target, write(path, rows))
    rows = [{"format": FORMAT, "version": 1}, {"kind": "order", "order_key": "x"}]
    with pytest.raises(BackupFileError, match="an order record without entries, status, time"):
        restore(target, write(path, rows))


def test_unusable_paths_are_named(tmp_path: Path, target: WorklistStore) -> None:
    service = BackupService(target.client, lambda: target)
    with pytest.raises(BackupFileError, match="no such file"):
        service.restore(tmp_path / "missing.mwlbackup")
    with pytest.raises(BackupFileError, match="a directory"):
        service.restore(tmp_path)
    with pytest.raises(BackupFileError, match="cannot write there"):
        service.backup(tmp_path / "no" / "such" / "dir.mwlbackup")
    assert list(tmp_path.iterdir()) == [tmp_path / "redis"]  # no temporary file left


def test_a_failure_while_writing_removes_what_was_written(
    backup: Path, target: WorklistStore, audit: Recorded
) -> None:
    rows = lines(backup)
    del rows[-1]
    rows[N - 10]["entries"][0]["ds"] = json.dumps({"00100020": {"vr": "LO", "Value": ["X"]}})
    write(backup, rows)  # valid as a file; its entry has no Scheduled Procedure Step
    service = BackupService(target.client, lambda: target, audit)
    with pytest.raises(BackupFileError, match=f"line {N - 9}: a record this broker cannot") as e:
        service.restore(backup)
    assert "exactly one Scheduled Procedure Step" in str(e.value.__cause__)
    assert keys_of(target) == []
    (event,) = audit.events
    assert (event.type, event.outcome) == (AuditType.RESTORE, Outcome.FAILED)


def test_a_file_changed_after_its_check_is_rolled_back(
    backup: Path, target: WorklistStore, tmp_path: Path
) -> None:
    put(target, entry("OTHER1", "MR1", "20261127"))
    rows = lines(backup)
    rows[N]["entries"][0]["status"] = "COMPLETED"  # the last record, after every batch

    def swap(present: Any) -> None:
        write(backup, rows, sealed=False)  # the old manifest kept: the checksum differs

    with pytest.raises(BackupFileError, match="changed while it was restored"):
        restore(target, backup, replace=True, removing=swap)
    assert keys_of(target) == []


def test_a_state_without_any_value_is_restored_under_the_same_secret_only(
    store: WorklistStore, tmp_path: Path
) -> None:
    """A cancel before its order, not in the message log: only its pseudonym is known."""
    store.apply([OrderChange("O-GONE", OrderAction.SET_STATUS, status="CANCELED")], None)
    path = tmp_path / "site.mwlbackup"
    BackupService(store.client, lambda: store).backup(path)
    assert [r["kind"] for r in lines(path)[1:-1]] == ["field"]
    same = WorklistStore(store.client, keys=keys_for("same"))
    assert restore(same, path).skipped == {}
    status = same.client.hget(same.keys.order_status(), same.keys.order_field("O-GONE"))
    assert status == b"CANCELED"
    other = WorklistStore(
        store.client, keys=KeySchema("other", b"another secret, 32+ bytes long!!")
    )
    result = restore(other, path)
    assert result.skipped == {"order and patient states made with another key secret": 1}
    assert keys_of(other) == []


def test_data_present_is_refused_unless_replace(backup: Path, target: WorklistStore) -> None:
    put(target, entry("OTHER1", "MR1", "20261127"))
    held = r"holds data already \(order states: 1, worklist entries: 1\)"
    with pytest.raises(BrokerError, match=held):
        restore(target, backup)
    assert target.count() == 1
    result = restore(target, backup, replace=True)
    assert result.removed == {"worklist entries": 1, "order states": 1}
    assert target.count() == N
    assert target.order_entry_ids("O-OTHER1") == []


def test_the_command_names_the_file_and_what_it_removes(
    backup: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = str(tmp_path / "data")
    assert main(["restore", str(tmp_path / "missing"), "--data-dir", data_dir]) == 1
    assert f"mwl-broker: {tmp_path / 'missing'}: no such file" in capsys.readouterr().err
    assert main(["restore", str(backup), "--data-dir", data_dir]) == 0
    assert main(["restore", str(backup), "--data-dir", data_dir]) == 1
    err = capsys.readouterr().err
    assert f"holds data already (order states: {N}, worklist entries: {N})" in err
    assert main(["restore", str(backup), "--data-dir", data_dir, "--replace"]) == 0
    out = capsys.readouterr().out
    assert f"file checked; removing first: order states: {N}, worklist entries: {N}" in out
    assert f"records: order: {N}" in out
