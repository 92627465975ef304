"""Every read of patient data through the console and the CLI is on the audit trail, once
per request, with the user and the record's id and counts, and no patient value: a received
message (its detail and its bytes, ``messages show``), a worklist entry (DICOM JSON and its
dump), an explanation (console and ``explain``), the console's search (a ``query``) and
its CSV export. A list of message summaries (no patient data) is not. Canary values: none
of them in any field of a record, nor in its PS3.15 message. Real redis-server, real HTTP."""

from __future__ import annotations

import io
from contextlib import closing
from pathlib import Path

import pytest
import redis

from broker.audit.atna import AtnaSource, audit_message
from broker.audit.events import AuditEvent, AuditType, to_fields
from broker.audit.stream import AuditFilter
from broker.cli import main
from broker.services.application import Services
from broker.store.connection import EmbeddedRedis
from tests.integration.admin_helpers import Api, Recorded
from tests.integration.admin_helpers import site_services as site_services_for
from tests.integration.test_services import ENVIRON
from tests.integration.worklist_api_helpers import ENTRIES, SEARCH, console, orm, send
from tests.integration.worklist_api_helpers import site_services as worklist_services

NAME = "Zzreadcanary^Qqreadgiven"
CANARIES = ("zzreadcanary", "qqreadgiven", "cnryreadpid", "cnryreadacc", "19030405")
EXPORT = "/api/worklist/export"
READS = frozenset({AuditType.MESSAGE_READ, AuditType.ENTRY_READ, AuditType.ENTRY_EXPORT,
                   AuditType.QUERY})  # fmt: skip


def canary_order() -> bytes:
    raw = orm(1, name=NAME).replace(b"PAT-1", b"CNRYREADPID").replace(b"ACC-1", b"CNRYREADACC")
    return raw.replace(b"19650412", b"19030405")


def reads(audit: Recorded) -> list[AuditEvent]:
    return [e for e in audit.events if e.type in READS]


def no_canary(event: AuditEvent) -> None:
    """Nothing of the canary patient in the record nor in its PS3.15 message."""
    fields = " ".join(f"{k}={v}" for k, v in to_fields(event, "node").items()).lower()
    message = audit_message(event, AtnaSource("mwl-broker", "MWL_BROKER", "node")).decode()
    assert [c for c in CANARIES if c in fields or c in message.lower()] == [], fields
    assert not event.phi


@pytest.fixture
def services(redis_client: redis.Redis, tmp_path: Path, audit: Recorded) -> Services:
    services = worklist_services(redis_client, tmp_path, audit)
    send(services, canary_order())
    return services


def test_a_search_is_a_query_and_an_export_an_entry_export(api: Api, audit: Recorded) -> None:
    with closing(console(api)) as client:
        found = client.post(SEARCH, json={"criteria": {"PatientName": "Zzread*"}}).json()
        assert [e["patient_id"] for e in found["entries"]] == ["CNRYREADPID"]
        (query,) = reads(audit)
        assert client.post(EXPORT, json={"criteria": {"PatientID": "CNRYREADPID"}}).is_success
    query, export = reads(audit)
    assert (query.type, query.user, query.details["via"]) == (AuditType.QUERY, "viewer", "console")
    assert query.details["answers"] == 1 and "00100010*" in query.details["keys"]
    assert (export.type, export.user) == (AuditType.ENTRY_EXPORT, "viewer")
    assert export.details["rows"] == 1 and export.details["cut"] is False
    assert "00100020=" in export.details["keys"]
    for event in (query, export):
        no_canary(event)
    xml = audit_message(export, AtnaSource("mwl-broker", "MWL_BROKER", "node")).decode()
    assert 'csd-code="110106"' in xml and 'EventActionCode="R"' in xml


def test_an_entry_read_whole_is_an_entry_read_once_per_request(api: Api, audit: Recorded) -> None:
    with closing(console(api, "token")) as client:
        (entry_id,) = [e["entry_id"] for e in client.post(SEARCH, json={}).json()["entries"]]
        assert client.get(f"{ENTRIES}/{entry_id}").is_success
        assert client.get(f"{ENTRIES}/{entry_id}/dump").is_success
        assert client.get(f"{ENTRIES}/{'0' * 30}").status_code == 404  # nothing shown
    search, as_json, dump = reads(audit)
    assert search.type is AuditType.QUERY and search.user.startswith("token:")
    for event, view in ((as_json, "json"), (dump, "dump")):
        assert (event.type, event.user, event.target) == (AuditType.ENTRY_READ, search.user,
                                                          entry_id)  # fmt: skip
        assert event.details["view"] == view and event.details["revision"]
        no_canary(event)
        xml = audit_message(event, AtnaSource("mwl-broker", "MWL_BROKER", "node")).decode()
        assert 'csd-code="110109"' in xml and 'EventActionCode="R"' in xml
        assert f"urn:mwl-broker:entry:{entry_id}" in xml


