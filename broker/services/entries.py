"""One worklist entry as the console reads and changes it: the entry as DICOM JSON or as a
readable dump, and the hand changes (an attribute edited, the status set, a cancel, a
removal), each naming the revision it was made on and the user's reason, each audited
with the user, the entry id, the attribute's tag and the reason, never a value. Showing an
entry whole (:meth:`EntryService.show`) is audited too, ``entry-read``.

What may be edited, and what happens when the RIS updates an edited order, is
``broker.worklist.edits``; how a change keeps the indexes, the order's set and the entry
cache consistent, ``broker.store.entry_edits``.
"""

from __future__ import annotations

import re
from typing import Any

from pydicom.dataset import Dataset

from broker.audit.events import AuditEvent, AuditType
from broker.audit.writer import NO_AUDIT, AuditSink
from broker.store.entry_cache import decode_entry
from broker.store.entry_edits import EntryEdits, StoredEntry
from broker.worklist import edits
from broker.worklist.dump import dump
from broker.worklist.edits import EditRefused, EntryChanged, UnknownEntry

__all__ = ["EntryService"]

_ID = re.compile(r"[0-9a-f]{1,64}")
REASON_LIMIT = 256  # characters of a reason (the audit record's text field)


class EntryService:
    """Reads and audited hand changes of single worklist entries."""

    def __init__(self, edits_store: EntryEdits, audit: AuditSink = NO_AUDIT) -> None:
        self._edits = edits_store
        self._audit = audit

    def __repr__(self) -> str:
        return f"EntryService({self._edits!r})"

    # -- reads -------------------------------------------------------------

    def read(self, entry_id: str) -> StoredEntry:
        """The entry ``entry_id`` as stored (``UnknownEntry``: none, or not an entry id)."""
        if not _ID.fullmatch(entry_id):
            raise UnknownEntry(entry_id)
        return self._edits.read(entry_id)

    def show(self, entry_id: str, *, view: str, by: str = "") -> StoredEntry:
        """The entry, read to be shown whole (patient data), so audited (``entry-read``:
        ``by`` the user, the id, ``view`` and the revision, never a value)."""
        entry = self.read(entry_id)
        details = {"view": view, "revision": entry.revision}
        self._audit.record(
            AuditEvent(AuditType.ENTRY_READ, user=by, target=entry_id, details=details)
        )
        return entry

    def dataset(self, entry: StoredEntry) -> Dataset:
        return decode_entry(entry.ds, entry.status.encode() or None)

    def document(self, entry: StoredEntry) -> dict[str, Any]:
        """Its DICOM JSON (PS3.18 F.2) with its current SPS status."""
        doc = entry.document()
        items = doc.get(edits.SPS, {}).get("Value") or []
        if entry.status and len(items) == 1:
            items[0][edits.STATUS_TAG] = {"vr": "CS", "Value": [entry.status]}
        return doc

    def dump(self, entry: StoredEntry) -> str:
        return dump(self.dataset(entry))

    # -- changes -----------------------------------------------------------

    def edit(
        self, entry_id: str, attribute: str, value: str, *, expect: str, reason: str, user: str
    ) -> str:
        """Set one editable attribute; the entry's new revision."""
        which = edits.editable(attribute)
        text = edits.check_value(which, value)
        why = _reason(reason)
        entry = self._current(entry_id, expect)
        new = self._edits.replace(entry, edits.edited(entry.document(), which, text))
        details = {"attribute": which.tag, "revision": new}
        self._record(AuditType.ENTRY_EDIT, entry_id, why, user, details)
        return new

    def set_status(
        self,
        entry_id: str,
        status: str,
        *,
        expect: str,
        reason: str,
        user: str,
        action: str = "status",
    ) -> str:
        """Give the entry SPS status ``status`` (a cancel: CANCELED); its new revision."""
        why = _reason(reason)
        entry = self._current(entry_id, expect)
        edits.check_transition(entry.status, status)
        new = self._edits.set_status(entry, status)
        details = {"action": action, "attribute": edits.STATUS_TAG, "status": status,
                   "was": entry.status, "revision": new}  # fmt: skip
        self._record(AuditType.ENTRY_STATUS, entry_id, why, user, details)
        return new

    def cancel(self, entry_id: str, *, expect: str, reason: str, user: str) -> str:
        """What a cancel of the RIS does to its steps (status CANCELED)."""
        return self.set_status(
            entry_id, edits.CANCELED, expect=expect, reason=reason, user=user, action="cancel"
        )

    def delete(self, entry_id: str, *, expect: str, reason: str, user: str) -> None:
        """Take the entry off the worklist."""
        why = _reason(reason)
        entry = self._current(entry_id, expect)
        self._edits.delete(entry)
        self._record(AuditType.ENTRY_DELETE, entry_id, why, user, {"status": entry.status})

    def _current(self, entry_id: str, expect: str) -> StoredEntry:
        entry = self.read(entry_id)
        if entry.revision != expect.strip().lower():
            raise EntryChanged("the entry changed since it was read (expect): read it again")
        return entry

    def _record(
        self, kind: AuditType, entry_id: str, reason: str, user: str, details: dict[str, Any]
    ) -> None:
        event = AuditEvent(kind, user=user, target=entry_id, reason=reason, details=details)
        self._audit.record(event)


def _reason(reason: str) -> str:
    text = " ".join(reason.split())
    if not text:
        raise EditRefused("reason: say why the entry is changed (it goes on the audit trail)")
    if len(text) > REASON_LIMIT:
        raise EditRefused(f"reason: at most {REASON_LIMIT} characters")
    return text
