"""The keys and the JSON payload of the worklist's apply script (``lua/apply.lua``).

``WorklistStore.apply`` (``broker.store.worklist``) runs the script once per
message: its KEYS are every key the message's changes name (``broker.store.keys``),
and the payload names them by position, with each entry's index memberships and
where its DICOM JSON is among the arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from broker.common import correlation, jsontext
from broker.store.keys import KeySchema
from broker.store.scripts import KeyList
from broker.worklist import dicom_json
from broker.worklist.model import OrderAction, OrderChange

__all__ = ["apply_keys", "apply_payload", "index_refs"]

# DICOM JSON keys (PS3.18 F.2) of the indexed attributes
_SPS_SEQUENCE = "00400100"
_STATION_AET = "00400001"  # Scheduled Station AE Title
_MODALITY = "00080060"
_PATIENT_ID = "00100020"
_ACCESSION = "00080050"
_SPS_START_DATE = "00400002"


def apply_keys(keys: KeySchema) -> KeyList:
    """The KEYS the apply script starts with (its header): entry prefix, all entries,
    order status, order time."""
    return KeyList(keys.entry_prefix(), keys.all_entries(), keys.order_status(), keys.order_time())


def apply_payload(
    keys: KeySchema,
    changes: Sequence[OrderChange],
    call: KeyList,
    documents: list[str | bytes],
) -> dict[str, Any]:
    """The apply script's payload for ``changes``; the keys it names are added to ``call``
    (from :func:`apply_keys`). Each entry's DICOM JSON is appended to ``documents`` (the
    script's arguments after the payload) and named by its position."""
    orders: list[dict[str, Any]] = []
    for change in changes:
        entries = change.entries if change.action is OrderAction.SCHEDULE else ()
        items = []
        for ordinal, entry in enumerate(entries, start=1):
            ds = dicom_json.entry_json(entry)
            idx = index_refs(keys, ds)
            documents.append(jsontext.dumps(ds))
            entry_id = keys.entry_id(change.order_key, ordinal)
            items.append(
                {
                    "id": entry_id,
                    "key": call.add(keys.entry(entry_id)),
                    "ds": len(documents) + 1,  # ARGV[1] is the payload
                    "idx": [[ref[0], call.add(ref[1]), *ref[2:]] for ref in idx],
                    "idx_json": jsontext.dumps(idx),  # as stored: the keys by name
                }
            )
        order_set, order_field = keys.order_and_field(change.order_key)
        orders.append(
            {
                "key": call.add(order_set),
                "field": order_field,  # in order-status and order-time
                "order_key": change.order_key,  # the entry's ``order`` value
                "action": change.action.value,
                "status": change.status,
                "origin": change.origin,  # the entries' ``origin`` ("": none recorded)
                "cid": correlation.current(),  # the message's correlation ID, with the origin
                "mver": _version_text(change.mapping_version),  # the entries' ``mver`` ("": none)
                "entries": items,
            }
        )
    return {"orders": orders}


def index_refs(keys: KeySchema, entry: dict[str, Any]) -> list[list[Any]]:
    """The index memberships of one entry (DICOM JSON): ``["s", set key]`` or
    ``["z", key, score]``."""
    sps = _sps(entry)
    refs: list[list[Any]] = []
    for aet in _values(sps, _STATION_AET):
        refs.append(["s", keys.by_station(aet.strip())])
    for modality in _values(sps, _MODALITY):
        refs.append(["s", keys.by_modality(modality.strip())])
    for pid in _values(entry, _PATIENT_ID):
        refs.append(["s", keys.by_patient(pid.strip())])
    for acc in _values(entry, _ACCESSION):
        refs.append(["s", keys.by_accession(acc.strip())])
    dates = _values(sps, _SPS_START_DATE)
    if dates and dates[0].isdigit() and len(dates[0]) == 8:
        refs.append(["z", keys.by_date(), int(dates[0])])
    return refs


def _version_text(number: int | None) -> str:
    """A mapping version's number as an entry keeps it (``mver``): "" for none."""
    return "" if number is None else str(number)


def _sps(entry: dict[str, Any]) -> dict[str, Any]:
    """The one Scheduled Procedure Step item of an entry's DICOM JSON."""
    items = entry.get(_SPS_SEQUENCE, {}).get("Value") or []
    if len(items) != 1:
        raise ValueError("a worklist entry holds exactly one Scheduled Procedure Step item")
    item: dict[str, Any] = items[0]
    return item


def _values(item: dict[str, Any], key: str) -> list[str]:
    """Non-empty string values of an attribute of DICOM JSON (text VRs: strings)."""
    return [str(v) for v in item.get(key, {}).get("Value") or () if str(v)]
