"""Audit events as DICOM audit messages (PS3.15 A.5, the XML IHE ATNA repositories take).

Each :class:`~broker.audit.events.AuditType` maps to the PS3.15 A.5.3 message that fits:

    application-start / -stop        110100 Application Activity, 110120 / 110121
    connection-refused               110113 Security Alert, 110126 Node Authentication
    association-accepted / -rejected 110114 User Authentication, 110122 Login
    query (C-FIND, DICOMweb and      110112 Query
      the console's search)
    mpps-create / mpps-set           110111 Procedure Record, action C / U
    message-refused (HL7)            110113 Security Alert: 110126 Node Authentication
                                     (MSH-3/MSH-4), else 110132 Use of Restricted Function
    mapping-seed / -publish /        110113 Security Alert, 110131 Software Configuration
      -rollback
    message-reprocess / -dismiss     110109 Order Record, action U
    purge                            110109 Order Record, action D
    message-read / entry-read /      110109 Order Record, action R
      outbound-read
    entry-export (CSV)               110106 Export, action R
    import                           110107 Import, action C
    audit-read                       110101 Audit Log Used
    audit-dropped                    110113 Security Alert, 110133 Audit Recording Stopped

EventOutcomeIndicator: 0 success, 4 refused (minor failure), 8 failed (serious
failure); EventOutcomeDescription: the event's reason. Active participants: the
requestor (UserID the calling AE title, with UserIDTypeCode 110119 Station AE
Title, or the HL7 sender, or the operating-system user; NetworkAccessPointID its
address, type 2) and the broker (its AE title, or the application name; type 1, the
host name), with Source / Destination role IDs on network events. Deviations, on
purpose: the Patient participant objects of Query, Procedure Record and Order Record
are left out, and a Query's ParticipantObjectQuery holds the key names and how each
was matched (``details.keys``), not the encoded identifier; the values are added
only when ``log_phi`` recorded them (the event's ``phi``).
"""

from __future__ import annotations

import base64
import pathlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from broker.audit.events import AuditEvent, AuditType, Outcome, iso_time
from broker.common.jsontext import dumps
from broker.common.netaddr import peer_ip

__all__ = ["AtnaSource", "audit_message"]

_MWL_FIND = "1.2.840.10008.5.1.4.31"
_MPPS = "1.2.840.10008.3.1.2.3.3"
_OUTCOME = {Outcome.SUCCESS: "0", Outcome.REFUSED: "4", Outcome.FAILED: "8"}

Code = tuple[str, str, str]  # csd-code, codeSystemName, originalText

_APPLICATION_ACTIVITY: Code = ("110100", "DCM", "Application Activity")
_SECURITY_ALERT: Code = ("110113", "DCM", "Security Alert")
_USER_AUTHENTICATION: Code = ("110114", "DCM", "User Authentication")
_ORDER_RECORD: Code = ("110109", "DCM", "Order Record")
_NODE_AUTHENTICATION: Code = ("110126", "DCM", "Node Authentication")
_SOFTWARE_CONFIGURATION: Code = ("110131", "DCM", "Software Configuration")
_RESTRICTED_FUNCTION: Code = ("110132", "DCM", "Use of Restricted Function")
_USER_SECURITY: Code = ("110137", "DCM", "User Security Attributes Changed")
_SOURCE: Code = ("110153", "DCM", "Source Role ID")
_DESTINATION: Code = ("110152", "DCM", "Destination Role ID")
_APPLICATION: Code = ("110150", "DCM", "Application")
_STATION_AE: Code = ("110119", "DCM", "Station AE Title")
_SOP_CLASS: Code = ("110181", "DCM", "SOP Class UID")
_URI: Code = ("12", "RFC-3881", "URI")

