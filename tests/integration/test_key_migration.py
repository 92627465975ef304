"""A Redis written before pseudonyms (schema 1), taken over by this broker.

The data is a real schema-1 broker's Redis after orders, ADT merges and MPPS
(``tests/schema1_data.py``). After the migration every entry is still found by
Patient ID, accession number and station, aliases still lead to the surviving
patient, MPPS instances are still linked, the order and patient states still
decide, and no key name or identifier field holds any of the identifiers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hl7.client
import pytest
import redis
from pydicom.dataset import Dataset
from pynetdicom import AE

from broker.app import Broker
from broker.cli import main
from broker.errors import ConfigError
from broker.mllp.client import summarize_ack
from broker.store.connection import EmbeddedRedis
from broker.store.keys import KeySchema
from broker.store.mpps import MppsStore
from broker.store.schema1 import is_schema1_id
from broker.store.schema_version import ensure_key_schema, schema_status
from tests import schema1_data as s1
from tests.broker_runner import broker_settings, running_broker
from tests.conftest import KEYS, TEST_SECRET
from tests.redis_replies import as_text, stream_rows
from tests.scu import ModalityPerformedProcedureStep, ModalityWorklistInformationFind

REPO = Path(__file__).resolve().parents[2]
FIXTURE: dict[str, Any] = json.loads(s1.FIXTURE.read_text(encoding="utf-8"))
ALIAS_TTL = 365 * 86_400


def schema1_data_dir(tmp_path: Path) -> Path:
    """A broker data directory whose embedded Redis holds the schema-1 dump."""
    data_dir = tmp_path / "data"
    server = EmbeddedRedis(data_dir / "redis")
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        s1.load(client, FIXTURE)
        client.close()
    finally:
        server.stop()
    return data_dir


def snapshot(client: redis.Redis) -> dict[str, Any]:
    """Every key and value; of a TTL only whether there is one (they count down)."""
    return {
        name: {**item, "ttl_ms": item["ttl_ms"] > 0}
        for name, item in s1.dump(client).items()
        if not name.endswith(":keyschema:lock")
    }


def identifiers_in_names(client: redis.Redis) -> list[str]:
    """Key names, and fields of the hashes keyed by identifiers, that hold an identifier or a
    schema-1 entry id; set and sorted-set members that are schema-1 entry ids."""
    found = []
    for raw in client.scan_iter(count=1000):
        name = as_text(raw)
        found += [name for c in s1.CANARIES if c.lower() in name.lower()]
        if is_schema1_id(name.rsplit(":", 1)[-1]):
            found.append(name)
        kind = as_text(client.type(raw))
        if kind == "set":
            found += [f"{name} {m!r}" for m in client.smembers(raw) if is_schema1_id(as_text(m))]
        elif kind == "zset":
            members = client.zrange(raw, 0, -1)
            found += [f"{name} {m!r}" for m in members if is_schema1_id(as_text(m))]
    for hash_key in (KEYS.order_status(), KEYS.order_time(), KEYS.patient_time()):
        for hash_field in client.hkeys(hash_key):
            if any(c.lower() in as_text(hash_field).lower() for c in s1.CANARIES):
                found.append(f"{hash_key} {hash_field!r}")
    return found


def send(broker: Broker, *messages: bytes) -> list[str]:
    assert broker.endpoints is not None
    with hl7.client.MLLPClient("127.0.0.1", broker.endpoints.hl7_port, encoding="utf-8") as c:
        return [summarize_ack(c.send_message(m)).code for m in messages]


def find(broker: Broker, **keys: str) -> list[Dataset]:
    """MWL C-FIND (pynetdicom SCU) with ``keys``; top-level keywords, or ``station``."""
    assert broker.endpoints is not None
    ae = AE(ae_title="MIGRATION_TEST")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", broker.endpoints.dicom_port, ae_title="MWL_BROKER")
    assert assoc.is_established
    query = Dataset()
    query.PatientID = keys.get("PatientID", "")
    query.PatientName = ""
    query.AccessionNumber = keys.get("AccessionNumber", "")
    step = Dataset()
    step.ScheduledStationAETitle = keys.get("station", "")
    step.ScheduledProcedureStepID = ""
    step.ScheduledProcedureStepStatus = ""
    query.ScheduledProcedureStepSequence = [step]
    try:
        return [
            ds
            for status, ds in assoc.send_c_find(query, ModalityWorklistInformationFind)
            if status is not None and status.Status in (0xFF00, 0xFF01) and ds is not None
        ]
    finally:
        assoc.release()


def accessions(answers: list[Dataset]) -> list[str]:
    return sorted(str(ds.AccessionNumber) for ds in answers)


@pytest.fixture
def migrated(tmp_path: Path) -> Iterator[Broker]:
    """A broker started on the schema-1 data (it migrates them as it starts)."""
    data_dir = schema1_data_dir(tmp_path)
    settings = broker_settings(
        data_dir, retention_interval_seconds=0, dicom_hidden_statuses=""
    )  # every status answered, so that every entry can be looked for
    with running_broker(settings) as broker:
        yield broker


def test_every_entry_is_found_as_before(migrated: Broker) -> None:
    assert migrated.store is not None
    keys = migrated.store.keys
    assert schema_status(migrated.store.client, keys).version == "2"
    by_patient = accessions(find(migrated, PatientID=s1.PATIENT))
    assert by_patient == ["CNRYACC4711", "CNRYACC4712", "CNRYACC4713", "CNRYACC4715"]
    assert accessions(find(migrated, PatientID=s1.NEW_ID)) == ["CNRYACC0042"] * 2
    assert find(migrated, PatientID=s1.OLD) == find(migrated, PatientID=s1.CHANGED) == []
    for acc in ("CNRYACC4711", "CNRYACC4712", "CNRYACC4713", "CNRYACC4715"):
        (entry,) = find(migrated, AccessionNumber=acc)
        assert entry.PatientID == s1.PATIENT
        assert str(entry.PatientName) == "Canary^Zzname^Quentin"  # the A08's record
    assert accessions(find(migrated, station="MR1")) == ["CNRYACC0042"] * 2
    assert migrated.store.count() == 6


def test_aliases_states_and_resends_still_decide(migrated: Broker) -> None:
    assert migrated.store is not None
    store, client = migrated.store, migrated.store.client
    later = [
        s1.orm(91, "NW", s1.OLDER, "CNRYACC9001"),  # OLDER → OLD → PATIENT (schema 1's chain)
        s1.orm(92, "NW", s1.CHANGED, "CNRYACC9002"),  # A47's old ID
        s1.orm(93, "NW", s1.PATIENT, s1.CANCEL_FIRST),  # canceled before: its NW is too late
        s1.messages()[0],  # a resend of the first order: its first ACK, nothing new
    ]
    assert send(migrated, *later) == ["AA"] * 4
    (older,) = find(migrated, AccessionNumber="CNRYACC9001")
    (changed,) = find(migrated, AccessionNumber="CNRYACC9002")
    assert (older.PatientID, changed.PatientID) == (s1.PATIENT, s1.NEW_ID)
    assert find(migrated, AccessionNumber=s1.CANCEL_FIRST) == []
    assert store.count() == 8
    for old_id in (s1.OLD, s1.OLDER, s1.CHANGED):
        assert 0 < client.ttl(store.keys.patient_alias(old_id)) <= ALIAS_TTL  # now expire
    assert client.smembers(store.keys.merged_into(s1.PATIENT)) == {b"CNRYOLD0001"}
    assert client.hget(store.keys.patient_time(), store.keys.patient_field(s1.PATIENT)) == (
        b"20261125090000.000000"
    )


def test_mpps_instances_stay_linked(migrated: Broker) -> None:
    assert migrated.store is not None and migrated.endpoints is not None
    mpps = MppsStore(migrated.store)
    uids = {as_text(m) for m in migrated.store.client.zrange(KEYS.mpps_by_time(), 0, -1)}
    records = {uid: mpps.get(uid) for uid in uids}
    (open_uid,) = [uid for uid, r in records.items() if r is not None and r.status != "COMPLETED"]
    for record in records.values():
        assert record is not None and len(record.entries) == 1
        assert list(mpps.entries(record.entries)), "the linked entry exists under its new id"
    ae = AE(ae_title="CT_SCANNER")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", migrated.endpoints.dicom_port, ae_title="MWL_BROKER")
    end = Dataset()
    end.PerformedProcedureStepStatus = "COMPLETED"
    status, _ = assoc.send_n_set(end, ModalityPerformedProcedureStep, open_uid)
    assoc.release()
    assert status.Status == 0
    steps = find(migrated, AccessionNumber="CNRYACC0042")
    statuses = {
        str(ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID): str(
            ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus
        )
        for ds in steps
    }
    assert statuses == {"SPS-4A": "COMPLETED", "SPS-4B": "SCHEDULED"}


def test_references_in_values_follow_the_new_ids(migrated: Broker) -> None:
    assert migrated.store is not None and migrated.messages is not None
    client, keys = migrated.store.client, migrated.store.keys
    record = migrated.messages.get("4")  # the OMI: two entries
    assert record is not None and len(record.entry_ids) == 2
    assert all(client.exists(keys.entry(i)) for i in record.entry_ids)
    old_stream = FIXTURE[KEYS.mpps_events()]["value"]
    rows = stream_rows(client, keys.mpps_events())
    assert [i.decode() for i, _ in rows] == [i for i, _ in old_stream]  # ids kept
    for _, item in rows:
        assert all(client.exists(keys.entry(i)) for i in json.loads(item[b"entries"]))
    for entry_id in client.smembers(keys.all_entries()):
        refs = json.loads(client.hget(keys.entry(as_text(entry_id)), "idx") or b"[]")
        assert refs and all(client.exists(ref[1]) for ref in refs)


def test_no_key_name_holds_an_identifier_after_the_migration(migrated: Broker) -> None:
    assert migrated.store is not None
    client = migrated.store.client
    before = [name for name in FIXTURE if any(c in name for c in s1.CANARIES)]
    assert len(before) > 10  # the canaries were there
    assert identifiers_in_names(client) == []


def migrate_in_a_process(url: str, stop_after: int | None) -> int:
    """Run the migration in a process of its own that SIGKILLs itself after ``stop_after``
    converting calls (None: it runs to the end); its exit status."""
    code = f"""
