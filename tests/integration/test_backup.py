"""``mwl-broker backup`` of a running broker, restored onto fresh brokers (another key
secret, and the same one): the same C-FIND answers, MPPS instances, mapping history,
logins and tokens; resends and aliases decide as before."""

from __future__ import annotations

import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from broker.app import Broker
from broker.cli import main
from broker.store.mpps import MppsStore
from tests import schema1_data as s1
from tests import schema2_data as s2
from tests.broker_runner import running_broker
from tests.integration.test_key_migration import send
from tests.redis_replies import as_text, stream_rows

SPS_ID = 0x00400009  # Scheduled Procedure Step ID


@dataclass
class Source:
    broker: Broker
    data_dir: Path
    token: str
    answers: list[Any]


@pytest.fixture(autouse=True)
def _no_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in __import__("os").environ if n.startswith("MWL_BROKER_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Source]:
    """A running broker with every kind of data; its key secret is its data directory's."""
    data_dir = tmp_path / "a"
    with running_broker(s2.settings(data_dir, redis_key_secret=None)) as broker:
        ports = broker.endpoints
        assert ports is not None and broker.services is not None
        token = s2.fill(broker.services, ports.hl7_port, ports.dicom_port, ports.ae_title)
        yield Source(broker, data_dir, token, s2.answers(ports.dicom_port, ports.ae_title))


def cli(*args: str) -> int:
    return main(list(args))


def restored(tmp_path: Path, backup: Path, name: str, secret_of: Path | None = None) -> Path:
    data_dir = tmp_path / name
    if secret_of is not None:  # and a broker started there once: it seeded its mappings
        (data_dir / "redis").mkdir(parents=True)
        shutil.copy(secret_of / "redis" / "key-secret", data_dir / "redis" / "key-secret")
        with running_broker(s2.settings(data_dir, redis_key_secret=None)) as broker:
            assert broker.services is not None
            assert broker.services.mapping_versions.active_number() == 1
    assert cli("restore", str(backup), "--data-dir", str(data_dir)) == 0
    return data_dir


def mpps_records(broker: Broker) -> dict[str, tuple[Any, ...]]:
    """Each instance with its linked entries by accession and SPS ID (ids differ by secret)."""
    assert broker.store is not None
    mpps, client = MppsStore(broker.store), broker.store.client
    out = {}
    for raw in client.zrange(broker.store.keys.mpps_by_time(), 0, -1, withscores=True):
        uid = as_text(raw[0])
        record = mpps.get(uid)
        assert record is not None
        linked = sorted(
            (str(e.AccessionNumber), str(e.ScheduledProcedureStepSequence[0][SPS_ID].value))
            for _, e in mpps.entries(record.entries)
        )
        out[uid] = (record.status, record.ds.to_json_dict(), record.aet, record.created,
                    record.updated, raw[1], linked)  # fmt: skip
    return out


def history(broker: Broker) -> tuple[list[tuple[Any, ...]], int | None]:
    assert broker.services is not None
    versions = broker.services.mapping_versions
    found = [(v.number, dict(v.files), v.author, v.comment, v.created, v.digest, v.based_on)
             for v in versions.history()]  # fmt: skip
    return found, versions.active_number()


def test_restored_brokers_answer_as_the_source(source: Source, tmp_path: Path) -> None:
    backup = tmp_path / "site.mwlbackup"
    assert cli("backup", str(backup), "--data-dir", str(source.data_dir)) == 0
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    other = restored(tmp_path, backup, "b")
    same = restored(tmp_path, backup, "c", secret_of=source.data_dir)
    assert (other / "redis" / "key-secret").read_bytes() != (
        source.data_dir / "redis" / "key-secret"
    ).read_bytes()
    for data_dir in (other, same):
        with running_broker(s2.settings(data_dir, redis_key_secret=None)) as broker:
            ports = broker.endpoints
            assert ports is not None and broker.services is not None
            assert s2.answers(ports.dicom_port, ports.ae_title) == source.answers
            assert mpps_records(broker) == mpps_records(source.broker)
            assert history(broker) == history(source.broker)
            auth = broker.services.auth
            assert auth.login(s2.USER, s2.PASSWORD, "127.0.0.1").principal.name == s2.USER
            principal = auth.token_principal(source.token)
            assert principal is not None and principal.role.value == "viewer"
            assert broker.store is not None and broker.store.count() == 6
            later = [
                s1.messages()[0],  # a resend: its first ACK, nothing new
                s1.orm(91, "NW", s1.OLDER, "CNRYACC9001"),  # OLDER → OLD → PATIENT
                s1.orm(93, "NW", s1.PATIENT, s1.CANCEL_FIRST),  # canceled before: too late
            ]
            assert send(broker, *later) == ["AA", "AA", "AA"]
            assert broker.store.count() == 7
            (entry,) = [
                a for a in s2.answers(ports.dicom_port, ports.ae_title)[0]
                if a["00080050"]["Value"] == ["CNRYACC9001"]
            ]  # fmt: skip
            assert entry["00100020"]["Value"] == [s1.PATIENT]


def test_backup_and_restore_are_audited_with_counts_only(source: Source, tmp_path: Path) -> None:
    backup = tmp_path / "site.mwlbackup"
    assert cli("backup", str(backup), "--data-dir", str(source.data_dir)) == 0
    target = restored(tmp_path, backup, "b")
    with running_broker(s2.settings(target, redis_key_secret=None)) as broker:
        assert broker.store is not None
        client, keys = broker.store.client, broker.store.keys
        rows = stream_rows(client, keys.audit())
        (record,) = [f for _, f in rows if f.get(b"type") == b"restore"]
        text = b" ".join(record.values()).decode()
        assert '"order": 6' in text and "success" in text
        assert not any(c in text for c in s1.CANARIES)
    assert source.broker.store is not None
    rows = stream_rows(source.broker.store.client, source.broker.store.keys.audit())
    (record,) = [f for _, f in rows if f.get(b"type") == b"backup"]
    text = b" ".join(record.values()).decode()
    assert '"mpps": 2' in text and not any(c in text for c in s1.CANARIES)
