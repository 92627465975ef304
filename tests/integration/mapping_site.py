"""A site's own order mapping for the tests of adding and deleting mapping files: OML^O21
(lab-style orders, say from a cardiology system), a type the shipped set does not claim,
and a message of that type."""

from __future__ import annotations

SITE_NAME = "orders-cardiology.yaml"
SITE_FILE = """\
# Cardiology orders (OML^O21 from the cardiology system): a site mapping.
name: cardiology
message_types:
  OML^O21: OBR
order_control:
  NW: schedule
  CA: cancel
order_key:
  - PLACER: ORC-2
attributes:
  PatientID: {path: PID-3, required: true}
  PatientName: PID-5
  AccessionNumber: OBR-18
  ScheduledProcedureStepSequence:
    Modality: {path: OBR-24, transform: upper}
"""
CARDIO_ORDER = "\r".join(
    [
        "MSH|^~\\&|CARDIO|HEART|MWL_BROKER|HOSPITAL|20261125083000||OML^O21^OML_O21|OML-77|P|2.5.1",
        "PID|||PAT-77^^^HOSP||Herz^Hanna||19700101|F",
        "ORC|NW|PLC-77^CARDIO|FIL-77^CARDIO||SC",
        "OBR|1|PLC-77^CARDIO|FIL-77^CARDIO|ECHO^Echo||||||||||||||ACC-77||||||US",
    ]
)