def test_the_console_opens_an_entry_with_one_read(api: Api, audit: Recorded) -> None:
    with closing(console(api)) as client:
        (entry_id,) = [e["entry_id"] for e in client.post(SEARCH, json={}).json()["entries"]]
        shown = client.get(f"{ENTRIES}/{entry_id}", params={"include": "dump"}).json()
    assert "CNRYREADACC" in shown["dump"] and shown["dataset"]
    _, opened = reads(audit)  # the search, then one entry-read for JSON and dump together
    assert (opened.type, opened.target) == (AuditType.ENTRY_READ, entry_id)
    assert opened.details["view"] == "json+dump" and opened.details["revision"]
    no_canary(opened)


def test_a_message_read_is_audited_and_its_list_is_not(api: Api, audit: Recorded) -> None:
    with closing(console(api)) as client:
        listed = client.get("/api/messages").json()["items"]
        assert [m["id"] for m in listed] == ["1"] and reads(audit) == []
        detail = client.get("/api/messages/1").json()
        assert any("CNRYREADPID" in line for line in detail["text"])
        assert b"CNRYREADPID" in client.get("/api/messages/1/raw").content
        assert client.get("/api/messages/42").status_code == 404
    shown, raw = reads(audit)
    for event, view in ((shown, "detail"), (raw, "raw")):
        assert (event.type, event.user, event.target) == (AuditType.MESSAGE_READ, "viewer", "1")
        assert event.details["view"] == view and event.details["bytes"] > 0
        no_canary(event)


def _site_with_a_canary(
    redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Services, Path]:
    """The site's services with the canary order sent, and the settings file a command reads."""
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    services = site_services_for(redis_client, tmp_path, "")
    send(services, canary_order())
    return services, tmp_path / "broker.toml"


def test_messages_show_on_the_command_line_is_audited_with_the_os_user(
    redis_client: redis.Redis, redis_server: EmbeddedRedis, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    services, config = _site_with_a_canary(redis_client, tmp_path, monkeypatch)
    args = ["messages", "show", "1", "--config", str(config), "--redis-url", redis_server.url]
    assert main(args) == 0
    assert "CNRYREADPID" in capsys.readouterr().out
    wanted = AuditFilter(types=frozenset({AuditType.MESSAGE_READ}))
    (stored,) = services.audit_trail.read(wanted, limit=9)
    event = stored.event
    assert event.target == "1" and event.user and event.details["view"] == "cli"
    assert event.details["command"] == "messages show"
    no_canary(event)


def test_an_explanation_is_an_entry_read_naming_how_not_what(api: Api, audit: Recorded) -> None:
    ask = {"ae_title": "ALL", "date": "none", "station": "*"}
    with closing(console(api)) as client:
        (entry_id,) = [e["entry_id"] for e in client.post(SEARCH, json={}).json()["entries"]]
        by_accession = client.post(
            "/api/scanners/explain", json={**ask, "accession": "CNRYREADACC"}
        )
        assert by_accession.json()["seen"] == 1
        assert client.post("/api/scanners/explain", json={**ask, "entry_id": entry_id}).is_success
    _, accession, by_id = reads(audit)
    assert (accession.type, accession.user, accession.target) == (
        AuditType.ENTRY_READ,
        "viewer",
        "",
    )
    assert accession.details == {"view": "explain", "named_by": "accession", "entries": 1,
                                 "seen": 1, "scanner": "ALL"}  # fmt: skip
    assert (by_id.target, by_id.details["named_by"]) == (entry_id, "entry_id")
    for event in (accession, by_id):
        no_canary(event)


def test_explain_on_the_command_line_is_an_entry_read(
    redis_client: redis.Redis, redis_server: EmbeddedRedis, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    services, config = _site_with_a_canary(redis_client, tmp_path, monkeypatch)
    args = ["explain", "--aet", "CT1", "--patient-id", "--date", "none",
            "--config", str(config), "--redis-url", redis_server.url]  # fmt: skip
    monkeypatch.setattr("sys.stdin", io.StringIO("CNRYREADPID\n"))
    main(args)
    assert "CNRYREADACC" in capsys.readouterr().out
    wanted = AuditFilter(types=frozenset({AuditType.ENTRY_READ}))
    (stored,) = services.audit_trail.read(wanted, limit=9)
    event = stored.event
    assert event.details["named_by"] == "patient_id" and event.details["entries"] == 1
    assert event.details["command"] == "explain" and event.user
    no_canary(event)
