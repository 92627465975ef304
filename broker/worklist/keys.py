"""The Redis key schema: every key the broker uses is built here, nowhere else.

Layout (``{p}`` is the configurable prefix, ``mwl`` by default):

    {p}:entry:{id}            hash  ds (DICOM JSON), order, idx (JSON list of index refs),
                                    status (current SPS status, overlaid on ds when read)
    {p}:order-status          hash  order key -> its last SPS status (a cancel before
                                    its NW leaves one here, so the late NW changes nothing)
    {p}:order-time            hash  order key -> UTC start of the newest MSH-7 applied to it,
                                    "YYYYMMDDHHMMSS.ffffff" (broker.worklist.ordering): an
                                    older message for the order changes nothing
    {p}:order:{order_key}     set   entry ids of one order
    {p}:idx:all               set   every entry id
    {p}:idx:aet:{AE}          set   entry ids by Scheduled Station AE Title
    {p}:idx:mod:{CT}          set   entry ids by Modality
    {p}:idx:pid:{id}          set   entry ids by Patient ID
    {p}:idx:acc:{accession}   set   entry ids by Accession Number
    {p}:idx:date              zset  entry ids scored by SPS Start Date (YYYYMMDD)
    {p}:dedup:{app}|{fac}|{control id}   string  JSON {digest, ack} with a TTL

Patients (``broker.worklist.patients``), written by ADT messages only:

    {p}:patient:{id}          hash  ds (DICOM JSON: the patient-level attributes the ADT
                                    messages carried, PatientID included); overlaid on every
                                    entry of the patient, now and when an order arrives later
    {p}:alias:{old id}        string  the surviving Patient ID after an A40 merge or A47
                                    change of identifier; orders and ADTs with the old ID
                                    are applied to the surviving one (no TTL)

Message log (``broker.hl7.msglog``); ids come from one counter, and every
index sorted set is scored by id so that listing pages by id, newest first:

    {p}:msg:{id}              hash  raw, ack, header, outcome, error, mapping, entries;
                                    TTL = retention, none while on the error list
    {p}:msglog:seq            string  the id counter (INCR)
    {p}:msglog:all            zset  every logged id
    {p}:msglog:time           zset  every logged id scored by received time (ms): age trimming
    {p}:msglog:errors         zset  the error list: ids waiting for reprocess or dismissal
    {p}:msglog:refs           hash  id -> JSON of its index entries (outlives the TTL'd hash)
    {p}:msglog:outcome:{o}    zset  ids by outcome (accepted, duplicate, error, ...)
    {p}:msglog:type:{T^E}     zset  ids by message type
    {p}:msglog:sender:{app}   zset  ids by sending application (MSH-3 as received)
    {p}:msglog:warnings       zset  ids answered with warnings (ERR-4 W: values cut to fit)
    {p}:msglog:cid            zset  score 0, members "{control id}\x1f{id}": lookup by MSH-10

Modality Performed Procedure Steps (``broker.worklist.mpps_store``) and retention
(``broker.worklist.retention``):

    {p}:mpps:{sop instance uid}   hash  ds (DICOM JSON of the instance as created and set),
                                    status (Performed Procedure Step Status), entries (JSON
                                    list of the linked entry ids), refs (JSON list of its
                                    mpps-idx memberships), aet (calling AE), created, updated
                                    (epoch seconds)
    {p}:mpps-idx:time         zset  every instance, scored by its last change (epoch seconds)
    {p}:mpps-idx:study:{uid}  set   instance UIDs by Study Instance UID (of its step items)
    {p}:mpps-idx:acc:{acc}    set   instance UIDs by Accession Number (of its step items)
    {p}:mpps-events           stream  one record per N-CREATE / N-SET, capped (MAXLEN ~),
                                    for the RIS notifier: event, uid, status, aet, entries,
                                    orders, ds
    {p}:ended                 zset  entry ids whose step is over (COMPLETED, CANCELED,
                                    DISCONTINUED), scored by when it ended (epoch seconds;
                                    MPPS writes the exact time, the purge marks the others)

Audit trail (``broker.audit``):

    {p}:audit                 stream  one record per security-relevant event, capped (MAXLEN ~
                                    audit_max_events); no patient data outside its ``phi`` field
    {p}:audit:export          hash  the syslog export's position (last id sent) and lease
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.worklist.model import DedupKey

__all__ = ["KeySchema"]


def _part(value: str) -> str:
    """Keep key parts readable and unambiguous: escape the separators we use."""
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("|", "\\|")


@dataclass(frozen=True)
class KeySchema:
    """Builds every Redis key from one prefix."""

    prefix: str = "mwl"

    def entry(self, entry_id: str) -> str:
        return f"{self.prefix}:entry:{entry_id}"

    def entry_prefix(self) -> str:
        return f"{self.prefix}:entry:"

    def order(self, order_key: str) -> str:
        return f"{self.prefix}:order:{_part(order_key)}"

    def order_status(self) -> str:
        return f"{self.prefix}:order-status"

    def order_time(self) -> str:
        return f"{self.prefix}:order-time"

    def all_entries(self) -> str:
        return f"{self.prefix}:idx:all"

    def by_station(self, ae_title: str) -> str:
        return f"{self.prefix}:idx:aet:{_part(ae_title)}"

    def by_modality(self, modality: str) -> str:
        return f"{self.prefix}:idx:mod:{_part(modality)}"

    def by_patient(self, patient_id: str) -> str:
        return f"{self.prefix}:idx:pid:{_part(patient_id)}"

    def by_accession(self, accession: str) -> str:
        return f"{self.prefix}:idx:acc:{_part(accession)}"

    def patient(self, patient_id: str) -> str:
        return f"{self.prefix}:patient:{_part(patient_id)}"

    def patient_time(self) -> str:
        """Hash: Patient ID -> MSH-7 (UTC, ``ordering``) of the newest ADT applied to it."""
        return f"{self.prefix}:patient-time"

    def patient_alias(self, patient_id: str) -> str:
        return f"{self.prefix}:alias:{_part(patient_id)}"

    def by_date(self) -> str:
        return f"{self.prefix}:idx:date"

    def dedup(self, key: DedupKey) -> str:
        parts = (key.sending_application, key.sending_facility, key.control_id)
        return f"{self.prefix}:dedup:" + "|".join(_part(p) for p in parts)

    def message(self, message_id: str) -> str:
        return f"{self.prefix}:msg:{message_id}"

    def message_prefix(self) -> str:
        return f"{self.prefix}:msg:"

    def message_seq(self) -> str:
        return f"{self.prefix}:msglog:seq"

    def message_log(self) -> str:
        return f"{self.prefix}:msglog:all"

    def message_times(self) -> str:
        return f"{self.prefix}:msglog:time"

    def message_errors(self) -> str:
        return f"{self.prefix}:msglog:errors"

    def message_refs(self) -> str:
        return f"{self.prefix}:msglog:refs"

    def message_bytes(self) -> str:
        """Raw bytes held by the log's messages (its byte budget is checked against it)."""
        return f"{self.prefix}:msglog:bytes"

    def messages_by_outcome(self, outcome: str) -> str:
        return f"{self.prefix}:msglog:outcome:{_part(outcome)}"

    def messages_by_type(self, message_type: str) -> str:
        return f"{self.prefix}:msglog:type:{_part(message_type)}"

    def messages_by_sender(self, sending_application: str) -> str:
        return f"{self.prefix}:msglog:sender:{_part(sending_application)}"

    def messages_by_control_id(self) -> str:
        return f"{self.prefix}:msglog:cid"

    def messages_with_warnings(self) -> str:
        return f"{self.prefix}:msglog:warnings"

    def mpps(self, sop_instance_uid: str) -> str:
        return f"{self.prefix}:mpps:{_part(sop_instance_uid)}"

    def mpps_by_time(self) -> str:
        return f"{self.prefix}:mpps-idx:time"

    def mpps_by_study(self, study_instance_uid: str) -> str:
        return f"{self.prefix}:mpps-idx:study:{_part(study_instance_uid)}"

    def mpps_by_accession(self, accession: str) -> str:
        return f"{self.prefix}:mpps-idx:acc:{_part(accession)}"

    def mpps_events(self) -> str:
        return f"{self.prefix}:mpps-events"

    def entries_ended(self) -> str:
        return f"{self.prefix}:ended"

    def audit(self) -> str:
        return f"{self.prefix}:audit"

    def audit_export(self) -> str:
        return f"{self.prefix}:audit:export"
