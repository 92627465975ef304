"""A broker filled with every kind of data, and a Redis as the previous release left it.

:func:`fill` sends the flows of ``tests.schema1_data`` (orders, a two-step OMI, a cancel
before its order, an order canceled, ADT A08, an alias chain of A40s, an A47), two MPPS
instances (one COMPLETED, one IN PROGRESS), publishes a second mapping version, and adds
a console user and an API token. :func:`answers` are the MWL C-FIND answers of
:data:`QUERIES`, as comparable JSON. The identifiers are the canaries of
``tests.schema1_data``; the names are invented.

``tests/data/redis_schema2.json`` is a dump (``tests.schema1_data.dump``) of the Redis
of a broker of the previous release (main at commit 55fb365) after :func:`fill`, with
its C-FIND answers and the API token's text beside it, for the upgrade test
(``tests/integration/test_upgrade.py``). It was made with that release's ``broker``
package first on the path (this file uses only what that release had)::

    git worktree add /tmp/previous 55fb365
    PYTHONPATH=/tmp/previous .venv/bin/python tests/schema2_data.py tests/data/redis_schema2.json
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: ``tests`` from this checkout (or the path's)
    sys.path.append(str(REPO))

from tests import schema1_data as s1  # noqa: E402

FIXTURE = REPO / "tests" / "data" / "redis_schema2.json"
SECRET = "the tests' redis_key_secret, 32+ bytes long"  # tests.conftest.TEST_SECRET
USER, PASSWORD = "alice", "a long enough password"  # invented, for the tests
EXTRA_MAPPING = "# a second version: this comment line\n"
QUERIES: list[dict[str, str]] = [
    {},
    {"PatientID": s1.PATIENT},
    {"PatientID": s1.NEW_ID},
    {"PatientID": s1.OLD},
    {"AccessionNumber": "CNRYACC4711"},
    {"AccessionNumber": "CNRYACC0042"},
    {"station": "MR1"},
    {"PatientName": "Canary*"},
]


def fill(services: Any, hl7_port: int, dicom_port: int, ae_title: str) -> str:
    """Every kind of data (see the module docstring); the API token's text."""
    from broker.mllp.client import MLLPClient, summarize_ack

    with MLLPClient("127.0.0.1", hl7_port, timeout=30) as client:
        for message in s1.messages():
            summary = summarize_ack(client.send(message))
            assert summary.code == "AA", summary
    s1._mpps(dicom_port, ae_title)
    versions = services.mapping_versions
    active = versions.active()
    name = sorted(active.files)[0]
    files = {**active.files, name: EXTRA_MAPPING + active.files[name]}
    versions.publish(files, author="tester", comment="a second version")
    from broker.services.auth import Role

    services.auth.add_user(USER, PASSWORD, Role.ADMIN, by="tester")
    token, _ = services.auth.create_token(Role.VIEWER, label="backup test", by="tester")
    return str(token)


def answers(port: int, ae_title: str) -> list[list[dict[str, Any]]]:
    """The MWL C-FIND answers of :data:`QUERIES`, each sorted, as DICOM JSON."""
    from pydicom.dataset import Dataset
    from pynetdicom import AE
    from pynetdicom.sop_class import uid_to_sop_class

    find_class = uid_to_sop_class("1.2.840.10008.5.1.4.31")
    ae = AE(ae_title="UPGRADE_TEST")
    ae.add_requested_context(find_class)
    assoc = ae.associate("127.0.0.1", port, ae_title=ae_title)
    assert assoc.is_established
    out = []
    try:
        for keys in QUERIES:
            query = Dataset()
            query.PatientID = keys.get("PatientID", "")
            query.PatientName = keys.get("PatientName", "")
            query.AccessionNumber = keys.get("AccessionNumber", "")
            query.StudyInstanceUID = ""
            step = Dataset()
            step.ScheduledStationAETitle = keys.get("station", "")
            step.ScheduledProcedureStepID = ""
            step.ScheduledProcedureStepStatus = ""
            step.ScheduledProcedureStepStartDate = ""
            step.Modality = ""
            query.ScheduledProcedureStepSequence = [step]
            found = [
                ds.to_json_dict()
                for status, ds in assoc.send_c_find(query, find_class)
                if status is not None and status.Status in (0xFF00, 0xFF01) and ds is not None
            ]
            out.append(sorted(found, key=lambda d: json.dumps(d, sort_keys=True)))
    finally:
        assoc.release()
    return out


def settings(data_dir: Path, **overrides: Any) -> Any:
    """A broker's settings on loopback; ``redis_key_secret=None``: the data directory's own."""
    from broker.settings import load_settings

    values = {
        "hl7_host": "127.0.0.1", "hl7_port": 0, "dicom_host": "127.0.0.1", "dicom_port": 0,
        "admin_host": "127.0.0.1", "admin_port": 0, "data_dir": data_dir,
        "retention_interval_seconds": 0, "dicom_hidden_statuses": "",
        "mappings_dir": REPO / "mappings", "redis_key_secret": SECRET,
    }  # fmt: skip
    values.update(overrides)
    values = {name: value for name, value in values.items() if value is not None}
    return load_settings(environ={}, overrides=values)


def main(target: Path) -> None:
    from broker.app import Broker

    print(f"broker package: {sys.modules['broker'].__file__}")
    with tempfile.TemporaryDirectory() as tmp:
        loop = asyncio.new_event_loop()
        broker = Broker(settings(Path(tmp)))
        endpoints = loop.run_until_complete(broker.start())
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            token = fill(broker.services, endpoints.hl7_port, endpoints.dicom_port,
                         endpoints.ae_title)  # fmt: skip
            found = answers(endpoints.dicom_port, endpoints.ae_title)
            assert broker.store is not None
            data = {"redis": s1.dump(broker.store.client), "answers": found, "token": token}
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.run_until_complete(broker.stop())
    target.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(data['redis'])} keys written to {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
