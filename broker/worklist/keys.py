"""The Redis key schema: every key the broker uses is built here, nowhere else.

Layout (``{p}`` is the configurable prefix, ``mwl`` by default):

    {p}:entry:{id}            hash  ds (DICOM JSON), order, idx (JSON list of index refs)
    {p}:order:{order_key}     set   entry ids of one order
    {p}:idx:all               set   every entry id
    {p}:idx:aet:{AE}          set   entry ids by Scheduled Station AE Title
    {p}:idx:mod:{CT}          set   entry ids by Modality
    {p}:idx:pid:{id}          set   entry ids by Patient ID
    {p}:idx:acc:{accession}   set   entry ids by Accession Number
    {p}:idx:date              zset  entry ids scored by SPS Start Date (YYYYMMDD)
    {p}:dedup:{app}|{fac}|{control id}   string  JSON {digest, ack} with a TTL
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

    def by_date(self) -> str:
        return f"{self.prefix}:idx:date"

    def dedup(self, key: DedupKey) -> str:
        parts = (key.sending_application, key.sending_facility, key.control_id)
        return f"{self.prefix}:dedup:" + "|".join(_part(p) for p in parts)
