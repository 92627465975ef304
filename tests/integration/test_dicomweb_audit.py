"""A DICOMweb search is on the audit trail as a C-FIND is: one query record with the
scanner's AE title, the address, the token, its keys and answers, never a value."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import redis
from pydicom.uid import generate_uid

from broker.audit.events import AuditType, Outcome
from broker.common import jsontext
from broker.services.application import Services
from broker.settings import load_settings
from tests.broker_runner import MAPPINGS
from tests.integration.admin_helpers import Api, Recorded, running_api, services_for
from tests.integration.test_dicomweb_routes import (
    ACCESSION,
    JSON,
    MPPS,
    SCANNERS,
    SEARCH,
    accessions,
    on_station,
    scanner,
)
from tests.integration.test_mpps import CALLING, entry, n_create_list, n_set_final, put
from tests.integration.test_services import ENVIRON


@pytest.fixture
def api(redis_client: redis.Redis, tmp_path: Path, audit: Recorded) -> Iterator[Api]:
    config = tmp_path / "broker.toml"
    config.write_text(SCANNERS, encoding="utf-8")
    overrides = {"admin_host": "127.0.0.1", "admin_port": 0, "mappings_dir": MAPPINGS}
    settings = load_settings(config_file=config, environ=ENVIRON, overrides=overrides)
    services: Services = services_for(settings, redis_client, audit)
    services.live_mappings.load()
    with running_api(services) as running:
        yield running


def test_a_search_leaves_one_query_record_without_values(api: Api, audit: Recorded) -> None:
    put(api.services.store, on_station("ACC-SECRET-1", "MR1"))
    with closing(scanner(api, "MR1")) as mr:
        assert accessions(mr.get(SEARCH, params={ACCESSION: "ACC-SECRET-1"})) == ["ACC-SECRET-1"]
    queries = [e for e in audit.events if e.type is AuditType.QUERY]
    assert len(queries) == 1
    record = queries[0]
    assert (record.outcome, record.ae, record.address) == (Outcome.SUCCESS, "MR1", "127.0.0.1")
    assert record.user.startswith("token:")
    assert record.details["via"] == "dicomweb"
    assert record.details["answers"] == 1
    assert f"{ACCESSION}=" in record.details["keys"]  # a matching key, by tag
    assert "ACC-SECRET-1" not in repr(record)  # the key's name, never its value


def test_mpps_over_http_is_audited_as_over_dimse(api: Api, audit: Recorded) -> None:
    scheduled = entry("ACC-SECRET-2")
    put(api.services.store, scheduled)
    uid, unknown = generate_uid(), generate_uid()
    body = jsontext.dumps(n_create_list(scheduled).to_json_dict()).encode()
    final = jsontext.dumps(n_set_final().to_json_dict()).encode()
    with closing(scanner(api, CALLING)) as ct:
        assert ct.post(f"{MPPS}/{uid}", content=body, headers=JSON).status_code == 201
        assert ct.post(f"{MPPS}/{uid}?update", content=final, headers=JSON).status_code == 200
        assert ct.post(f"{MPPS}/{uid}?update", content=final, headers=JSON).status_code == 409
        assert ct.post(f"{MPPS}/{unknown}?update", content=final, headers=JSON).status_code == 404
        assert ct.post(f"{MPPS}/{uid}", content=b"[]", headers=JSON).status_code == 400
    mpps = [e for e in audit.events if e.type in (AuditType.MPPS_CREATE, AuditType.MPPS_SET)]
    assert [(e.type, e.outcome, e.target) for e in mpps] == [
        (AuditType.MPPS_CREATE, Outcome.SUCCESS, uid),
        (AuditType.MPPS_SET, Outcome.SUCCESS, uid),
        (AuditType.MPPS_SET, Outcome.REFUSED, uid),
        (AuditType.MPPS_SET, Outcome.REFUSED, unknown),
        (AuditType.MPPS_CREATE, Outcome.REFUSED, uid),
    ]
    created, completed, ended, missing, bad = mpps
    for record in mpps:
        assert (record.ae, record.address, record.details["via"]) == (
            CALLING,
            "127.0.0.1",
            "dicomweb",
        )
        assert record.user.startswith("token:")
        assert "ACC-SECRET-2" not in repr(record) and "DOE" not in repr(record)
    assert created.details == {
        "status": "0000", "via": "dicomweb", "performed": "IN PROGRESS", "linked": 1,
    }  # fmt: skip
    assert (completed.details["performed"], completed.details["linked"]) == ("COMPLETED", 1)
    assert ended.details["status"] == "0110" and ended.reason
    assert missing.details["status"] == "0112" and bad.details["status"] != "0000"