# type -> (EventID, EventActionCode, EventTypeCode or None)
_EVENTS: dict[AuditType, tuple[Code, str, Code | None]] = {
    AuditType.APPLICATION_START: (
        _APPLICATION_ACTIVITY,
        "E",
        ("110120", "DCM", "Application Start"),
    ),
    AuditType.APPLICATION_STOP: (_APPLICATION_ACTIVITY, "E", ("110121", "DCM", "Application Stop")),
    AuditType.CONNECTION_REFUSED: (_SECURITY_ALERT, "E", _NODE_AUTHENTICATION),
    AuditType.ASSOCIATION_ACCEPTED: (_USER_AUTHENTICATION, "E", ("110122", "DCM", "Login")),
    AuditType.ASSOCIATION_REJECTED: (_USER_AUTHENTICATION, "E", ("110122", "DCM", "Login")),
    AuditType.QUERY: (("110112", "DCM", "Query"), "E", None),
    AuditType.MPPS_CREATE: (("110111", "DCM", "Procedure Record"), "C", None),
    AuditType.MPPS_SET: (("110111", "DCM", "Procedure Record"), "U", None),
    AuditType.MESSAGE_REFUSED: (_SECURITY_ALERT, "E", _RESTRICTED_FUNCTION),
    AuditType.MAPPING_SEED: (_SECURITY_ALERT, "E", _SOFTWARE_CONFIGURATION),
    AuditType.MAPPING_PUBLISH: (_SECURITY_ALERT, "E", _SOFTWARE_CONFIGURATION),
    AuditType.MAPPING_ROLLBACK: (_SECURITY_ALERT, "E", _SOFTWARE_CONFIGURATION),
    AuditType.MESSAGE_REPROCESS: (_ORDER_RECORD, "U", None),
    AuditType.MESSAGE_DISMISS: (_ORDER_RECORD, "U", None),
    AuditType.PURGE: (_ORDER_RECORD, "D", None),
    AuditType.IMPORT: (("110107", "DCM", "Import"), "C", None),
    AuditType.AUDIT_READ: (("110101", "DCM", "Audit Log Used"), "R", None),
    AuditType.AUDIT_DROPPED: (_SECURITY_ALERT, "E", ("110133", "DCM", "Audit Recording Stopped")),
    AuditType.LOGIN: (_USER_AUTHENTICATION, "E", ("110122", "DCM", "Login")),
    AuditType.LOGOUT: (_USER_AUTHENTICATION, "E", ("110123", "DCM", "Logout")),
    AuditType.USER_ADD: (_SECURITY_ALERT, "E", _USER_SECURITY),
    AuditType.USER_PASSWORD: (_SECURITY_ALERT, "E", _USER_SECURITY),
    AuditType.USER_DISABLE: (_SECURITY_ALERT, "E", _USER_SECURITY),
    AuditType.USER_ENABLE: (_SECURITY_ALERT, "E", _USER_SECURITY),
    AuditType.USER_ROLE: (_SECURITY_ALERT, "E", _USER_SECURITY),
    AuditType.TOKEN_CREATE: (_SECURITY_ALERT, "E", _USER_SECURITY),
    AuditType.TOKEN_REVOKE: (_SECURITY_ALERT, "E", _USER_SECURITY),
    AuditType.ENTRY_EDIT: (_ORDER_RECORD, "U", None),
    AuditType.ENTRY_STATUS: (_ORDER_RECORD, "U", None),
    AuditType.ENTRY_DELETE: (_ORDER_RECORD, "D", None),
    AuditType.BACKUP: (("110106", "DCM", "Export"), "R", None),
    AuditType.RESTORE: (("110107", "DCM", "Import"), "C", None),
    AuditType.OUTBOUND_RETRY: (_ORDER_RECORD, "E", None),
    AuditType.OUTBOUND_DISCARD: (_ORDER_RECORD, "D", None),
    AuditType.OUTBOUND_READ: (_ORDER_RECORD, "R", None),
    AuditType.MESSAGE_READ: (_ORDER_RECORD, "R", None),
    AuditType.ENTRY_READ: (_ORDER_RECORD, "R", None),
    AuditType.ENTRY_EXPORT: (("110106", "DCM", "Export"), "R", None),
}
_DICOM_EVENTS = frozenset(
    {
        AuditType.ASSOCIATION_ACCEPTED,
        AuditType.ASSOCIATION_REJECTED,
        AuditType.QUERY,
        AuditType.MPPS_CREATE,
        AuditType.MPPS_SET,
    }
)


@dataclass(frozen=True)
class AtnaSource:
    """Who reports: the broker's application name, AE title and host."""

    app_name: str
    ae_title: str
    node: str


def _code(parent: ET.Element, tag: str, code: Code) -> None:
    ET.SubElement(
        parent, tag, {"csd-code": code[0], "codeSystemName": code[1], "originalText": code[2]}
    )