import os, signal, redis
from broker.store.keys import KeySchema
from broker.store.schema_version import ensure_key_schema
calls = 0
def tick(kind):
    global calls
    calls += 1
    if calls == {stop_after!r}:
        os.kill(os.getpid(), signal.SIGKILL)
client = redis.Redis.from_url({url!r})
ensure_key_schema(client, KeySchema("mwl", {TEST_SECRET!r}), alias_ttl={ALIAS_TTL},
                  lock_ms=300, tick=tick)
print(calls)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=120, check=False)
    return done.returncode


def reference_result(redis_client: redis.Redis) -> tuple[dict[str, Any], int]:
    """The state an uninterrupted migration leaves, and how many converting calls it made."""
    s1.load(redis_client, FIXTURE)
    calls: list[object] = []
    ensure_key_schema(redis_client, KEYS, alias_ttl=ALIAS_TTL, tick=calls.append)
    result = snapshot(redis_client)
    redis_client.flushall()
    return result, len(calls)


def test_a_migration_killed_at_any_point_is_finished_by_the_next(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    expected, calls = reference_result(redis_client)
    assert calls > 20
    # (SCAN may return a key twice, and each visit is a call: a run's count varies a little)
    for stop_after in (1, calls // 3, calls // 2, calls * 3 // 4):
        s1.load(redis_client, FIXTURE)
        assert migrate_in_a_process(redis_server.url, stop_after) == -9  # SIGKILL, halfway
        assert schema_status(redis_client, KEYS).version == "1"
        if stop_after <= calls // 2:
            assert identifiers_in_names(redis_client) != []  # left half done
        ensure_key_schema(redis_client, KEYS, alias_ttl=ALIAS_TTL, lock_ms=300)
        assert snapshot(redis_client) == expected, stop_after
        redis_client.flushall()
    s1.load(redis_client, FIXTURE)
    assert migrate_in_a_process(redis_server.url, None) == 0
    assert snapshot(redis_client) == expected


def test_brokers_starting_together_migrate_once(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    expected, _ = reference_result(redis_client)
    s1.load(redis_client, FIXTURE)
    results: list[object] = []

    def start() -> None:
        client = redis.Redis.from_url(redis_server.url)
        results.append(ensure_key_schema(client, KEYS, alias_ttl=ALIAS_TTL))
        client.close()

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 3 and sum(r is not None for r in results) == 1
    assert snapshot(redis_client) == expected


def test_another_secret_is_refused(redis_client: redis.Redis) -> None:
    s1.load(redis_client, FIXTURE)
    ensure_key_schema(redis_client, KEYS, alias_ttl=ALIAS_TTL)
    other = KeySchema("mwl", b"not the secret the keys were made with")
    with pytest.raises(ConfigError) as refused:
        ensure_key_schema(redis_client, other, alias_ttl=ALIAS_TTL)
    assert refused.value.setting == "redis_key_secret"
    assert ensure_key_schema(redis_client, KEYS, alias_ttl=ALIAS_TTL) is None  # the right one


def test_check_reports_counts_only_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("MWL_BROKER_")]:
        monkeypatch.delenv(name)
    data_dir = schema1_data_dir(tmp_path)
    where = ["--data-dir", str(data_dir)]
    assert main(["migrate-keys", "--check", *where]) == 1
    out = capsys.readouterr().out
    assert "key schema: 1" in out and "would convert 6 entry hashes" in out
    assert "would convert 3 patient aliases" in out
    assert not any(c.lower() in out.lower() for c in s1.CANARIES)
    server = EmbeddedRedis(data_dir / "redis")
    server.start()
    client = redis.Redis.from_url(server.url)
    assert s1.dump(client).keys() == FIXTURE.keys()  # nothing changed
    client.close()
    server.stop()
    assert main(["migrate-keys", *where]) == 0
    assert "migrated" in capsys.readouterr().out
    assert main(["migrate-keys", "--check", *where]) == 0
    assert "nothing to migrate" in capsys.readouterr().out
