"""The serial protocol's framing: round trips, resynchronisation, corruption detection."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_edge.link.protocol import (
    MAX_PAYLOAD,
    Deframer,
    FrameError,
    Message,
    MessageType,
    cobs_decode,
    cobs_encode,
    crc16_ccitt,
    decode,
    encode,
)

messages = st.builds(
    Message,
    st.sampled_from(list(MessageType)),
    st.integers(0, 0xFFFF),
    st.binary(max_size=600) | st.binary(max_size=MAX_PAYLOAD).map(lambda b: b.replace(b"\x01", b"\x00")),
)


def test_crc_check_value() -> None:
    assert crc16_ccitt(b"123456789") == 0x29B1  # the catalogue's check value for CRC-16/CCITT-FALSE


def test_cobs_known_vectors() -> None:
    # From the COBS paper / Wikipedia examples.
    assert cobs_encode(b"\x00") == b"\x01\x01"
    assert cobs_encode(b"\x00\x00") == b"\x01\x01\x01"
    assert cobs_encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    assert cobs_encode(b"\x11\x00\x00\x00") == b"\x02\x11\x01\x01\x01"
    block = bytes(range(1, 255))
    assert cobs_encode(block) == b"\xff" + block + b"\x01"


@given(st.binary(max_size=2000))
def test_cobs_round_trip_has_no_zero(data: bytes) -> None:
    encoded = cobs_encode(data)
    assert 0 not in encoded and cobs_decode(encoded) == data


@given(messages)
def test_message_round_trip(m: Message) -> None:
    frame = encode(m)
    assert frame.endswith(b"\x00") and frame.count(0) == 1
    assert decode(frame[:-1]) == m


@given(st.lists(messages, min_size=1, max_size=5), st.binary(max_size=300), st.lists(st.integers(1, 64), max_size=20))
def test_resynchronises_after_garbage(ms: list[Message], garbage: bytes, cuts: list[int]) -> None:
    """Garbage before the stream (a node booting, a half frame) is dropped and counted;
    every frame after the next delimiter arrives, in any chunking."""
    stream = garbage + b"\x00" + b"".join(encode(m) for m in ms)
    d, got, pos = Deframer(), [], 0
    for cut in [*cuts, len(stream)]:
        got += d.feed(stream[pos : pos + cut])
        pos += cut
    got += d.feed(stream[pos:])
    assert got == ms
    assert d.errors <= len([s for s in garbage.split(b"\x00") if s])  # at most one per garbage piece


@settings(max_examples=60)
@given(messages, st.data())
def test_every_single_byte_corruption_is_detected(m: Message, data: st.DataObject) -> None:
    frame = encode(m)
    index = data.draw(st.integers(0, len(frame) - 2))  # any byte but the delimiter
    value = data.draw(st.integers(0, 255).filter(lambda v: v != frame[index]))
    damaged = frame[:index] + bytes([value]) + frame[index + 1 :]
    d = Deframer()
    assert d.feed(damaged) == [] and d.errors >= 1


def test_every_single_byte_corruption_of_one_frame_exhaustively() -> None:
    m = Message(MessageType.RESULT, 513, struct.pack("<II", 1200, 4300) + bytes([0, 255, 17, 0, 3, 128, 7, 0]))
    frame = encode(m)
    for index in range(len(frame) - 1):
        for value in range(256):
            if value == frame[index]:
                continue
            d = Deframer()
            assert d.feed(frame[:index] + bytes([value]) + frame[index + 1 :]) == [], (index, value)


@pytest.mark.parametrize(
    ("offset", "value", "text"),
    [(0, 9, "protocol version 9"), (1, 99, "unknown message type 99"), (4, 7, "length field 7")],
)
def test_errors_name_the_problem(offset: int, value: int, text: str) -> None:
    """Well-formed frames (good CRC) with a bad header field."""
    body = bytearray(cobs_decode(encode(Message(MessageType.LOG, 1, b"hello"))[:-1]))[:-2]
    body[offset] = value
    with pytest.raises(FrameError, match=text):
        decode(cobs_encode(bytes(body) + struct.pack("<H", crc16_ccitt(bytes(body)))))
    with pytest.raises(FrameError, match="shorter than a header"):
        decode(cobs_encode(b"\x01\x02"))


def test_hello_must_match_the_bundle_as_far_as_the_mode_needs() -> None:
    from ser_edge.link.protocol import NodeMismatch, check_hello

    sha = "dc2c809a0f97c8d26fcb0d3d8d3169be51ddc348de0c71048a3b1d73fd5887f6"
    good = b'{"firmware": "0.1.0", "frontend": "f2a44641c768", "model": "%s", ' % sha.encode()
    good += b'"modes": ["audio", "features", "results"]}'
    assert check_hello(good, "results", "f2a44641c768", sha)["firmware"] == "0.1.0"
    with pytest.raises(NodeMismatch, match="node front end f2a44641c768 differs from this bundle's 000000000000"):
        check_hello(good, "features", "000000000000", sha)
    with pytest.raises(NodeMismatch, match=f"node model {sha} is not this bundle's model {'1' * 64}"):
        check_hello(good, "results", "f2a44641c768", "1" * 64)
    # Features need the same front end but not the same model; audio needs neither.
    assert check_hello(good, "features", "f2a44641c768", "1" * 64)
    assert check_hello(good, "audio", "000000000000", "1" * 64)
    no_model = b'{"firmware": "0.1.0", "frontend": "f2a44641c768", "model": "", "modes": ["audio", "features"]}'
    with pytest.raises(NodeMismatch, match="not results"):
        check_hello(no_model, "results", "f2a44641c768", sha)
    with pytest.raises(NodeMismatch, match="unreadable HELLO"):
        check_hello(b"\xff{", "features", "f2a44641c768", sha)
