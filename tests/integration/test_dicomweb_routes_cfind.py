"""The same generated queries over real HTTP (``GET /modality-scheduled-procedure-steps``,
a scanner's bearer token) and over C-FIND (a real pynetdicom SCU with that scanner's AE
title against the broker's own DICOM server) give the same entries: one ``Services``, one
real redis-server, one set of scanner profiles from a settings file."""

from __future__ import annotations

import random
from contextlib import closing
from pathlib import Path

import pytest
import redis

from broker.dicom.server import DicomServer
from broker.services.application import Services
from broker.services.auth import Role
from broker.worklist.model import OrderAction, OrderChange
from tests.integration.admin_helpers import Api, site_services
from tests.integration.test_dicomweb_search import (
    _cfind_identifier,
    _entries,
    _generated,
    _over_dimse,
    _qido_params,
)

SCANNERS = """
[scanners.CT1]
addresses = ["127.0.0.1"]
scope = "own"
date_window = "any"

[scanners.MR1]
addresses = ["127.0.0.1"]
scope = ["MR1", "MR2"]
modality = "MR"
date_window = "any"

[scanners.ALL]
addresses = ["127.0.0.1"]
scope = "all"
date_window = "any"
"""


@pytest.fixture
def services(redis_client: redis.Redis, tmp_path: Path) -> Services:
    services = site_services(redis_client, tmp_path, SCANNERS, dicom_allow_unknown_callers="false")
    changes = [
        OrderChange(
            f"O-{e.AccessionNumber}",
            OrderAction.SCHEDULE,
            (e,),
            status=str(e.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus),
        )
        for e in _entries(random.Random(13))
    ]
    services.store.apply(changes, None)
    return services


@pytest.mark.parametrize("scanner", ["ALL", "CT1", "MR1"])
def test_generated_queries_give_the_same_entries_over_http_and_c_find(
    api: Api, dicom: DicomServer, scanner: str
) -> None:
    rng = random.Random(f"routes-{scanner}")
    token, _ = api.services.auth.create_token(Role.VIEWER, label="t", by="test", scanner=scanner)
    asked = 0
    with closing(api.client(headers={"Authorization": f"Bearer {token}"})) as client:
        for _ in range(25):
            top, sps = _generated(rng)
            over_dimse = _over_dimse(dicom, scanner, _cfind_identifier(top, sps))
            answer = client.get(
                "/modality-scheduled-procedure-steps",
                params=tuple(_qido_params(top, sps, rng)),
            )
            assert answer.status_code == 200, (top, sps, answer.text)
            over_web = sorted(a["00080050"]["Value"][0] for a in answer.json())
            assert over_web == over_dimse, (top, sps)
            assert "warning" not in answer.headers
            asked += bool(over_dimse)
    assert asked > 3  # the generator does find entries, not only empty answers
