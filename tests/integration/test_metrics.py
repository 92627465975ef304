"""``GET /metrics`` of a whole broker over real HTTP, after real traffic: an order and a
refused one over MLLP, C-FINDs from pynetdicom (a configured scanner and an AE title no
table names), an MPPS created and completed, an association to another AE title and a
peer that does not speak MLLP; its values, its bounded labels, its auth."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydicom.dataset import Dataset
from pynetdicom import AE

from broker.app import Broker
from broker.mllp.client import MLLPClient, summarize_ack
from broker.services.auth import Role
from tests.broker_runner import DATA, broker_settings, running_broker
from tests.scu import (
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    create_then_complete,
)

SCANNER = "CT_SCANNER"
STRANGER = "NOT_LISTED_AE"  # allowed from loopback, named by no [scanners.<AE>] table
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _message(name: str) -> bytes:
    return (DATA / name).read_bytes().replace(b"\r\n", b"\r").rstrip(b"\r\n") + b"\r"


def _samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _query(port: int, broker_ae: str, calling: str) -> int:
    """One MWL C-FIND for every CT step; the number of pending answers."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title=broker_ae)
    assert assoc.is_established
    try:
        query, step = Dataset(), Dataset()
        query.PatientName, query.AccessionNumber = "", ""
        step.Modality, step.ScheduledStationAETitle = "", ""
        query.ScheduledProcedureStepSequence = [step]
        answers = assoc.send_c_find(query, ModalityWorklistInformationFind)
        return sum(1 for status, _ in answers if status is not None and status.Status == 0xFF00)
    finally:
        assoc.release()


def _perform(port: int, broker_ae: str) -> None:
    """An unscheduled MPPS: N-CREATE IN PROGRESS, then N-SET COMPLETED."""
    ae = AE(ae_title=SCANNER)
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", port, ae_title=broker_ae)
    assert assoc.is_established
    try:
        mpps = Dataset()
        mpps.PerformedProcedureStepStatus, mpps.Modality = "IN PROGRESS", "CT"
        mpps.PerformedProcedureStepStartDate, mpps.PerformedProcedureStepStartTime = (
            "20261126",
            "0930",
        )
        create_then_complete(assoc, mpps)
    finally:
        assoc.release()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    settings = dataclasses.replace(
        broker_settings(tmp_path_factory.mktemp("metrics") / "data"),
        hl7_senders=MappingProxyType({"ris": {"addresses": ["127.0.0.1"]}}),
        dicom_scanners=MappingProxyType({SCANNER: {"addresses": ["127.0.0.1"]}}),
        dicom_allow_unknown_callers="loopback",
    )
    with running_broker(settings) as running:
        yield running