def audit_message(event: AuditEvent, source: AtnaSource) -> bytes:
    """The PS3.15 A.5 audit message for ``event``, UTF-8 XML with its declaration."""
    event_id, action, type_code = _EVENTS[event.type]
    if event.type is AuditType.MESSAGE_REFUSED and event.details.get("location") in (
        "MSH-3",
        "MSH-4",
    ):
        type_code = _NODE_AUTHENTICATION
    root = ET.Element("AuditMessage")
    ident = ET.SubElement(
        root,
        "EventIdentification",
        {
            "EventActionCode": action,
            "EventDateTime": iso_time(event.time),
            "EventOutcomeIndicator": _OUTCOME[event.outcome],
        },
    )
    _code(ident, "EventID", event_id)
    if type_code is not None:
        _code(ident, "EventTypeCode", type_code)
    if event.reason:
        ET.SubElement(ident, "EventOutcomeDescription").text = event.reason
    _participants(root, event, source)
    sid = ET.SubElement(
        root, "AuditSourceIdentification", {"AuditSourceID": event.node or source.node}
    )
    _code(sid, "AuditSourceTypeCode", ("4", "RFC-3881", "Application Server Process"))
    _participant_object(root, event)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _participants(root: ET.Element, event: AuditEvent, source: AtnaSource) -> None:
    """The requestor (peer, sender or user), then the broker."""
    network = bool(event.address or event.ae or event.sender)
    who = event.ae or event.sender or event.user or event.address
    if who:
        attrs = {"UserID": who, "UserIsRequestor": "true"}
        if event.address:
            kind = "2" if peer_ip(event.address) is not None else "1"
            attrs |= {"NetworkAccessPointID": event.address, "NetworkAccessPointTypeCode": kind}
        elif event.user:
            attrs |= {"NetworkAccessPointID": event.node or source.node}
            attrs["NetworkAccessPointTypeCode"] = "1"
        peer = ET.SubElement(root, "ActiveParticipant", attrs)
        if network:
            _code(peer, "RoleIDCode", _SOURCE)
        if event.ae:
            _code(peer, "UserIDTypeCode", _STATION_AE)
    dicom = event.type in _DICOM_EVENTS
    broker = ET.SubElement(
        root,
        "ActiveParticipant",
        {
            "UserID": source.ae_title if dicom else source.app_name,
            "UserIsRequestor": "false" if who else "true",
            "NetworkAccessPointID": event.node or source.node,
            "NetworkAccessPointTypeCode": "1",
        },
    )
    _code(broker, "RoleIDCode", _DESTINATION if network else _APPLICATION)
    if dicom:
        _code(broker, "UserIDTypeCode", _STATION_AE)


def _participant_object(root: ET.Element, event: AuditEvent) -> None:
    """What the event was about, where the message type has one."""
    if event.type is AuditType.QUERY:
        obj = _object(root, _MWL_FIND, "2", "3", _SOP_CLASS)
        query: Any = dict(event.phi) if event.phi else list(event.details.get("keys", []))
        encoded = base64.b64encode(dumps(query).encode("utf-8")).decode("ascii")
        ET.SubElement(obj, "ParticipantObjectQuery").text = encoded
        syntax = str(event.details.get("transfer_syntax", ""))
        if syntax:
            value = base64.b64encode(syntax.encode("ascii", "replace")).decode("ascii")
            ET.SubElement(
                obj, "ParticipantObjectDetail", {"type": "TransferSyntax", "value": value}
            )
    elif event.type in (AuditType.MPPS_CREATE, AuditType.MPPS_SET):
        obj = _object(root, _MPPS, "2", "3", _SOP_CLASS)
        if event.target:
            ET.SubElement(obj, "MPPS", {"UID": event.target})
    elif event.type is AuditType.AUDIT_READ:
        obj = _object(root, "urn:mwl-broker:audit", "2", "13", _URI)
        ET.SubElement(obj, "ParticipantObjectName").text = "Security Audit Log"
    elif event.type is AuditType.IMPORT and event.target:
        path = pathlib.PurePosixPath(event.target)
        _object(root, path.as_uri() if path.is_absolute() else event.target, "2", "4", _URI)
    elif event.target:
        kind = event.type.value.split("-", 1)[0]  # mapping, message
        _object(root, f"urn:mwl-broker:{kind}:{event.target}", "2", "4", _URI)


def _object(root: ET.Element, oid: str, type_code: str, role: str, id_type: Code) -> ET.Element:
    obj = ET.SubElement(
        root,
        "ParticipantObjectIdentification",
        {
            "ParticipantObjectID": oid,
            "ParticipantObjectTypeCode": type_code,
            "ParticipantObjectTypeCodeRole": role,
        },
    )
    _code(obj, "ParticipantObjectIDTypeCode", id_type)
    return obj
