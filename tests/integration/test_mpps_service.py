"""One MPPS state machine for every face: the service (what the DICOMweb routes call) and
DIMSE N-CREATE/N-SET (a real pynetdicom SCU against the broker's DicomServer) change the
same instances and the same worklist steps, on a real redis-server.

The DIMSE handler is built as ``broker.app`` builds it, on the service; the refusals of
the service map to the HTTP statuses of PS3.18 chapter 15 (``broker.dicom.mpps_web``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from pydicom.dataset import Dataset
from pydicom.uid import UID, generate_uid

from broker.app import build_dicom_server, build_services
from broker.common import jsontext
from broker.dicom import mpps_web
from broker.dicom.find import WorklistFindService
from broker.dicom.mpps import MppsService as DimseMpps
from broker.dicom.profiles import ProfileSet, ScannerProfile
from broker.dicom.server import DicomServer, configure_pynetdicom_logging
from broker.services.mpps import MppsService
from broker.settings import load_settings
from broker.store.mpps import MppsStore
from broker.store.worklist import WorklistStore
from broker.worklist.mpps_rules import NO_LONGER_UPDATABLE, MppsRefusal, MppsStatus
from tests.broker_runner import MAPPINGS
from tests.integration.test_mpps import (
    AE_TITLE,
    CALLING,
    create,
    entry,
    find_status,
    modality,
    n_create_list,
    n_set,
    n_set_final,
    put,
)
from tests.integration.test_services import ENVIRON

SCANNERS: dict[str, Any] = {
    CALLING: {"addresses": ["127.0.0.1"]},  # scope "all"
    "MR1": {"addresses": ["127.0.0.1"], "scope": "own"},  # sees station MR1 only
}
SERVICE = "mwl-broker"  # the Warning header field's agent


@pytest.fixture
def profiles() -> ProfileSet:
    return ProfileSet.parse(SCANNERS)


@pytest.fixture
def service(store: WorklistStore, profiles: ProfileSet) -> MppsService:
    return MppsService(MppsStore(store, events_max=100), profiles)


@pytest.fixture
def server(
    store: WorklistStore, service: MppsService, profiles: ProfileSet
) -> Iterator[DicomServer]:
    configure_pynetdicom_logging()
    srv = DicomServer(
        ae_title=AE_TITLE,
        host="127.0.0.1",
        port=0,
        find_service=WorklistFindService(store, max_answers=100, profiles=profiles),
        mpps_service=DimseMpps(service, profiles=profiles),
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def profile(service: MppsService, aet: str = CALLING) -> ScannerProfile:
    return service.profile_for(aet, "127.0.0.1")


def refusal_of(call: Any) -> MppsRefusal:
    with pytest.raises(MppsRefusal) as caught:
        call()
    return caught.value


def test_created_by_the_service_is_found_started_and_completed_over_dimse(
    server: DicomServer, store: WorklistStore, service: MppsService
) -> None:
    scheduled = entry("ACC-1")
    put(store, scheduled)
    body = jsontext.dumps(n_create_list(scheduled).to_json_dict()).encode()
    uid = generate_uid()
    created = service.create(
        mpps_web.payload(body, uid=uid), uid=uid, aet=CALLING, profile=profile(service)
    )
    assert (created.uid, created.assigned, created.changed) == (uid, False, 1)
    with modality(server) as assoc:
        assert find_status(assoc, "ACC-1") == ["STARTED"]
        assert n_set(assoc, uid, n_set_final()).Status == MppsStatus.SUCCESS
        assert find_status(assoc, "ACC-1", "COMPLETED") == ["COMPLETED"]
    record = service.retrieve(uid, aet=CALLING, profile=profile(service))
    (answer,) = mpps_web.retrieve_json(record)
    assert answer["00400252"] == {"vr": "CS", "Value": ["COMPLETED"]}
    assert answer["00080018"]["Value"] == [uid]
    assert answer["00080016"]["Value"] == [mpps_web.MPPS_SOP_CLASS]
    assert len(answer["00400340"]["Value"]) == 1  # the N-SET's Performed Series Sequence

    again = refusal_of(
        lambda: service.update(uid, n_set_final(), aet=CALLING, profile=profile(service))
    )
    answered = mpps_web.problem(again, SERVICE)
    assert (answered.status, answered.detail) == (409, NO_LONGER_UPDATABLE)
    assert answered.warning.startswith("299 mwl-broker: 0110 (A710) ")


def test_created_over_dimse_is_updated_and_retrieved_through_the_service(
    server: DicomServer, store: WorklistStore, service: MppsService
) -> None:
    scheduled = entry("ACC-2")
    put(store, scheduled)
    uid = generate_uid()
    with modality(server) as assoc:
        assert create(assoc, uid, n_create_list(scheduled)).Status == MppsStatus.SUCCESS
        started = service.retrieve(uid, aet=CALLING, profile=profile(service))
        assert started.status == "IN PROGRESS"
        changes = Dataset()
        changes.PerformedProcedureStepDescription = "CT head"
        changes.PatientID = "OTHER"  # not settable: ignored, with a warning
        updated = service.update(uid, changes, aet=CALLING, profile=profile(service))
        assert updated.ignored == ("PatientID",)
        assert mpps_web.ignored_warning(updated.ignored, SERVICE) == (
            "299 mwl-broker: attributes an update may not change ignored: PatientID"
        )
        done = service.update(
            uid, n_set_final("DISCONTINUED"), aet=CALLING, profile=profile(service)
        )
        assert (done.result.status, done.result.changed) == ("DISCONTINUED", 1)
        assert find_status(assoc, "ACC-2", "DISCONTINUED") == ["DISCONTINUED"]
        refused = n_set(assoc, uid, n_set_final())
        assert refused.Status == MppsStatus.PROCESSING_FAILURE
    record = service.retrieve(uid, aet=CALLING, profile=profile(service))
    (answer,) = mpps_web.retrieve_json(record, mpps_web.included_tags(["00400252,PatientID"]))
    assert set(answer) == {"00400252", "00100020"}
    assert answer["00100020"]["Value"] == [scheduled.PatientID]  # the created value kept
    assert record.ds.PerformedProcedureStepDescription == "CT head"


def test_refusals_map_to_the_http_statuses_of_chapter_15(
    store: WorklistStore, service: MppsService
) -> None:
    scheduled = entry("ACC-3")  # on station CT1
    put(store, scheduled)
    uid = generate_uid()
    attributes = n_create_list(scheduled)
    ct = profile(service)

    def web(call: Any) -> int:
        return mpps_web.problem(refusal_of(call), SERVICE).status

    mr = profile(service, "MR1")
    assert web(lambda: service.create(attributes, uid=uid, aet="MR1", profile=mr)) == 403
    # nothing was stored by the refused create:
    assert web(lambda: service.retrieve(uid, aet=CALLING, profile=ct)) == 404
    service.create(attributes, uid=uid, aet=CALLING, profile=ct)
    assert web(lambda: service.create(attributes, uid=uid, aet=CALLING, profile=ct)) == 409
    assert web(lambda: service.update(uid, n_set_final(), aet="MR1", profile=mr)) == 403
    assert web(lambda: service.retrieve(uid, aet="MR1", profile=mr)) == 403
    assert web(lambda: service.update(generate_uid(), Dataset(), aet=CALLING, profile=ct)) == 404
    bad = Dataset()
    bad.PerformedProcedureStepStatus = "DONE"
    assert web(lambda: service.update(uid, bad, aet=CALLING, profile=ct)) == 400
    assert (
        web(lambda: service.create(Dataset(), uid=generate_uid(), aet=CALLING, profile=ct)) == 400
    )
    assert web(lambda: service.create(attributes, uid="not a uid", aet=CALLING, profile=ct)) == 400
    assert web(lambda: service.profile_for("STRANGER", "192.0.2.1")) == 403
    assigned = service.create(attributes, uid=None, aet=CALLING, profile=ct)  # the SCP's UID
    assert assigned.assigned and assigned.uid != uid and UID(assigned.uid).is_valid
    assert assigned.changed == 0  # the step is STARTED already, by the first instance
    record = service.retrieve(uid, aet=CALLING, profile=ct)
    assert record.status == "IN PROGRESS"


def test_the_brokers_dicom_server_and_services_mpps_share_the_instances(
    redis_client: redis.Redis,
) -> None:
    """As ``serve`` wires it: ``build_dicom_server`` on ``Services``, whose ``mpps`` an
    admin face calls; an instance created there is completed over DIMSE and retrieved."""
    settings = load_settings(
        environ=ENVIRON,
        overrides={
            "mappings_dir": MAPPINGS,
            "dicom_host": "127.0.0.1",
            "dicom_port": 0,
            "ae_title": AE_TITLE,
        },
    )
    services = build_services(settings, redis_client)
    scheduled = entry("ACC-4")
    put(services.store, scheduled)
    uid = generate_uid()
    ct = profile(services.mpps)
    services.mpps.create(n_create_list(scheduled), uid=uid, aet=CALLING, profile=ct)
    server = build_dicom_server(services)
    server.start()
    try:
        with modality(server) as assoc:
            assert find_status(assoc, "ACC-4") == ["STARTED"]
            assert n_set(assoc, uid, n_set_final()).Status == MppsStatus.SUCCESS
    finally:
        server.stop()
    assert services.mpps.retrieve(uid, aet=CALLING, profile=ct).status == "COMPLETED"
