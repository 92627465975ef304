"""Import worklist files of DCMTK's ``wlmscpfs`` or Orthanc's worklist plugin (migration).

Both keep one worklist item per file: a DICOM dataset (Part-10 with preamble
and meta, or a bare dataset) holding the patient, visit and requested-procedure
attributes and a Scheduled Procedure Step Sequence (0040,0100) (PS3.4 K.6.1).
``wlmscpfs`` reads ``DIR/<called AE>/*.wl`` and wants a ``lockfile`` beside
them; Orthanc reads ``DIR/*.wl``. Every ``.wl`` file under the folder is read,
and any other file that carries the Part-10 ``DICM`` marker; other files are
ignored (and listed as such), ``lockfile`` and dot files silently.

Each Scheduled Procedure Step of a file becomes one entry, written through
:meth:`WorklistStore.apply` as a SCHEDULE order change, so scanners see it at
once. Its order key is stable, so importing the same folder again replaces
entries in place instead of adding copies:

    IMPORT:<Study Instance UID>|<Requested Procedure ID>|<SPS ID>
    IMPORT-FILE:<path relative to DIR>[#n]   when the Study Instance UID or an SPS ID
                                             is missing, or two steps share one

Text is decoded with the file's Specific Character Set (0008,0005) (PS3.5 6.1)
and stored as Unicode (DICOM JSON); an unknown character set or bytes invalid
in it make the file unusable rather than stored with replacement characters.
The SPS Status (0040,0020) of the file becomes the entry's status (SCHEDULED
when absent). Group lengths and (0008,0005) are not kept.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydicom import config, dcmread
from pydicom.datadict import dictionary_has_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from broker.audit.events import AuditEvent, AuditType, Outcome
from broker.audit.writer import NO_AUDIT, AuditSink
from broker.store.worklist import WorklistStore
from broker.worklist import dicom_json
from broker.worklist.model import OrderAction, OrderChange

__all__ = [
    "FileOutcome",
    "FileReport",
    "ImportService",
    "UnusableFile",
    "WorklistFile",
    "import_folder",
    "read_worklist_file",
    "worklist_files",
]

SPS_SEQUENCE = Tag(0x0040, 0x0100)
_SPECIFIC_CHARACTER_SET = Tag(0x0008, 0x0005)
_SCHEDULED = "SCHEDULED"
_UNDEFINED_LENGTH = 0xFFFFFFFF
_SILENT = frozenset({"lockfile"})  # wlmscpfs's lock, one per AE folder
# Warnings pydicom gives when text cannot be decoded with the file's character set
# (pydicom.charset); anything else it warns about is reported as a note.
_CHARSET_FAILURES = ("Unknown encoding", "Failed to decode", "Found unknown escape sequence")


class FileOutcome(StrEnum):
    """What happened to one file of the folder."""

    IMPORTED = "imported"  # its entries are new on the worklist
    UPDATED = "updated"  # it had been imported before: its entries were replaced
    UNCHANGED = "unchanged"  # its steps are over on the broker (completed, canceled...)
    SKIPPED = "skipped"  # a worklist file that could not be used: a failure
    IGNORED = "ignored"  # not a worklist file (no .wl, no DICM marker)


@dataclass(frozen=True)
class FileReport:
    """One line of the import report."""

    name: str  # path relative to the imported folder, with "/"
    outcome: FileOutcome
    detail: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorklistFile:
    """A worklist file read and understood: the order changes it makes."""

    name: str
    changes: tuple[OrderChange, ...]
    notes: tuple[str, ...] = ()


class UnusableFile(Exception):
    """A file that cannot become worklist entries; the message says why."""


def worklist_files(root: Path) -> Iterator[tuple[Path, str]]:
    """Every candidate file under ``root``, with its ``/``-separated relative name, sorted."""
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or path.name in _SILENT:
            continue
        if path.is_file():
            yield path, rel.as_posix()


def _has_part10_marker(path: Path) -> bool:
    """PS3.10 7.1: a 128-byte preamble followed by ``DICM``."""
    with path.open("rb") as f:
        head = f.read(132)
    return len(head) == 132 and head[128:] == b"DICM"


def _read(path: Path, marker: bool) -> Dataset:
    try:
        ds = dcmread(path, force=True, stop_before_pixels=True)
    except OSError as e:
        raise UnusableFile(f"cannot read: {e.strerror or e}") from e
    except Exception as e:  # any parse failure of a damaged or foreign file
        raise UnusableFile(f"not DICOM ({type(e).__name__}: {e})") from e
    # With force=True any bytes parse as "elements"; a real dataset has known tags.
    # keys(), not iteration: iterating a Dataset converts (decodes) every element.
    tags = ds.keys()
    if len(ds) == 0 or not (marker or any(dictionary_has_tag(t) for t in tags)):
        raise UnusableFile("not DICOM")
    # pydicom reads a cut-off file without complaint; a value shorter than its
    # declared length (PS3.5 7.1) says the file ends early.
    for tag in tags:
        raw = ds.get_item(tag)
        if (
            isinstance(raw, RawDataElement)
            and raw.length != _UNDEFINED_LENGTH
            and len(raw.value or b"") < raw.length
        ):
            raise UnusableFile(f"truncated: the file ends inside {tag}")
    return ds


def _unicode(elem: DataElement) -> object:
    """An element's value decoded (PS3.5 6.1): person names become plain text."""
    value = elem.value
    if elem.VR == "PN":
        if isinstance(value, MultiValue | list):
            return [str(v) for v in value]
        return None if value is None else str(value)
    return value


