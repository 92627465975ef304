"""A worklist entry as readable text: one line per attribute, in tag order, with its tag,
keyword, VR and value; a sequence's items indented under it. Like pydicom's ``str`` of a
Dataset, but stable (no column padding that moves with the longest name, no repr of
values) so that two dumps diff line by line."""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

__all__ = ["dump"]

_INDENT = "  "


def dump(ds: Dataset) -> str:
    """The text of ``ds`` (see the module docstring), ending with a newline."""
    lines: list[str] = []
    _walk(ds, 0, lines)
    return "".join(line + "\n" for line in lines)


def _walk(ds: Dataset, depth: int, lines: list[str]) -> None:
    pad = _INDENT * depth
    for elem in ds:
        tag = f"({elem.tag.group:04X},{elem.tag.element:04X})"
        name = elem.keyword or "(private or unknown)"
        if elem.VR == "SQ":
            items = list(elem.value or ())
            lines.append(f"{pad}{tag} {name} SQ: {len(items)} item(s)")
            for number, item in enumerate(items, start=1):
                lines.append(f"{pad}{_INDENT}item {number}")
                _walk(item, depth + 2, lines)
        else:
            lines.append(f"{pad}{tag} {name} {elem.VR}: {_value(elem.value)}")


def _value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(_value(v) for v in value)
    text = str(value)
    return "".join(c if c.isprintable() else "?" for c in text)
