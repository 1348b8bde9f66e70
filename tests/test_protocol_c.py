"""The C protocol (deploy/arduino/ser_node/protocol.c), built with gcc for this machine,
against the Python one: the same bytes on the wire (whole, or streamed from payload parts
as the node sends), the same messages out (the deframer decodes in the caller's buffer,
which bounds what it accepts)."""

from __future__ import annotations

import ctypes

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_edge.link.protocol import Message, MessageType, crc16_ccitt, encode
from tests.c_build import c_library
from tests.conftest import REPO
from tests.test_protocol import messages

SOURCE = REPO / "deploy" / "arduino" / "ser_node" / "protocol.c"
MAX_FRAME = 6 + 4096 + 2 + (6 + 4096 + 2) // 254 + 2


NODE_RX = 6 + 64 + 2 + (6 + 64 + 2) // 254 + 1  # SER_DEFRAMER_BYTES(SER_NODE_RX_PAYLOAD), the node's


class Deframer(ctypes.Structure):
    _fields_ = [
        ("frame", ctypes.POINTER(ctypes.c_uint8)), ("capacity", ctypes.c_size_t), ("used", ctypes.c_size_t),
        ("errors", ctypes.c_uint32), ("type", ctypes.c_uint8), ("seq", ctypes.c_uint16),
        ("payload", ctypes.POINTER(ctypes.c_uint8)), ("length", ctypes.c_size_t),
    ]  # fmt: skip


class Part(ctypes.Structure):
    _fields_ = [("data", ctypes.c_char_p), ("n", ctypes.c_size_t)]


SINK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t)


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    lib = c_library([SOURCE], tmp_path_factory.mktemp("c") / "libserproto.so")
    lib.ser_crc16.restype = ctypes.c_uint16
    lib.ser_crc16.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint16]
    lib.ser_frame_encode.restype = ctypes.c_size_t
    lib.ser_frame_encode.argtypes = [ctypes.c_uint8, ctypes.c_uint16, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
    lib.ser_deframer_feed.argtypes = [ctypes.POINTER(Deframer), ctypes.c_uint8]
    lib.ser_deframer_init.argtypes = [ctypes.POINTER(Deframer), ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t]
    lib.ser_frame_write.restype = ctypes.c_size_t
    lib.ser_frame_write.argtypes = [ctypes.c_uint8, ctypes.c_uint16, ctypes.POINTER(Part), ctypes.c_size_t, SINK,
                                    ctypes.c_void_p]  # fmt: skip
    return lib


def _c_encode(lib: ctypes.CDLL, m: Message) -> bytes:
    out = ctypes.create_string_buffer(MAX_FRAME)
    n = lib.ser_frame_encode(int(m.type), m.seq, m.payload, len(m.payload), out)
    return out.raw[:n]


def _c_write(lib: ctypes.CDLL, m: Message, cuts: list[int]) -> tuple[bytes, list[int], int]:
    """The frame streamed from the payload cut into parts: its bytes, the sink's call sizes, the length returned."""
    pieces = [m.payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(m.payload)], strict=True)]
    parts = (Part * len(pieces))(*(Part(p, len(p)) for p in pieces))
    got: list[bytes] = []
    sink = SINK(lambda _ctx, data, n: got.append(ctypes.string_at(data, n)))
    n = lib.ser_frame_write(int(m.type), m.seq, parts, len(pieces), sink, None)
    return b"".join(got), [len(g) for g in got], n


def _c_feed(lib: ctypes.CDLL, data: bytes, capacity: int = MAX_FRAME) -> tuple[list[Message], int]:
    d = Deframer()
    buffer = (ctypes.c_uint8 * capacity)()
    lib.ser_deframer_init(ctypes.byref(d), buffer, capacity)
    got = []
    for byte in data:
        if lib.ser_deframer_feed(ctypes.byref(d), byte):
            got.append(Message(MessageType(d.type), d.seq, ctypes.string_at(d.payload, d.length)))
    return got, d.errors


@settings(max_examples=200)
@given(st.binary(max_size=500))
def test_crc_matches(lib: ctypes.CDLL, data: bytes) -> None:
    assert lib.ser_crc16(data, len(data), 0xFFFF) == crc16_ccitt(data)


@settings(max_examples=200)
@given(messages)
def test_c_frames_equal_python_frames(lib: ctypes.CDLL, m: Message) -> None:
    assert _c_encode(lib, m) == encode(m)


@settings(max_examples=200)
@given(messages, st.lists(st.integers(0, 5000), max_size=4))
def test_c_frames_streamed_from_parts_equal_python_frames(lib: ctypes.CDLL, m: Message, cuts: list[int]) -> None:
    data, calls, n = _c_write(lib, m, sorted(min(c, len(m.payload)) for c in cuts))
    assert data == encode(m) and n == len(data) and max(calls) <= 255


def test_a_payload_too_long_to_send_writes_nothing(lib: ctypes.CDLL) -> None:
    assert _c_write(lib, Message(MessageType.FEATURES, 1, b"\1" * 4097), [2000]) == (b"", [], 0)
    data, _, _ = _c_write(lib, Message(MessageType.FEATURES, 1, b"\1" * 4096), [2000])
    assert data == encode(Message(MessageType.FEATURES, 1, b"\1" * 4096))


@settings(max_examples=100)
@given(st.lists(messages, min_size=1, max_size=4), st.binary(max_size=200))
def test_c_deframer_reads_python_frames_after_garbage(lib: ctypes.CDLL, ms: list[Message], garbage: bytes) -> None:
    got, errors = _c_feed(lib, garbage + b"\x00" + b"".join(encode(m) for m in ms))
    assert got == ms and errors <= len([s for s in garbage.split(b"\x00") if s])


def test_c_deframer_detects_every_single_byte_corruption(lib: ctypes.CDLL) -> None:
    frame = encode(Message(MessageType.FEATURES, 7, bytes([0, 1, 255, 128, 0, 0, 17, 99, 0, 42])))
    assert _c_feed(lib, frame) == ([Message(MessageType.FEATURES, 7, bytes([0, 1, 255, 128, 0, 0, 17, 99, 0, 42]))], 0)
    for index in range(len(frame) - 1):
        for value in range(256):
            if value != frame[index]:
                got, errors = _c_feed(lib, frame[:index] + bytes([value]) + frame[index + 1 :])
                assert got == [] and errors >= 1, (index, value)


def test_oversized_frames_are_dropped(lib: ctypes.CDLL) -> None:
    got, errors = _c_feed(lib, b"\x01" * (MAX_FRAME + 500) + b"\x00" + encode(Message(MessageType.LOG, 1, b"ok")))
    assert got == [Message(MessageType.LOG, 1, b"ok")] and errors == 1


def test_the_nodes_small_deframer_takes_what_the_pi_sends_and_drops_longer_frames(lib: ctypes.CDLL) -> None:
    """The node's receive buffer holds 64-byte payloads: the Pi's CONFIG (53 bytes with the
    speech rule) and HEARTBEAT pass; a longer valid frame is dropped as an error and the
    next one is read."""
    config, heartbeat = Message(MessageType.CONFIG, 0, bytes(range(1, 54))), Message(MessageType.HEARTBEAT, 0, bytes(4))
    biggest = Message(MessageType.CONFIG, 2, b"\xff" * 64)
    too_long = Message(MessageType.CONFIG, 1, bytes(range(1, 66)))
    got, errors = _c_feed(lib, b"".join(encode(m) for m in (config, too_long, heartbeat, biggest)), NODE_RX)
    assert got == [config, heartbeat, biggest] and errors == 1