def _clean(ds: Dataset) -> Dataset:
    """A decoded copy without group lengths, meta or command elements, or (0008,0005)."""
    out = Dataset()
    for elem in ds:  # iterating converts raw elements, decoding their text
        tag = elem.tag
        if tag.element == 0 or tag.group in (0x0000, 0x0002) or tag == _SPECIFIC_CHARACTER_SET:
            continue
        if elem.VR == "SQ":
            items = Sequence([_clean(item) for item in elem.value or []])
            out.add(DataElement(tag, "SQ", items))
        else:
            out.add(DataElement(tag, elem.VR, _unicode(elem), validation_mode=config.IGNORE))
    return out


def _decoded(path: Path) -> tuple[Dataset, tuple[str, ...]]:
    """The file's dataset decoded with its Specific Character Set, and pydicom's other warnings.

    pydicom warns, and substitutes, when it meets an unknown character set or
    bytes invalid in it (it reads (0008,0005) while parsing, so the read is
    watched too); here that makes the file unusable.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = _read(path, _has_part10_marker(path))
        try:
            clean = _clean(raw)
        except Exception as e:  # pydicom parses lazily: a damaged element fails only here
            raise UnusableFile(f"damaged DICOM ({type(e).__name__}: {e})") from e
    notes: list[str] = []
    for w in caught:
        text = str(w.message)
        if text.startswith(_CHARSET_FAILURES):
            raise UnusableFile(f"unreadable character set: {text.split(' - ')[0]}")
        if text not in notes:
            notes.append(text)
    return clean, tuple(notes)


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _order_keys(entry: Dataset, steps: list[Dataset], name: str) -> list[str]:
    """Stable order keys, one per Scheduled Procedure Step (see the module docstring)."""
    study = _text(entry, "StudyInstanceUID")
    rp_id = _text(entry, "RequestedProcedureID")
    sps_ids = [_text(step, "ScheduledProcedureStepID") for step in steps]
    if study and all(sps_ids) and len(set(sps_ids)) == len(sps_ids):
        return [f"IMPORT:{study}|{rp_id}|{sps_id}" for sps_id in sps_ids]
    if len(steps) == 1:
        return [f"IMPORT-FILE:{name}"]
    return [f"IMPORT-FILE:{name}#{n}" for n in range(1, len(steps) + 1)]


def read_worklist_file(path: Path, name: str) -> WorklistFile:
    """The order changes one worklist file makes, or ``UnusableFile`` saying why not."""
    ds, notes = _decoded(path)
    sequence = ds.get(SPS_SEQUENCE)
    if sequence is None or sequence.VR != "SQ":
        raise UnusableFile("no Scheduled Procedure Step Sequence (0040,0100)")
    steps = list(sequence.value or [])
    if not steps:
        raise UnusableFile("the Scheduled Procedure Step Sequence (0040,0100) has no item")
    changes = []
    for key, step in zip(_order_keys(ds, steps, name), steps, strict=True):
        entry = Dataset()
        for elem in ds:
            entry.add(elem if elem.tag != SPS_SEQUENCE else DataElement(elem.tag, "SQ", [step]))
        try:
            dicom_json.dumps(entry)  # fails here, per file, rather than in the store
        except Exception as e:
            raise UnusableFile(f"cannot be stored as DICOM JSON: {type(e).__name__}: {e}") from e
        status = _text(step, "ScheduledProcedureStepStatus").upper() or _SCHEDULED
        changes.append(OrderChange(key, OrderAction.SCHEDULE, (entry,), status=status))
    return WorklistFile(name, tuple(changes), notes)


def _load(path: Path, name: str) -> WorklistFile | FileReport:
    try:
        if not name.lower().endswith(".wl") and not _has_part10_marker(path):
            return FileReport(name, FileOutcome.IGNORED, "not a .wl file and not DICOM Part-10")
        return read_worklist_file(path, name)
    except UnusableFile as e:
        return FileReport(name, FileOutcome.SKIPPED, str(e))
    except OSError as e:
        return FileReport(name, FileOutcome.SKIPPED, f"cannot read: {e.strerror or e}")


def _describe(wl: WorklistFile) -> str:
    keys = ", ".join(c.order_key for c in wl.changes)
    steps = len(wl.changes)
    return f"{steps} step{'s' if steps != 1 else ''}: {keys}"


def import_folder(
    store: WorklistStore, root: Path, *, dry_run: bool = False
) -> Iterator[FileReport]:
    """Import every worklist file under ``root``, one report per file, in name order.

    Each file is applied atomically on its own; a bad file is reported and
    the next one read. With ``dry_run`` nothing is written, and the reports
    say what would have happened.
    """
    seen: dict[str, str] = {}  # order key -> the file that gave it in this run
    for path, name in worklist_files(root):
        loaded = _load(path, name)
        if isinstance(loaded, FileReport):
            yield loaded
            continue
        clash = next((seen[c.order_key] for c in loaded.changes if c.order_key in seen), None)
        if clash is not None:
            yield FileReport(
                name,
                FileOutcome.SKIPPED,
                f"same Study Instance UID, Requested Procedure ID and SPS ID as {clash}",
            )
            continue
        seen.update((c.order_key, name) for c in loaded.changes)
        yield _apply(store, loaded, dry_run)


def _apply(store: WorklistStore, wl: WorklistFile, dry_run: bool) -> FileReport:
    existed = any(store.order_entry_ids(c.order_key) for c in wl.changes)
    outcome = FileOutcome.UPDATED if existed else FileOutcome.IMPORTED
    detail = _describe(wl)
    if dry_run:
        return FileReport(wl.name, outcome, "(dry run) " + detail, wl.notes)
    result = store.apply(wl.changes, None)
    notes = wl.notes
    if result.skipped:
        notes += (
            f"{result.skipped} step(s) left as they are: already completed, canceled or "
            "discontinued on the broker",
        )
        if result.skipped == len(wl.changes):
            return FileReport(wl.name, FileOutcome.UNCHANGED, detail, notes)
    return FileReport(wl.name, outcome, detail, notes)


class ImportService:
    """Imports worklist folders into one store; each import is on the audit trail."""

    def __init__(self, store: WorklistStore, audit: AuditSink = NO_AUDIT) -> None:
        self._store = store
        self._audit = audit

    def __repr__(self) -> str:
        return f"ImportService({self._store!r})"

    def run(self, folder: Path, *, dry_run: bool = False) -> Iterator[FileReport]:
        """:func:`import_folder`, one report per file as it is done; once the last one is,
        the import is recorded with its counts by outcome (failed if a file was skipped)."""
        counts: Counter[FileOutcome] = Counter()
        for report in import_folder(self._store, folder, dry_run=dry_run):
            counts[report.outcome] += 1
            yield report
        skipped = counts[FileOutcome.SKIPPED]
        self._audit.record(
            AuditEvent(
                AuditType.IMPORT,
                Outcome.FAILED if skipped else Outcome.SUCCESS,
                target=str(folder.absolute()),
                details={
                    "dry_run": dry_run,
                    **{o.value: counts[o] for o in FileOutcome if counts[o]},
                },
            )
        )
