"""Each worklist entry keeps the number of the mapping version that made it (``mver``): an
order received or reprocessed is written with the active version's number; an ADT update
(the order's mapping made the entry), a hand edit and a status change keep it; a backup
keeps it, and a file without it (written before) restores the entry with it unknown.
Entries written before have none. Real redis-server, orders through the HL7 intake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from broker.services import console_search
from broker.services.application import Services
from broker.services.backup import BackupService
from broker.store.worklist import WorklistStore, version_number
from tests.broker_runner import MAPPINGS
from tests.conftest import keys_for
from tests.integration.admin_helpers import Recorded
from tests.integration.test_backup_file import lines, write
from tests.integration.worklist_api_helpers import orm, send, site_services
from tests.redis_replies import as_text

A08 = (
    b"MSH|^~\\&|HIS|HOSP|MWL_BROKER|HOSPITAL|20261125100000||ADT^A08|ADT-A08-1|P|2.3.1"
    b"||||||UNICODE UTF-8\r"
    b"EVN|A08|20261125100000\r"
    b"PID|||PAT-1^^^HOSP||Renamed^Jane||19650412|F\r"
    b"PV1||I|WARD1^1^1\r"
)


@pytest.fixture
def services(redis_client: redis.Redis, tmp_path: Path, audit: Recorded) -> Services:
    return site_services(redis_client, tmp_path, audit)


def versions(services: Services) -> dict[str, int | None]:
    """accession -> the mapping version of its entry, as the console's search reads it."""
    rows, _ = console_search.search(services.worklist, {}, fuzzy=False, offset=0, limit=100)
    return {row.accession: row.mapping_version for row in rows}


def entry_of(services: Services, accession: str) -> str:
    rows, _ = console_search.search(
        services.worklist, {"AccessionNumber": accession}, fuzzy=False, offset=0, limit=2
    )
    (row,) = rows
    return row.entry_id


def publish(services: Services, orders: str, comment: str) -> int:
    """``orders`` published as orders.yaml, made active as the broker's reload does."""
    result = services.mappings.publish({Path("orders.yaml"): orders}, author="t", comment=comment)
    assert result.created and services.live_mappings.refresh()
    return result.version.number


def orders_text() -> str:
    return (MAPPINGS / "orders.yaml").read_text(encoding="utf-8")


def test_an_order_keeps_the_version_that_mapped_it(services: Services) -> None:
    send(services, orm(1))
    assert versions(services) == {"ACC-1": 1}
    assert publish(services, orders_text() + "\n# v2\n", "a comment only") == 2
    send(services, orm(2))
    assert versions(services) == {"ACC-1": 1, "ACC-2": 2}  # the older entry keeps its own
    send(services, orm(1, control="XO", sent="20261125093000"))  # order 1 changed: rewritten
    assert versions(services) == {"ACC-1": 2, "ACC-2": 2}
    entry = services.entries.read(entry_of(services, "ACC-2"))
    assert entry.mapping_version == 2


def test_an_adt_update_a_hand_edit_and_a_status_keep_the_orders_version(
    services: Services,
) -> None:
    send(services, orm(1))
    publish(services, orders_text() + "\n# v2\n", "later")
    entry_id = entry_of(services, "ACC-1")
    before = services.entries.read(entry_id)
    send(services, A08)  # mapped by v2's ADT mapping; the entry is the order's
    after = services.entries.read(entry_id)
    assert after.revision != before.revision and b"Renamed" in after.ds
    assert after.mapping_version == 1
    edited = services.entries.edit(
        entry_id, "Modality", "MR", expect=after.revision, reason="t", user="u"
    )
    services.entries.set_status(entry_id, "ARRIVED", expect=edited, reason="t", user="u")
    assert services.entries.read(entry_id).mapping_version == 1
    assert versions(services) == {"ACC-1": 1}


def test_a_reprocessed_order_has_the_version_that_accepted_it(services: Services) -> None:
    fixed = orders_text()
    strict = fixed.replace(
        "PatientTransportArrangements: OBR-30",
        "PatientTransportArrangements: {path: OBR-30, required: true}",
    )
    assert strict != fixed and publish(services, strict, "OBR-30 required") == 2
    assert b"MSA|AE" in services.intake.handle(orm(1), "127.0.0.1:2575")
    assert publish(services, fixed + "\n# optional again\n", "OBR-30 optional") == 3
    done = services.reprocess.reprocess("1", by="t")
    assert b"MSA|AA" in done.ack
    assert versions(services) == {"ACC-1": 3}


def test_an_entry_written_before_has_none(services: Services) -> None:
    send(services, orm(1))
    entry_id = entry_of(services, "ACC-1")
    services.store.client.hdel(services.store.keys.entry(entry_id), "mver")
    assert versions(services) == {"ACC-1": None}
    assert services.entries.read(entry_id).mapping_version is None
    assert services.worklist.mapping_versions(["0" * 30]) == {"0" * 30: None}


def test_a_backup_keeps_it_and_a_file_without_it_still_restores(
    services: Services, tmp_path: Path
) -> None:
    send(services, orm(1))
    publish(services, orders_text() + "\n# v2\n", "v2")
    send(services, orm(2))
    path = tmp_path / "site.mwlbackup"
    BackupService(services.store.client, lambda: services.store).backup(path)
    orders = [r for r in lines(path) if r.get("kind") == "order"]
    assert sorted(e["mapping_version"] for r in orders for e in r["entries"]) == [1, 2]
    target = WorklistStore(services.store.client, keys=keys_for("other"))
    BackupService(target.client, lambda: target).restore(path)
    assert restored_versions(target) == {"ACC-1": 1, "ACC-2": 2}

    rows = lines(path)[:-1]  # as a broker before this field wrote it: no mapping_version
    for row in rows:
        for entry in row.get("entries", ()):
            del entry["mapping_version"]
    assert '"mapping_version"' not in json.dumps(rows)
    old = write(tmp_path / "old.mwlbackup", rows)
    BackupService(target.client, lambda: target).restore(old, replace=True)
    assert restored_versions(target) == {"ACC-1": None, "ACC-2": None}


def restored_versions(store: WorklistStore) -> dict[str, int | None]:
    ids = sorted(as_text(i) for i in store.client.smembers(store.keys.all_entries()))
    found = store.mapping_versions(ids)
    return {str(ds.AccessionNumber): found[i] for i, ds in store.entries_by_id(ids)}


@pytest.mark.parametrize(
    ("stored", "number"),
    [(b"7", 7), ("12", 12), (None, None), (b"", None), (b"v7", None), ("٣", None),
     (b"9" * 19, None)],
)  # fmt: skip
def test_a_stored_version_is_read_as_a_number_or_none(
    stored: bytes | str | None, number: int | None
) -> None:
    assert version_number(stored) == number
