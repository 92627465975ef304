"""Audit events as DICOM PS3.15 A.5 audit messages in RFC 5424 syslog messages (no sockets)."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from broker.audit.atna import AtnaSource, audit_message
from broker.audit.events import AuditEvent, AuditType, Outcome
from broker.audit.syslog import SyslogTarget, rfc5424
from broker.errors import ConfigError
from broker.settings import load_settings

SOURCE = AtnaSource("mwl-broker", "MWL_BROKER", "broker-host")


def code(element: ET.Element | None) -> tuple[str, str, str]:
    assert element is not None
    return (element.get("csd-code", ""), element.get("codeSystemName", ""),
            element.get("originalText", ""))  # fmt: skip


def found(root: ET.Element, path: str) -> ET.Element:
    element = root.find(path)
    assert element is not None, path
    return element


def parsed(event: AuditEvent) -> ET.Element:
    body = audit_message(event, SOURCE)
    assert body.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    return ET.fromstring(body)


def query_event(**extra: Any) -> AuditEvent:
    return AuditEvent(
        AuditType.QUERY,
        address="10.1.2.3",
        ae="CT1",
        details={"answers": 3, "status": "0000", "keys": ["PatientName*", "PatientID"],
                 "transfer_syntax": "1.2.840.10008.1.2"},
        **extra,
    )  # fmt: skip


def test_a_query_is_a_query_message_with_both_participants_and_no_values() -> None:
    root = parsed(query_event())
    ident = root.find("EventIdentification")
    assert ident is not None
    assert ident.get("EventActionCode") == "E" and ident.get("EventOutcomeIndicator") == "0"
    assert code(ident.find("EventID")) == ("110112", "DCM", "Query")
    caller, broker = root.findall("ActiveParticipant")
    assert caller.get("UserID") == "CT1" and caller.get("UserIsRequestor") == "true"
    assert caller.get("NetworkAccessPointID") == "10.1.2.3"
    assert caller.get("NetworkAccessPointTypeCode") == "2"
    assert code(caller.find("RoleIDCode"))[0] == "110153"  # Source
    assert code(caller.find("UserIDTypeCode")) == ("110119", "DCM", "Station AE Title")
    assert broker.get("UserID") == "MWL_BROKER" and broker.get("UserIsRequestor") == "false"
    assert code(broker.find("RoleIDCode"))[0] == "110152"  # Destination
    source = root.find("AuditSourceIdentification")
    assert source is not None and source.get("AuditSourceID") == "broker-host"
    obj = root.find("ParticipantObjectIdentification")
    assert obj is not None and obj.get("ParticipantObjectID") == "1.2.840.10008.5.1.4.31"
    assert code(obj.find("ParticipantObjectIDTypeCode"))[0] == "110181"  # SOP Class UID
    query = obj.findtext("ParticipantObjectQuery") or ""
    assert json.loads(base64.b64decode(query)) == ["PatientName*", "PatientID"]
    detail = obj.find("ParticipantObjectDetail")
    assert detail is not None and detail.get("type") == "TransferSyntax"
    assert base64.b64decode(detail.get("value", "")) == b"1.2.840.10008.1.2"


def test_query_values_go_into_the_query_only_when_recorded() -> None:
    root = parsed(query_event(phi={"PatientName": "Zzcanary*"}))
    query = root.findtext("ParticipantObjectIdentification/ParticipantObjectQuery") or ""
    assert json.loads(base64.b64decode(query)) == {"PatientName": "Zzcanary*"}


@pytest.mark.parametrize(
    ("kind", "outcome", "event_id", "type_code", "indicator"),
    [
        (AuditType.APPLICATION_START, Outcome.SUCCESS, "110100", "110120", "0"),
        (AuditType.CONNECTION_REFUSED, Outcome.REFUSED, "110113", "110126", "4"),
        (AuditType.ASSOCIATION_REJECTED, Outcome.REFUSED, "110114", "110122", "4"),
        (AuditType.MPPS_SET, Outcome.SUCCESS, "110111", None, "0"),
        (AuditType.MESSAGE_REFUSED, Outcome.REFUSED, "110113", "110132", "4"),
        (AuditType.MAPPING_PUBLISH, Outcome.SUCCESS, "110113", "110131", "0"),
        (AuditType.PURGE, Outcome.FAILED, "110109", None, "8"),
        (AuditType.AUDIT_READ, Outcome.SUCCESS, "110101", None, "0"),
        (AuditType.AUDIT_DROPPED, Outcome.FAILED, "110113", "110133", "8"),
    ],
)
def test_each_type_has_its_message(
    kind: AuditType, outcome: Outcome, event_id: str, type_code: str | None, indicator: str
) -> None:
    root = parsed(AuditEvent(kind, outcome, reason="why", target="7", user="admin"))
    assert code(root.find("EventIdentification/EventID"))[0] == event_id
    types = root.findall("EventIdentification/EventTypeCode")
    assert [code(t)[0] for t in types] == ([type_code] if type_code else [])
    assert found(root, "EventIdentification").get("EventOutcomeIndicator") == indicator
    assert root.findtext("EventIdentification/EventOutcomeDescription") == "why"


def test_a_refused_sender_is_a_node_authentication_alert_and_mpps_names_its_instance() -> None:
    sender = AuditEvent(AuditType.MESSAGE_REFUSED, Outcome.REFUSED, details={"location": "MSH-3"})
    assert code(parsed(sender).find("EventIdentification/EventTypeCode"))[0] == "110126"
    mpps = parsed(AuditEvent(AuditType.MPPS_CREATE, ae="CT1", target="1.2.3.4"))
    assert found(mpps, "EventIdentification").get("EventActionCode") == "C"
    assert found(mpps, "ParticipantObjectIdentification/MPPS").get("UID") == "1.2.3.4"


def test_the_syslog_message_is_rfc5424_with_the_ihe_msgid_and_a_bom() -> None:
    message = rfc5424(b"<AuditMessage/>", timestamp="2026-12-04T10:11:12.345Z",
                      hostname="broker host", app_name="mwl-broker", warning=True)  # fmt: skip
    match = re.fullmatch(
        rb"<84>1 2026-12-04T10:11:12\.345Z broker_host mwl-broker \d+ IHE\+RFC-3881 - "
        rb"\xef\xbb\xbf<AuditMessage/>",
        message,
    )
    assert match, message


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("siem.example:514", ("udp", "siem.example", 514)),
        ("udp://10.1.2.3", ("udp", "10.1.2.3", 514)),
        ("tcp://siem:601", ("tcp", "siem", 601)),
        ("TLS://siem", ("tls", "siem", 6514)),
        ("tls://[fd00::1]:6514", ("tls", "fd00::1", 6514)),
    ],
)
def test_syslog_addresses(text: str, target: tuple[str, str, int]) -> None:
    parsed_target = SyslogTarget.parse(text)
    assert (parsed_target.protocol, parsed_target.host, parsed_target.port) == target


@pytest.mark.parametrize("text", ["http://siem:80", "tcp://:601", "tcp://siem:0", "siem:port"])
def test_wrong_syslog_addresses_say_why(text: str) -> None:
    with pytest.raises(ValueError, match=r"udp, tcp or tls|host\[:port\]|port from 1"):
        SyslogTarget.parse(text)


@pytest.mark.parametrize(
    ("values", "setting"),
    [
        ({"audit_max_events": 10}, "audit_max_events"),
        ({"audit_syslog_app_name": "mwl broker"}, "audit_syslog_app_name"),
        ({"audit_syslog_address": "http://siem"}, "audit_syslog_address"),
        ({"audit_syslog_address": "tcp://siem", "audit_syslog_tls_ca": "ca.pem"},
         "audit_syslog_tls_ca"),
        ({"audit_syslog_address": "tls://siem", "audit_syslog_tls_cert": "c.pem"},
         "audit_syslog_tls_key"),
    ],
)  # fmt: skip
def test_audit_settings_are_checked_and_errors_name_them(
    values: dict[str, object], setting: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={}, overrides=values)
    assert raised.value.setting == setting
