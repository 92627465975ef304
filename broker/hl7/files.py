"""HL7 message files as people keep them: LF or CRLF line ends, blank lines, several
messages, batch wrappers, comment lines (``mwl-broker send``, ``mapping preview``)."""

from __future__ import annotations

__all__ = ["split_messages"]

_BATCH_SEGMENTS = (b"FHS", b"BHS", b"BTS", b"FTS")
_STRIP_FROM_LINES = b"\x0b\x1c"  # MLLP block characters left in captured files
_UTF8_BOM = b"\xef\xbb\xbf"
# Comment lines people put between messages in files (C, C++ and shell style).
# No HL7 segment starts with these: segment IDs are letters and digits (HL7 v2.5.1 §2.5.1).
_COMMENT_STARTS = (b"//", b"/*", b"*", b"#")


def split_messages(data: bytes) -> list[bytes]:
    """Split file content into HL7 messages, each segment ended by ``\\r``.

    HL7 v2.5.1 §2.5.4: the segment terminator is CR alone; files use LF or
    CRLF too, so any of CR, LF and CRLF ends a segment. Blank lines are dropped;
    a segment starting ``MSH`` starts a new message. Batch and file header and
    trailer segments (FHS, BHS, BTS, FTS; §2.10.3) are dropped, leaving the
    messages they wrap, and so are comment lines (starting ``//``, ``/*``,
    ``*`` or ``#``). Raises ``ValueError`` for a segment before any MSH.
    """
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    lines = data.replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r")
    messages: list[list[bytes]] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.translate(None, _STRIP_FROM_LINES)
        if not line.strip() or line[:3] in _BATCH_SEGMENTS:
            continue
        if line.lstrip().startswith(_COMMENT_STARTS):
            continue
        if line.startswith(b"MSH"):
            messages.append([])
        elif not messages:
            name = line[:3].decode("ascii", errors="replace")
            raise ValueError(f"segment {number} ({name!r}) comes before any MSH segment")
        messages[-1].append(line)
    return [b"\r".join(segments) + b"\r" for segments in messages]
