"""MLLP framing, sans-I/O: bytes in, message payloads out.

The Minimal Lower Layer Protocol wraps each HL7 message in a block (HL7
Transport Specification: MLLP, Release 1 and Release 2, "block format"):

    <SB> message <EB><CR>        SB = 0x0B (VT), EB = 0x1C (FS), CR = 0x0D

The block content never contains SB or EB (both specifications reserve them
as block delimiters, and HL7 v2 text uses neither), so both can be found with
``bytes.find`` and never need escaping. This module knows nothing of
sockets or event loops; ``broker.mllp.server`` and ``broker.mllp.client`` feed it.

Tolerances, chosen to accept what real senders put on the wire:

- bytes before an SB (NULs, keep-alive newlines, garbage) are dropped and
  counted in ``MLLPDecoder.discarded_bytes``;
- a CR right after EB is consumed, also when it arrives in the next read; a
  missing CR is accepted (the next SB starts the next block);
- an SB inside a block abandons the partial block (a sender that gave up on a
  block and started again); its bytes are counted as discarded.
"""

from __future__ import annotations

__all__ = [
    "CARRIAGE_RETURN",
    "END_BLOCK",
    "PREFIX_BYTES",
    "START_BLOCK",
    "FrameTooLarge",
    "MLLPDecoder",
    "frame",
]

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CARRIAGE_RETURN = b"\x0d"

PREFIX_BYTES = 4096
"""How much of an oversize frame ``FrameTooLarge.prefix`` keeps (enough for MSH)."""

_CR = CARRIAGE_RETURN[0]


class FrameTooLarge(Exception):
    """A block grew past the decoder's ``max_frame_bytes``.

    ``prefix`` holds the first (up to ``PREFIX_BYTES``) payload bytes of that
    block, so the caller can read its MSH segment and answer with a NAK.
    ``messages`` holds the complete payloads that preceded it in the same
    ``feed()`` call: they were well framed and still deserve a response.
    """

    def __init__(self, prefix: bytes, messages: tuple[bytes, ...] = ()) -> None:
        super().__init__(f"MLLP frame larger than the limit ({len(prefix)} bytes kept)")
        self.prefix = prefix
        self.messages = messages


def frame(message: bytes) -> bytes:
    """Wrap one message payload in an MLLP block: SB + message + EB + CR.

    MLLP Release 1 / Release 2 block format. Raises ``ValueError`` if the payload
    contains SB or EB, which no receiver could then delimit.
    """
    if START_BLOCK in message or END_BLOCK in message:
        raise ValueError("an MLLP payload must not contain 0x0B or 0x1C")
    return START_BLOCK + message + END_BLOCK + CARRIAGE_RETURN


class MLLPDecoder:
    """Incremental MLLP block decoder (HL7 Transport Spec: MLLP, Release 1 and 2, block format).

    ``feed()`` accepts whatever a read returned and gives back the payloads of
    the blocks completed so far, keeping a partial block buffered. Each call is
    linear in the size of its input (``bytes.find``, no per-byte loop).

    After ``FrameTooLarge`` the decoder is ``failed``: it buffers nothing more
    and drops (and counts) everything it is fed. The stream cannot be trusted
    any more, and the connection should be closed once a NAK has been sent.
    """

    def __init__(self, max_frame_bytes: int) -> None:
        if max_frame_bytes < 0:
            raise ValueError("max_frame_bytes must be >= 0")
        self.max_frame_bytes = max_frame_bytes
        self.discarded_bytes = 0
        self.failed = False
        self._buffer = bytearray()
        self._in_frame = False
        self._skip_cr = False

    @property
    def has_partial_frame(self) -> bool:
        """True when a block has started (SB seen) and has not ended (no EB yet)."""
        return self._in_frame

    @property
    def buffered_bytes(self) -> int:
        """Payload bytes of the partial block held so far."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Consume ``data``; return the payloads (without framing) of completed blocks.

        Raises ``FrameTooLarge`` as soon as the block in progress exceeds
        ``max_frame_bytes`` payload bytes, whether or not its EB has arrived.
        """
        messages: list[bytes] = []
        if self.failed:
            self.discarded_bytes += len(data)
            return messages
        pos, end = 0, len(data)
        while pos < end:
            if self._skip_cr:
                # MLLP: EB is followed by CR; consume it even across reads.
                self._skip_cr = False
                if data[pos] == _CR:
                    pos += 1
                    continue
            if not self._in_frame:
                pos = self._find_start(data, pos, end)
            else:
                pos = self._consume_frame(data, pos, end, messages)
        return messages

    def _find_start(self, data: bytes, pos: int, end: int) -> int:
        """Skip to just after the next SB; everything before it is junk."""
        start = data.find(START_BLOCK, pos, end)
        if start < 0:
            self.discarded_bytes += end - pos
            return end
        self.discarded_bytes += start - pos
        self._in_frame = True
        return start + 1

    def _consume_frame(self, data: bytes, pos: int, end: int, messages: list[bytes]) -> int:
        """Take block content from ``data[pos:]``; complete the block at EB if present."""
        stop = data.find(END_BLOCK, pos, end)
        content_end = end if stop < 0 else stop
        restart = data.find(START_BLOCK, pos, content_end)
        if restart >= 0:
            # A new SB before this block's EB: the sender abandoned the block.
            self.discarded_bytes += 1 + len(self._buffer) + (restart - pos)
            self._buffer.clear()
            return restart + 1
        size = len(self._buffer) + (content_end - pos)
        if size > self.max_frame_bytes:
            self._fail(data, pos, content_end, messages)
        if stop < 0:
            self._buffer += data[pos:end]
            return end
        if self._buffer:
            self._buffer += data[pos:stop]
            messages.append(bytes(self._buffer))
            self._buffer.clear()
        else:
            messages.append(data[pos:stop])
        self._in_frame = False
        self._skip_cr = True
        return stop + 1

    def _fail(self, data: bytes, pos: int, content_end: int, messages: list[bytes]) -> None:
        """Stop buffering and raise ``FrameTooLarge`` with the block's first bytes."""
        prefix = bytes(self._buffer[:PREFIX_BYTES])
        prefix += data[pos : min(content_end, pos + PREFIX_BYTES - len(prefix))]
        self.discarded_bytes += 1 + len(self._buffer) + (len(data) - pos)
        self._buffer = bytearray()
        self._in_frame = False
        self.failed = True
        raise FrameTooLarge(prefix, tuple(messages))