def test_metrics_count_real_traffic_with_bounded_labels(broker: Broker) -> None:
    assert broker.endpoints is not None and broker.services is not None
    ep = broker.endpoints
    # first in the module: the worklist's counts are kept a few seconds from a scrape
    with MLLPClient("127.0.0.1", ep.hl7_port, timeout=30) as client:
        accepted = summarize_ack(client.send(_message("orm_o01_nw_latin1.hl7"))).code
        refused = summarize_ack(client.send(_message("orm_o01_missing_pid3.hl7"))).code
    assert (accepted, refused) == ("AA", "AE")
    assert _query(ep.dicom_port, ep.ae_title, SCANNER) >= 1
    assert _query(ep.dicom_port, ep.ae_title, STRANGER) >= 1
    _perform(ep.dicom_port, ep.ae_title)
    wrong = AE(ae_title=SCANNER)
    wrong.add_requested_context(ModalityWorklistInformationFind)
    assert wrong.associate("127.0.0.1", ep.dicom_port, ae_title="NOT_THE_BROKER").is_rejected
    with socket.create_connection(("127.0.0.1", ep.hl7_port), timeout=30) as junk:
        junk.sendall(b"GET / HTTP/1.1\r\n" * 400)  # not MLLP: closed
        junk.shutdown(socket.SHUT_WR)
        while junk.recv(4096):
            pass
    token, _ = broker.services.auth.create_token(Role.VIEWER, label="scrape", by="test")
    scrape = httpx.get(
        f"{ep.admin_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert scrape.status_code == 200
    assert STRANGER not in scrape.text  # folded into "other"
    s = _samples(scrape.text)
    messages = "mwl_broker_hl7_messages_total"
    assert _value(s, messages, type="ORM^O01", sender="ris", ack_code="AA") == 1
    assert _value(s, messages, type="ORM^O01", sender="ris", ack_code="AE") == 1
    failures = {k[1]: v for k, v in s.items() if k[0] == "mwl_broker_mapping_failures_total"}
    assert sum(failures.values()) == 1
    ((rule_label,),) = failures  # the rule that failed, one of the active set's
    assert rule_label[0] == "rule" and rule_label[1] not in ("other", "message")
    assert _value(s, "mwl_broker_hl7_ingest_seconds_count") == 2
    assert _value(s, "mwl_broker_cfind_seconds_count", calling_ae=SCANNER) == 1
    assert _value(s, "mwl_broker_cfind_seconds_count", calling_ae="other") == 1
    assert _value(s, "mwl_broker_cfind_answers_total", calling_ae=SCANNER) >= 1
    assert _value(s, "mwl_broker_dicom_associations_accepted_total") == 3
    refused = "mwl_broker_dicom_associations_refused_total"
    assert _value(s, refused, reason="called_ae") == 1
    assert _value(s, "mwl_broker_mllp_connections_refused_total", reason="not_mllp") == 1
    assert _value(s, "mwl_broker_mpps_events_total", event="created") == 1
    assert _value(s, "mwl_broker_mpps_events_total", event="completed") == 1
    assert _value(s, "mwl_broker_redis_roundtrip_seconds_count") >= 1
    open_entries = _value(s, "mwl_broker_worklist_entries_by_status", status="open")
    assert open_entries >= 1
    stations = {k[1] for k in s if k[0] == "mwl_broker_worklist_entries"}
    assert stations and all(dict(labels)["station"] in (SCANNER, "other") for labels in stations)
    again = _samples(broker.services.metrics.exposition().decode())
    assert _value(again, "mwl_broker_admin_requests_total", route="/metrics", status="2xx") == 1


def test_metrics_need_a_token_or_a_session(broker: Broker) -> None:
    assert broker.endpoints is not None and broker.services is not None
    url = f"{broker.endpoints.admin_url}/metrics"
    refused = httpx.get(url, timeout=30)
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert "mwl_broker" not in refused.text
    wrong = httpx.get(url, headers={"Authorization": "Bearer mwlb_nope"}, timeout=30)
    assert wrong.status_code == 401
    token, _ = broker.services.auth.create_token(Role.VIEWER, label="prometheus", by="test")
    ok = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# HELP mwl_broker_hl7_messages_total" in ok.text


def test_an_unknown_path_is_counted_as_unmatched(broker: Broker) -> None:
    assert broker.endpoints is not None and broker.services is not None
    url = str(broker.endpoints.admin_url)
    assert httpx.get(f"{url}/no/such/page-CNRYPID4711", timeout=30).status_code == 404
    text = broker.services.metrics.exposition().decode()
    assert "CNRYPID4711" not in text
    assert 'mwl_broker_admin_requests_total{route="unmatched",status="4xx"}' in text


def test_metrics_allow_serves_listed_addresses_without_a_token(tmp_path: Path) -> None:
    settings = broker_settings(tmp_path / "data", metrics_allow=["127.0.0.0/8"])
    with running_broker(settings) as running:
        assert running.endpoints is not None
        answer = httpx.get(f"{running.endpoints.admin_url}/metrics", timeout=30)
    assert answer.status_code == 200 and "mwl_broker_up" in answer.text
