"""What an ACK says, for a person: MSA-1, MSA-2, MSA-3 and one line per ERR.

Read by ``mwl-broker send`` after each message, by ``messages reprocess`` and by
the tests; it needs no connection (``broker.mllp.client`` sends and receives).
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.hl7.codes import AckCode, Severity

__all__ = ["ACCEPTED", "AckSummary", "summarize_ack"]

# MSA-1 of a message taken, in original and in enhanced mode (HL7 v2.5.1 table 0008)
ACCEPTED = frozenset({AckCode.ACCEPT.value, AckCode.COMMIT_ACCEPT.value})
_WARNING = Severity.WARNING.value


@dataclass(frozen=True)
class AckSummary:
    """What an ACK says: MSA-1, MSA-2, MSA-3 and one readable line per ERR."""

    code: str
    control_id: str
    text: str
    errors: tuple[str, ...]

    @property
    def accepted(self) -> bool:
        """Whether the message was taken: AA, or CA in enhanced mode."""
        return self.code in ACCEPTED


@dataclass(frozen=True)
class _Delimiters:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"


_COMMIT_BLOCKS = {
    b"\x06": AckSummary("CA", "", "MLLP commit acknowledgement (no HL7 ACK was asked for)", ()),
    b"\x15": AckSummary(
        "CR", "", "MLLP negative commit acknowledgement: nothing stored, resend later", ()
    ),
}


def summarize_ack(ack: bytes) -> AckSummary:
    """Read MSA-1/2/3 and the ERR segments of an ACK (HL7 v2.5.1 §2.15.8, §2.15.5).

    Delimiters come from the ACK's MSH-1 and MSH-2. Each ERR becomes e.g.
    ``"PID-3 101 Required field missing: PID-3 (patient identifier) is empty"``
    from ERR-2 (location), ERR-3.1/3.2 (code, text) and ERR-8 (user message),
    preceded by ``"warning "`` when ERR-4 (severity) is W;
    v2.3-style ERR-1 (segment^sequence^field^code&text) is read when ERR-2 and
    ERR-3 are empty. An MLLP Release 2 commit block (0x06, or 0x15 for a
    negative one), sent when MSH-15 asked for no HL7 accept ACK, reads as CA or
    CR. Raises ``ValueError`` if there is no MSA segment.
    """
    if ack in _COMMIT_BLOCKS:
        return _COMMIT_BLOCKS[ack]
    text = ack.decode("utf-8", errors="replace")
    segments = [s for s in text.replace("\n", "\r").split("\r") if s.strip()]
    delims = _delimiters(segments[0]) if segments else _Delimiters()
    msa: list[str] | None = None
    errors: list[str] = []
    for segment in segments:
        fields = segment.split(delims.field)
        if fields[0] == "MSA" and msa is None:
            msa = fields
        elif fields[0] == "ERR":
            errors.extend(_describe_err(fields, delims))
    if msa is None:
        raise ValueError("the response has no MSA segment")
    return AckSummary(
        code=_field(msa, 1),
        control_id=_unescape(_field(msa, 2), delims),
        text=_unescape(_field(msa, 3), delims),
        errors=tuple(errors),
    )


def _delimiters(msh: str) -> _Delimiters:
    """MSH-1 is the field separator; MSH-2 the other four (HL7 v2.5.1 §2.5.4)."""
    if not msh.startswith("MSH") or len(msh) < 4:
        return _Delimiters()
    encoding = msh[4:].split(msh[3], 1)[0][:4]
    chars = encoding + "^~\\&"[len(encoding) :]
    return _Delimiters(msh[3], chars[0], chars[1], chars[2], chars[3])


def _field(fields: list[str], index: int) -> str:
    return fields[index] if index < len(fields) else ""


def _describe_err(fields: list[str], d: _Delimiters) -> list[str]:
    """Readable lines for one ERR segment (v2.5 ERR-2/3/8, else v2.3 ERR-1)."""
    locations = [_location(r.split(d.component)) for r in _field(fields, 2).split(d.repetition)]
    location = ", ".join(loc for loc in locations if loc)
    condition = _field(fields, 3).split(d.repetition)[0].split(d.component)
    code, label = _field(condition, 0), _field(condition, 1)
    message = _field(fields, 8).split(d.repetition)[0]
    if location or code or label or message:
        warning = "warning " if _field(fields, 4) == _WARNING else ""  # ERR-4, table 0516
        return [warning + _line(location, code, label, message, d)]
    lines = []
    for repetition in _field(fields, 1).split(d.repetition):
        parts = repetition.split(d.component)
        error = _field(parts, 3).split(d.subcomponent)
        line = _line(_location(parts[:3]), _field(error, 0), _field(error, 1), "", d)
        if line:
            lines.append(line)
    return lines


def _location(parts: list[str]) -> str:
    """ERL (segment^sequence^field^repetition^component^sub) as ``"PID-3"``, ``"OBR[2]-4.1"``.

    HL7 v2.5.1 ch. 2A, data type ERL; the v2.3 ELD starts with the same three.
    """
    segment = _field(parts, 0)
    if not segment:
        return ""
    sequence = _field(parts, 1)
    text = segment + (f"[{sequence}]" if sequence not in ("", "1") else "")
    position = [_field(parts, 2), _field(parts, 4), _field(parts, 5)]
    if position[0]:
        text += "-" + ".".join(_leading(position))
    return text


def _leading(values: list[str]) -> list[str]:
    """The values up to the first empty one."""
    out: list[str] = []
    for value in values:
        if not value:
            break
        out.append(value)
    return out


def _line(location: str, code: str, label: str, message: str, d: _Delimiters) -> str:
    head = " ".join(p for p in (location, code, _unescape(label, d)) if p)
    message = _unescape(message, d)
    if head and message:
        return f"{head}: {message}"
    return head or message


def _unescape(value: str, d: _Delimiters) -> str:
    """Undo the delimiter escapes \\F\\ \\S\\ \\T\\ \\R\\ \\E\\ (HL7 v2.5.1 §2.7)."""
    if d.escape not in value:
        return value
    table = {"F": d.field, "S": d.component, "T": d.subcomponent, "R": d.repetition}
    table["E"] = d.escape
    table[".br"] = " "
    parts = value.split(d.escape)
    out = [parts[0]]
    last = len(parts) - 1
    # Odd-numbered parts sit between two escape characters.
    for index in range(1, len(parts)):
        part = parts[index]
        if index % 2 == 0:
            out.append(part)
        elif index == last:
            out.append(d.escape + part)  # unpaired escape character: keep it
        else:
            out.append(table.get(part, d.escape + part + d.escape))
    return "".join(out)
