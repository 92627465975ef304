"""Order control: what ORC-1 (HL7 table 0119) and ORC-5 (table 0038) ask of the worklist.

The mapping's ``order_control`` table decides per ORC-1[/ORC-5]; parent/child
order groups (ORC-1 PA/CH) are refused for the whole message whatever the
table says. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from broker.errors import MappingError
from broker.hl7.codes import ErrorCode
from broker.hl7.paths import parse_path, read, scalar
from broker.mapping.spec import ControlRow, MappingSpec

__all__ = ["PARENT_CHILD", "control_codes", "control_row", "refuse_parent_child"]

_ORC_1 = parse_path("ORC-1")
_ORC_5 = parse_path("ORC-5")
# HL7 v2.5.1 table 0119: order control codes of the parent/child mechanism (§4.5.1.1).
PARENT_CHILD = {"PA": "parent order", "CH": "child order"}


def control_codes(orc: Sequence[Any]) -> tuple[str, str]:
    """ORC-1 (order control) and ORC-5 (order status) of an ORC segment, stripped."""
    orc1 = scalar(next(iter(read(orc, _ORC_1)), ())).strip()
    return orc1, scalar(next(iter(read(orc, _ORC_5)), ())).strip()


def refuse_parent_child(groups: Sequence[Sequence[Any]]) -> None:
    """Refuse a message with a parent (ORC-1 PA) or child (CH) order group, as a whole.

    HL7 v2.5.1 §4.5.1.1 (table 0119) and ch. 4 "parent/child": a filler that
    splits an order sends the parent (PA) and its children (CH, ORC-8 naming
    the parent). Neither HL7 ch. 4 nor IHE RAD TF-2 RAD-4/RAD-13 says which
    of them are the Scheduled Procedure Steps of a worklist, and one message
    may also hold the NW of the same procedure (JAHIS SS-MIX2 OMG^O19), so a
    guess could schedule a step twice. Refused with AE 103 at ORC-1 before
    any group is mapped: nothing is applied.
    """
    for number, group in enumerate(groups, start=1):
        code, _ = control_codes(group[0])
        if code in PARENT_CHILD:
            raise MappingError(
                ErrorCode.TABLE_VALUE_NOT_FOUND,
                "ORC-1",
                f"order group {number} has ORC-1 {code} ({PARENT_CHILD[code]}): parent/child "
                "orders are not supported; send each procedure as an order of its own (NW); "
                "nothing was applied",
            )


def control_row(spec: MappingSpec, orc1: str, orc5: str) -> ControlRow:
    """The order-control row for ORC-1 and ORC-5 (HL7 tables 0119 and 0038).

    An exact ``ORC-1/ORC-5`` row wins, then ``ORC-1`` alone (any ORC-5). A
    combination the table does not list is refused, never guessed.
    """
    if not orc1:
        raise MappingError(
            ErrorCode.REQUIRED_FIELD_MISSING, "ORC-1", "ORC-1 (order control) is empty"
        )
    table = spec.order_control
    row = table.get(f"{orc1}/{orc5}") or table.get(orc1)
    if row is not None:
        return row
    if any(k.startswith(f"{orc1}/") for k in table):
        raise MappingError(
            ErrorCode.TABLE_VALUE_NOT_FOUND,
            "ORC-5",
            f"order control {orc1} with order status {orc5 or '(empty)'} (ORC-1/ORC-5) "
            f"is not in the order_control table of mapping {spec.name!r}",
        )
    raise MappingError(
        ErrorCode.TABLE_VALUE_NOT_FOUND,
        "ORC-1",
        f"order control {orc1!r} is not in the order_control table of mapping {spec.name!r}",
    )
