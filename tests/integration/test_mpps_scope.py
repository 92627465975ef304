"""MPPS held to the caller's profile: N-CREATE only for steps it could find, N-SET only by
the AE title that created the instance (or a profile allowed to), over real associations.

Refusals are 0x0124 Refused: not authorized (PS3.7 10.1.5.1.6 N-CREATE, 10.1.1.1.8
N-SET) with an Error Comment; a refused request stores nothing and changes no step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from pydicom.uid import generate_uid
from pynetdicom import AE

from broker.dicom.find import WorklistFindService
from broker.dicom.mpps import MppsService, MppsStatus
from broker.dicom.profiles import ProfileSet
from broker.dicom.server import DicomServer, configure_pynetdicom_logging
from broker.store.mpps import MppsStore
from broker.store.worklist import WorklistStore
from tests.conftest import KEYS
from tests.integration.test_mpps import (
    AE_TITLE,
    create,
    entry,
    events,
    n_create_list,
    n_set,
    n_set_final,
    put,
)
from tests.redis_replies import bytes_or_none
from tests.scu import ModalityPerformedProcedureStep, established

LOCAL = ["127.0.0.1"]  # where the test scanners connect from
SCANNERS: dict[str, Any] = {
    "CT1": {"addresses": LOCAL, "scope": "own"},
    "CT2": {"addresses": LOCAL, "scope": "own"},
    "MANAGER": {"addresses": LOCAL, "mpps_update_others": True},  # scope "all"
    "CT2_MANAGER": {"addresses": LOCAL, "mpps_update_others": True, "scope": ["CT2"]},
}


@pytest.fixture
def server(store: WorklistStore) -> Iterator[DicomServer]:
    put(store, entry("ACC-1"))  # scheduled on station CT1
    configure_pynetdicom_logging()
    profiles = ProfileSet.parse(SCANNERS)
    srv = DicomServer(
        ae_title=AE_TITLE,
        host="127.0.0.1",
        port=0,
        find_service=WorklistFindService(store, max_answers=100, profiles=profiles),
        mpps_service=MppsService(MppsStore(store, events_max=100), profiles=profiles),
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@contextmanager
def scanner(server: DicomServer, calling: str) -> Iterator[Any]:
    ae = AE(ae_title=calling)
    ae.add_requested_context(ModalityPerformedProcedureStep)
    with established(ae, server.port, AE_TITLE) as assoc:
        yield assoc


def step_status(store: WorklistStore, client: redis.Redis) -> bytes | None:
    (entry_id,) = store.order_entry_ids("O-ACC-1")
    return bytes_or_none(client.hget(KEYS.entry(entry_id), "status"))


def test_an_n_create_for_another_stations_step_is_refused(
    server: DicomServer, store: WorklistStore, redis_client: redis.Redis
) -> None:
    uid = generate_uid()
    with scanner(server, "CT2") as ct2:
        refused = create(ct2, uid, n_create_list(entry("ACC-1")))
    assert refused.Status == MppsStatus.NOT_AUTHORIZED.value == 0x0124
    assert "outside this AE's scope" in refused.ErrorComment
    assert MppsStore(store).get(uid) is None and events(redis_client) == []
    assert step_status(store, redis_client) == b"SCHEDULED"
    with scanner(server, "CT1") as ct1:  # the right scanner: the usual cycle
        assert create(ct1, uid, n_create_list(entry("ACC-1"))).Status == MppsStatus.SUCCESS
        assert step_status(store, redis_client) == b"STARTED"
        assert n_set(ct1, uid, n_set_final()).Status == MppsStatus.SUCCESS
    assert step_status(store, redis_client) == b"COMPLETED"


def test_an_n_set_of_another_scanners_instance_is_refused(
    server: DicomServer, store: WorklistStore, redis_client: redis.Redis
) -> None:
    uid = generate_uid()
    with scanner(server, "CT1") as ct1:
        assert create(ct1, uid, n_create_list(entry("ACC-1"))).Status == MppsStatus.SUCCESS
    for calling in ("CT2", "CT2_MANAGER"):  # neither created it nor has ACC-1 in scope
        with scanner(server, calling) as other:
            refused = n_set(other, uid, n_set_final("DISCONTINUED"))
        assert refused.Status == MppsStatus.NOT_AUTHORIZED
        assert "created by another AE title" in refused.ErrorComment
    record = MppsStore(store).get(uid)
    assert record is not None and record.status == "IN PROGRESS"
    assert step_status(store, redis_client) == b"STARTED"
    assert [e["event"] for e in events(redis_client)] == ["created"]
    with scanner(server, "CT1") as ct1:
        assert n_set(ct1, uid, n_set_final()).Status == MppsStatus.SUCCESS
    assert step_status(store, redis_client) == b"COMPLETED"


def test_a_profile_may_update_others_instances_within_its_scope(
    server: DicomServer, store: WorklistStore, redis_client: redis.Redis
) -> None:
    uid = generate_uid()
    with scanner(server, "CT1") as ct1:
        assert create(ct1, uid, n_create_list(entry("ACC-1"))).Status == MppsStatus.SUCCESS
    with scanner(server, "MANAGER") as manager:
        final = n_set(manager, uid, n_set_final("DISCONTINUED"))
    assert final.Status == MppsStatus.SUCCESS
    assert step_status(store, redis_client) == b"DISCONTINUED"
    assert [(e["event"], e["aet"]) for e in events(redis_client)] == [
        ("created", "CT1"),
        ("discontinued", "MANAGER"),
    ]


def test_unscheduled_instances_need_no_scope(server: DicomServer, store: WorklistStore) -> None:
    uid = generate_uid()
    with scanner(server, "CT2") as ct2:
        assert create(ct2, uid, n_create_list(None)).Status == MppsStatus.SUCCESS
        assert n_set(ct2, uid, n_set_final()).Status == MppsStatus.SUCCESS
    record = MppsStore(store).get(uid)
    assert record is not None and record.aet == "CT2" and record.entries == ()
