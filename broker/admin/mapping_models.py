"""The mappings API's bodies and answers (pydantic), and the preview as JSON.

A preview is given as structured data for the console's page (per message: the mapping
used, each order change or patient with its DICOM attributes and the per-attribute trace,
the warnings, or the refusal with its ERR location) and as the CLI's rendered text.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from broker.services.mappings import FileProblem, MappingChanges, MappingPreview
from broker.services.preview import (
    AttributeTrace,
    ChangePreview,
    Preview,
    Stations,
    render,
    trace_notes,
)
from broker.store.mapping_versions import MappingVersion

__all__ = [
    "MAX_FILES",
    "FilesBody",
    "MappingProblem",
    "VersionInfo",
    "message_preview",
    "problem",
    "version_info",
]

MAX_FILES = 100  # mapping files in one request
_NAME = Field(max_length=200)


class VersionInfo(BaseModel):
    number: int
    author: str
    comment: str
    created: float = Field(description="epoch seconds")
    digest: str
    based_on: int | None
    files: list[str]


class MappingProblem(BaseModel):
    """One thing wrong: ``file`` None when it is the set as a whole."""

    file: str | None
    line: int | None
    column: int | None
    rule: str
    message: str


class FilesBody(BaseModel):
    """An edit of the active mapping set: changed, new and deleted files at once."""

    files: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_FILES,
        description="changed files: file name (e.g. orders.yaml) -> the whole new YAML text; "
        "a name the active version does not have is added",
    )
    add: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_FILES,
        description="new files: name -> YAML text; a plain name (letters, digits, '.', '_', "
        "'-', ending in .yaml, no directory, at most 105 characters); 422 if the active "
        "version has it",
    )
    delete: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list,
        max_length=MAX_FILES,
        description="names of files to delete; 422 if the active version has no such file, "
        "or if no file would be left",
    )

    def changes(self) -> MappingChanges:
        return MappingChanges(self.files, self.add, tuple(self.delete))


class Attribute(BaseModel):
    path: str = Field(description="keyword, sequence items as 'Sequence[1] > Keyword'")
    tag: str
    vr: str
    value: str


class Trace(BaseModel):
    attribute: str
    source: str = Field(description="HL7 field, constant, generated, fallback, default, empty")
    value: list[str]
    notes: list[str]
    error: str | None


class StationsInfo(BaseModel):
    ae_titles: list[str]
    modality: str
    start_date: str
    start_time: str
    status: str
    routed_by: str | None
    description: str


class EntryInfo(BaseModel):
    attributes: list[Attribute]
    trace: list[Trace]
    stations: StationsInfo


class ChangeInfo(BaseModel):
    action: str
    order_key: str
    status: str
    entries: list[EntryInfo]


class PatientInfo(BaseModel):
    patient_id: str
    prior_id: str
    attributes: list[Attribute]
    trace: list[Trace]


class Refusal(BaseModel):
    ack_code: str = Field(description="MSA-1: AE or AR")
    err_code: str = Field(description="ERR-3, HL7 table 0357")
    location: str | None = Field(description="ERR-2, e.g. PID-3")
    text: str


class Warning_(BaseModel):
    location: str
    attribute: str
    text: str


class MessagePreview(BaseModel):
    message_type: str
    control_id: str
    mapping_name: str
    mapping_version: str
    outcome: str
    charset: str | None = Field(description="None: the bytes could not be decoded")
    refusal: Refusal | None
    failed_trace: list[Trace]
    warnings: list[Warning_]
    changes: list[ChangeInfo]
    patient_action: str | None
    patients: list[PatientInfo]
    rendered: str = Field(description="the same, as 'mwl-broker mapping preview' prints it")


class PreviewAnswer(BaseModel):
    mappings: str = Field(
        description="the set used: 'v3', or 'v3 with orders.yaml, new x.yaml, without y.yaml'"
    )
    refused: int
    messages: list[MessagePreview]


def version_info(version: MappingVersion) -> VersionInfo:
    return VersionInfo(
        number=version.number,
        author=version.author,
        comment=version.comment,
        created=version.created,
        digest=version.digest,
        based_on=version.based_on,
        files=sorted(version.files),
    )


def problem(found: FileProblem) -> MappingProblem:
    return MappingProblem(
        file=found.file,
        line=found.line,
        column=found.column,
        rule=found.rule,
        message=found.message,
    )


def _attributes(dataset: Dataset, prefix: str = "") -> list[Attribute]:
    out = []
    for element in dataset:
        path = f"{prefix}{element.keyword or element.tag}"
        if element.VR == "SQ":
            for number, item in enumerate(element.value, 1):
                out += _attributes(item, f"{path}[{number}] > ")
            continue
        value = element.value
        text = "\\".join(map(str, value)) if isinstance(value, MultiValue) else str(value)
        tag = f"({element.tag.group:04X},{element.tag.element:04X})"
        out.append(Attribute(path=path, tag=tag, vr=str(element.VR), value=text))
    return out


def _trace(rows: tuple[AttributeTrace, ...]) -> list[Trace]:
    return [
        Trace(
            attribute=r.attribute,
            source=r.source,
            value=list(r.value),
            notes=trace_notes(r),
            error=r.error,
        )
        for r in rows
    ]


def _stations(s: Stations) -> StationsInfo:
    return StationsInfo(
        ae_titles=list(s.ae_titles),
        modality=s.modality,
        start_date=s.start_date,
        start_time=s.start_time,
        status=s.status,
        routed_by=s.routed_by,
        description=s.describe(),
    )


def _change(change: ChangePreview) -> ChangeInfo:
    entries = [
        EntryInfo(
            attributes=_attributes(e.dataset), trace=_trace(e.trace), stations=_stations(e.stations)
        )
        for e in change.entries
    ]
    return ChangeInfo(
        action=change.action.value,
        order_key=change.order_key,
        status=change.status,
        entries=entries,
    )


def _one(result: Preview) -> MessagePreview:
    e = result.error
    refusal = None
    if e is not None:
        refusal = Refusal(
            ack_code=e.ack_code.value,
            err_code=str(e.err_code.value),
            location=e.location,
            text=e.text,
        )
    patients = [
        PatientInfo(
            patient_id=p.patient_id,
            prior_id=p.prior_id,
            attributes=_attributes(p.attributes),
            trace=_trace(p.trace),
        )
        for p in result.patients
    ]
    action = result.patient_action
    return MessagePreview(
        message_type=result.message_type,
        control_id=result.control_id,
        mapping_name=result.mapping_name,
        mapping_version=result.mapping_version,
        outcome=result.outcome,
        charset=result.decoding.charset if result.decoding is not None else None,
        refusal=refusal,
        failed_trace=_trace(result.failed_trace),
        warnings=[
            Warning_(location=w.location, attribute=w.keyword, text=w.text) for w in result.warnings
        ],
        changes=[_change(c) for c in result.changes],
        patient_action=action.value if action is not None else None,
        patients=patients,
        rendered=render(result),
    )


def message_preview(found: MappingPreview) -> PreviewAnswer:
    return PreviewAnswer(
        mappings=found.label, refused=found.refused, messages=[_one(r) for r in found.results]
    )
