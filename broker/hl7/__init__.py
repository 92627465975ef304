"""The HL7 v2 codec: decoding (charsets, escapes, segments, field paths), validation of the
header, ACK building. Pure: no sockets, no Redis (the import contract in pyproject.toml)."""
