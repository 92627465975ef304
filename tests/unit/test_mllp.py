"""MLLP framing (broker.mllp.framing): bytes in, payloads out, no sockets."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.mllp.framing import (
    CARRIAGE_RETURN,
    END_BLOCK,
    PREFIX_BYTES,
    START_BLOCK,
    FrameTooLarge,
    MLLPDecoder,
    frame,
)

MSG_A = b"MSH|^~\\&|RIS|HOSP|MWL|HOSP|20240101120000||ORM^O01|A1|P|2.5.1\rPID|1||123\r"
MSG_B = b"MSH|^~\\&|RIS|HOSP|MWL|HOSP|20240101120001||ADT^A08|B2|P|2.5.1\r"
VT, FS, CR = START_BLOCK, END_BLOCK, CARRIAGE_RETURN


def feed_all(decoder: MLLPDecoder, chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out


def one_byte_chunks(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def test_constants_are_the_mllp_block_characters() -> None:
    assert (VT, FS, CR) == (b"\x0b", b"\x1c", b"\r")


def test_frame_wraps_in_sb_eb_cr() -> None:
    assert frame(MSG_B) == b"\x0b" + MSG_B + b"\x1c\r"
    assert frame(b"") == b"\x0b\x1c\r"


@pytest.mark.parametrize("bad", [b"MSH|\x0b|", b"MSH|\x1c|"])
def test_frame_refuses_block_characters_in_payload(bad: bytes) -> None:
    with pytest.raises(ValueError, match="0x0B or 0x1C"):
        frame(bad)


@pytest.mark.parametrize(
    ("chunks", "expected", "discarded"),
    [
        pytest.param([frame(MSG_A)], [MSG_A], 0, id="one-frame"),
        pytest.param([frame(MSG_A) + frame(MSG_B)], [MSG_A, MSG_B], 0, id="two-in-one-read"),
        pytest.param(one_byte_chunks(frame(MSG_A) + frame(MSG_B)), [MSG_A, MSG_B], 0, id="1-byte"),
        pytest.param([b"junk\r\n" + frame(MSG_A)], [MSG_A], 6, id="junk-before-vt"),
        pytest.param([frame(MSG_A) + b"\x00\x00\x00" + frame(MSG_B)], [MSG_A, MSG_B], 3, id="nuls"),
        pytest.param([VT + MSG_A + FS + VT + MSG_B + FS], [MSG_A, MSG_B], 0, id="no-cr-after-fs"),
        pytest.param([VT + MSG_A + FS, CR + frame(MSG_B)], [MSG_A, MSG_B], 0, id="cr-next-read"),
        pytest.param([VT + MSG_A + FS, CR], [MSG_A], 0, id="cr-alone-next-read"),
        pytest.param([frame(b"")], [b""], 0, id="empty-frame"),
        pytest.param([frame(MSG_A) + CR], [MSG_A], 1, id="extra-cr-is-junk"),
        pytest.param([VT + b"half" + frame(MSG_A)], [MSG_A], 5, id="vt-restarts-frame"),
        pytest.param([VT + b"ha", b"lf" + VT + MSG_A + FS], [MSG_A], 5, id="vt-restarts-across"),
        pytest.param([b"\x1c\r" + frame(MSG_A)], [MSG_A], 2, id="stray-fs-before-vt"),
        pytest.param([MSG_A[:10], MSG_A[10:]], [], len(MSG_A), id="no-vt-all-junk"),
        pytest.param([VT + MSG_A[:20], MSG_A[20:], FS + CR], [MSG_A], 0, id="split-three-ways"),
    ],
)
def test_decoder_cases(chunks: list[bytes], expected: list[bytes], discarded: int) -> None:
    decoder = MLLPDecoder(max_frame_bytes=10_000)
    assert feed_all(decoder, chunks) == expected
    assert decoder.discarded_bytes == discarded
    assert not decoder.has_partial_frame


def test_payload_bytes_are_returned_as_bytes() -> None:
    decoder = MLLPDecoder(max_frame_bytes=100)
    out = decoder.feed(VT + b"ab") + decoder.feed(b"c" + FS)
    assert out == [b"abc"]
    assert all(type(m) is bytes for m in out)


def test_partial_frame_state() -> None:
    decoder = MLLPDecoder(max_frame_bytes=10_000)
    assert not decoder.has_partial_frame
    assert decoder.feed(b"\x00\x00") == []
    assert not decoder.has_partial_frame
    assert decoder.feed(VT) == []
    assert decoder.has_partial_frame
    assert decoder.buffered_bytes == 0
    assert decoder.feed(MSG_A[:15]) == []
    assert decoder.has_partial_frame
    assert decoder.buffered_bytes == 15
    assert decoder.feed(MSG_A[15:] + FS) == [MSG_A]
    assert not decoder.has_partial_frame
    assert decoder.buffered_bytes == 0


def test_frame_of_exactly_max_size_is_accepted() -> None:
    decoder = MLLPDecoder(max_frame_bytes=len(MSG_A))
    assert decoder.feed(frame(MSG_A)) == [MSG_A]


def test_oversize_complete_frame_raises_with_prefix() -> None:
    decoder = MLLPDecoder(max_frame_bytes=len(MSG_A) - 1)
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(frame(MSG_A))
    assert info.value.prefix == MSG_A
    assert info.value.messages == ()
    assert decoder.failed
    assert not decoder.has_partial_frame


def test_oversize_raises_before_the_end_block_arrives() -> None:
    decoder = MLLPDecoder(max_frame_bytes=1000)
    decoder.feed(VT + MSG_A)
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(b"X" * 2000)
    assert info.value.prefix == MSG_A + b"X" * 2000


def test_oversize_prefix_is_capped_and_buffering_stops() -> None:
    decoder = MLLPDecoder(max_frame_bytes=10_000)
    big = MSG_A + b"OBX|" + b"x" * 50_000
    with pytest.raises(FrameTooLarge) as info:
        feed_all(decoder, [VT, big[:5000], big[5000:]])
    assert info.value.prefix == big[:PREFIX_BYTES]
    assert decoder.buffered_bytes == 0
    # A failed decoder keeps nothing and decodes nothing: the connection is done.
    assert decoder.feed(frame(MSG_B)) == []
    assert decoder.buffered_bytes == 0


def test_oversize_in_1_byte_reads() -> None:
    decoder = MLLPDecoder(max_frame_bytes=10)
    with pytest.raises(FrameTooLarge) as info:
        feed_all(decoder, one_byte_chunks(frame(MSG_A)))
    assert info.value.prefix == MSG_A[:11]


def test_oversize_carries_complete_messages_of_the_same_read() -> None:
    decoder = MLLPDecoder(max_frame_bytes=len(MSG_B))
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(frame(MSG_B) + frame(MSG_B) + frame(MSG_A))
    assert info.value.messages == (MSG_B, MSG_B)
    assert info.value.prefix == MSG_A


def test_zero_limit_allows_only_empty_frames() -> None:
    decoder = MLLPDecoder(max_frame_bytes=0)
    assert decoder.feed(frame(b"")) == [b""]
    with pytest.raises(FrameTooLarge):
        decoder.feed(frame(b"x"))


def test_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        MLLPDecoder(max_frame_bytes=-1)


# Property: framing, concatenation and arbitrary splits give back the payloads.

payloads = st.lists(
    st.binary(max_size=300).map(lambda b: b.replace(VT, b"").replace(FS, b"")),
    max_size=8,
)


@st.composite
def split_points(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=20)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


@given(data=st.data(), messages=payloads, with_cr=st.booleans())
def test_property_round_trip_under_any_split(
    data: st.DataObject, messages: list[bytes], with_cr: bool
) -> None:
    wire = b"".join(VT + m + FS + (CR if with_cr else b"") for m in messages)
    chunks = data.draw(split_points(wire))
    decoder = MLLPDecoder(max_frame_bytes=300)
    assert feed_all(decoder, chunks) == messages
    assert decoder.discarded_bytes == 0
    assert not decoder.has_partial_frame


@given(data=st.data(), messages=payloads, junk=st.binary(max_size=50))
def test_property_junk_before_each_frame_is_dropped(
    data: st.DataObject, messages: list[bytes], junk: bytes
) -> None:
    clean_junk = junk.replace(VT, b"")
    wire = b"".join(clean_junk + frame(m) for m in messages)
    chunks = data.draw(split_points(wire))
    decoder = MLLPDecoder(max_frame_bytes=300)
    assert feed_all(decoder, chunks) == messages


@given(data=st.data(), size=st.integers(1, 5000), limit=st.integers(0, 4000))
def test_property_oversize_detected_at_any_split(
    data: st.DataObject, size: int, limit: int
) -> None:
    payload = bytes(i % 200 + 32 for i in range(size))
    chunks = data.draw(split_points(frame(payload)))
    decoder = MLLPDecoder(max_frame_bytes=limit)
    if size <= limit:
        assert feed_all(decoder, chunks) == [payload]
        return
    with pytest.raises(FrameTooLarge) as info:
        feed_all(decoder, chunks)
    assert payload.startswith(info.value.prefix)
    assert min(limit + 1, PREFIX_BYTES) <= len(info.value.prefix) <= PREFIX_BYTES
