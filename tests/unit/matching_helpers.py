"""What the matching tests share: Datasets written as {keyword: value}, the query as an SCP
receives it (through pynetdicom's codec), and the entry most cases match against."""

from __future__ import annotations

import warnings
from io import BytesIO
from typing import Any

from pydicom import config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode, encode

Spec = dict[str, Any]


def make(spec: Spec) -> Dataset:
    """A Dataset from {keyword: value}; a list of dicts is a sequence.

    Values are set without pydicom's validation, since keys such as ``C*``
    (CS) or ``20240101-20240105`` (DA) are valid queries but not valid values.
    """
    ds = Dataset()
    for keyword, value in spec.items():
        tag = tag_for_keyword(keyword)
        assert tag is not None, keyword
        vr = dictionary_VR(tag)
        if vr == "SQ":
            value = [make(item) for item in value]
        ds.add(DataElement(tag, vr, value, validation_mode=config.IGNORE))
    return ds


def sps(**keys: Any) -> Spec:
    return {"ScheduledProcedureStepSequence": [keys]}


def wire(query: Dataset) -> Dataset:
    """The query as an SCP receives it: encoded and decoded by pynetdicom.

    Elements are converted eagerly, inside a filter for pydicom's warning about
    keys that are not valid values (``1.2.*`` as a UID), which an SCP logs.
    """
    raw = encode(query, True, True)
    assert raw is not None
    decoded = decode(BytesIO(raw), True, True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Invalid value for VR", category=UserWarning)
        for _ in decoded.iterall():
            pass
    return decoded


ENTRY_SPEC: Spec = {
    "PatientName": "Müller^Hans",
    "PatientID": "P1",
    "PatientBirthDate": "19700101",
    "AccessionNumber": "A1",
    "StudyInstanceUID": "1.2.3",
    "MedicalAlerts": "",
    "DateTime": "20240105093000.000000+0100",
    "RequestedProcedureID": "RP1",
    "ReferencedStudySequence": [
        {"ReferencedSOPClassUID": "1.2.840.10008.3.1.2.3.1", "ReferencedSOPInstanceUID": "1.2.3.4"}
    ],
    "ScheduledProcedureStepSequence": [
        {
            "ScheduledStationAETitle": ["CT1", "CT2"],
            "Modality": "CT",
            "ScheduledProcedureStepStartDate": "20240105",
            "ScheduledProcedureStepStartTime": "093000",
            "ScheduledPerformingPhysicianName": "Dupont^Gérard",
            "ScheduledProcedureStepID": "SPS1",
            "ScheduledProcedureStepDescription": "Thorax",
            "ScheduledStationName": "",
        }
    ],
}
ENTRY = make(ENTRY_SPEC)
