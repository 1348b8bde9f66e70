"""The serial link to an Arduino node: framing and messages (spec: deploy/arduino/PROTOCOL.md).

A frame on the wire is COBS-encoded and ends with one 0x00 byte, so a receiver that
starts mid-stream, or after garbage, resynchronises at the next 0x00. Inside:

    version u8 | type u8 | seq u16 LE | length u16 LE | payload (length bytes) | crc u16 LE

The CRC is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection,
no final XOR) over everything before it. Pure functions plus a small stateful
``Deframer``; the C twin is deploy/arduino/ser_node/protocol.c.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

VERSION = 1
HEADER = struct.Struct("<BBHH")
MAX_PAYLOAD = 4096
#: Longest encoded frame: COBS adds one byte per 254 plus one, then the delimiter.
MAX_FRAME = HEADER.size + MAX_PAYLOAD + 2 + (HEADER.size + MAX_PAYLOAD + 2) // 254 + 2


class MessageType(IntEnum):
    HELLO = 1
    """Node -> Pi: firmware version, front-end hash, model hash, capabilities (JSON text)."""
    AUDIO = 2
    """Node -> Pi: int16 LE PCM samples at 16 kHz."""
    FEATURES = 3
    """Node -> Pi: int8 front-end rows (frames x columns, row-major)."""
    RESULT = 4
    """Node -> Pi: utterance start and end (u32 LE ms of node time) and int8 scores."""
    HEARTBEAT = 5
    """Either way: u32 LE uptime in ms."""
    LOG = 6
    """Node -> Pi: UTF-8 text."""
    CONFIG = 7
    """Pi -> node: the mode and the gate settings (``config_payload``)."""


#: Node modes, by their number in CONFIG.
MODES = ("audio", "features", "results")
_CONFIG = struct.Struct("<B9i")
_SPEECH = struct.Struct("<4i")
_UTTERANCE = struct.Struct("<II")  # start and end, ms of node time
_PIECE = struct.Struct("<HH")  # FEATURES: the utterance's row count, this piece's first row


@dataclass(frozen=True)
class Message:
    type: MessageType
    seq: int
    payload: bytes


def crc16_ccitt(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE; crc16_ccitt(b"123456789") == 0x29B1."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: the result contains no 0x00."""
    out = bytearray([0])
    code_at, code = 0, 1
    for byte in data:
        if byte:
            out.append(byte)
            code += 1
        if not byte or code == 0xFF:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
    out[code_at] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of cobs_encode; ValueError for input no encoder could have made."""
    out = bytearray()
    i = 0
    while i < len(data):
        code = data[i]
        if code == 0:
            raise ValueError("COBS: zero code byte")
        block = data[i + 1 : i + code]
        if len(block) != code - 1 or 0 in block:
            raise ValueError("COBS: truncated block")
        out += block
        i += code
        if code < 0xFF and i < len(data):
            out.append(0)
    return bytes(out)


def encode(message: Message) -> bytes:
    """One frame, delimiter included."""
    if len(message.payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(message.payload)} bytes exceeds {MAX_PAYLOAD}")
    body = HEADER.pack(VERSION, int(message.type), message.seq & 0xFFFF, len(message.payload)) + message.payload
    return cobs_encode(body + struct.pack("<H", crc16_ccitt(body))) + b"\x00"


class FrameError(ValueError):
    """A frame that arrived damaged; counted and skipped by the receiver."""


def decode(frame: bytes) -> Message:
    """A frame without its delimiter -> Message, or FrameError saying what is wrong."""
    try:
        raw = cobs_decode(frame)
    except ValueError as e:
        raise FrameError(str(e)) from None
    if len(raw) < HEADER.size + 2:
        raise FrameError(f"frame of {len(raw)} bytes is shorter than a header")
    body, (crc,) = raw[:-2], struct.unpack("<H", raw[-2:])
    if crc16_ccitt(body) != crc:
        raise FrameError("CRC mismatch")
    version, kind, seq, length = HEADER.unpack(body[: HEADER.size])
    if version != VERSION:
        raise FrameError(f"protocol version {version}, expected {VERSION}")
    if length != len(body) - HEADER.size:
        raise FrameError(f"length field {length} but {len(body) - HEADER.size} payload bytes")
    try:
        return Message(MessageType(kind), seq, bytes(body[HEADER.size :]))
    except ValueError:
        raise FrameError(f"unknown message type {kind}") from None


class Deframer:
    """Bytes from the serial port in any pieces -> whole messages; damage is counted."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.errors = 0
        """Frames dropped: bad CRC, bad COBS, truncated, oversized, unknown type."""
        self.last_error = ""

    def feed(self, data: bytes) -> list[Message]:
        out = []
        for byte in data:
            if byte:
                if len(self._buffer) < MAX_FRAME:
                    self._buffer.append(byte)
                continue
            frame, self._buffer = bytes(self._buffer), bytearray()
            if not frame:
                continue  # back-to-back delimiters: a sender resynchronising
            try:
                out.append(decode(frame))
            except FrameError as e:
                self.errors += 1
                self.last_error = str(e)
        return out


def config_payload(mode: str, gate: tuple[int, ...], speech: tuple[int, ...] | None = None) -> bytes:
    """CONFIG: the mode's number (1-3) and the gate's nine integer settings (vad.GateUnits);
    for the speech gate (features mode), then its rule's four: int8 threshold, min_windows,
    of_windows, hangover (speech_gate.SpeechRule)."""
    payload = _CONFIG.pack(MODES.index(mode) + 1, *gate)
    return payload + _SPEECH.pack(*speech) if speech else payload


@dataclass(frozen=True)
class FeaturePiece:
    start_ms: int
    end_ms: int
    total: int
    """Rows of the whole utterance."""
    first: int
    """This piece's first row."""
    rows: np.ndarray
    """(n, columns) int8."""


def parse_features(payload: bytes, columns: int) -> FeaturePiece:
    """FEATURES: start u32, end u32, total u16, first u16, then int8 rows; FrameError if
    malformed or if its numbers cannot describe a piece of an utterance."""
    head = _UTTERANCE.size + _PIECE.size
    if len(payload) <= head or (len(payload) - head) % columns:
        raise FrameError(f"FEATURES payload of {len(payload)} bytes is not a header and rows of {columns}")
    start, end = _utterance(payload, "FEATURES")
    total, first = _PIECE.unpack_from(payload, _UTTERANCE.size)
    rows = np.frombuffer(payload, np.int8, offset=head).reshape(-1, columns)
    if first + len(rows) > total:
        raise FrameError(f"FEATURES rows {first} to {first + len(rows)} lie beyond the utterance's {total}")
    return FeaturePiece(start, end, total, first, rows)


def parse_result(payload: bytes, labels: int) -> tuple[int, int, np.ndarray]:
    """RESULT: (start ms, end ms, (windows, labels) int8 raw model outputs); FrameError if malformed."""
    n = len(payload) - _UTTERANCE.size
    if n < labels or n % labels:
        raise FrameError(f"RESULT payload of {len(payload)} bytes does not hold scores for {labels} labels")
    start, end = _utterance(payload, "RESULT")
    return start, end, np.frombuffer(payload, np.int8, offset=_UTTERANCE.size).reshape(-1, labels)


def _utterance(payload: bytes, kind: str) -> tuple[int, int]:
    """An utterance's start and end (u32 ms of node time); one that ends before it starts is malformed."""
    start, end = _UTTERANCE.unpack_from(payload)
    if end < start:
        raise FrameError(f"{kind} utterance ends at {end} ms, before its start at {start} ms")
    return start, end


def printable(text: str, limit: int = 200) -> str:
    """Text from a node as one log line: control characters (newline, CR, escape ...)
    escaped, so a node cannot start lines of its own in the Pi's log, and at most ``limit``
    characters."""
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class NodeMismatch(ValueError):
    """A node built for another front end or model than the Pi's bundle, or whose HELLO is malformed."""


UPTIME_MAX_MS = 0xFFFFFFFF
"""The node's clock is a u32 of ms: a HELLO claiming more (or a fraction, or NaN) is refused."""


def check_hello(payload: bytes, mode: str, frontend_hash: str, model_sha256: str, speech_sha256: str = "") -> dict:
    """The node's HELLO (JSON), checked for what ``mode`` needs: the same front end for
    features and results, the same model for results, the same speech gate model when
    ``speech_sha256`` is given (whole hashes: a prefix proves nothing); and every field of
    the type the protocol gives it. NodeMismatch names both sides."""
    try:
        hello = json.loads(payload.decode("utf-8"))
        modes = hello["modes"]
        texts = [hello["frontend"], hello["model"], *(hello.get(k, "") for k in ("firmware", "speech_model", "mode"))]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise NodeMismatch(f"node sent an unreadable HELLO ({printable(str(e))})") from None
    if not isinstance(modes, list) or not all(isinstance(t, str) for t in [*modes, *texts]):
        raise NodeMismatch(f"node sent a HELLO with a field of the wrong type: {printable(payload.decode())}")
    uptime = hello.get("uptime_ms", 0)
    if type(uptime) is not int or not 0 <= uptime <= UPTIME_MAX_MS:
        raise NodeMismatch(f"node sent a HELLO with uptime_ms {printable(repr(uptime))}, "
                           f"not a whole number of ms from 0 to {UPTIME_MAX_MS}")  # fmt: skip
    node_frontend, node_model, node_speech = hello["frontend"], hello["model"], hello.get("speech_model", "")

    def shown(node_text: str) -> str:
        return printable(node_text, 80) or "(none)"

    if mode not in modes:
        raise NodeMismatch(f"node offers modes {printable(', '.join(modes))}, not {mode} (is a model compiled in?)")
    if mode != "audio" and node_frontend != frontend_hash:
        raise NodeMismatch(
            f"node front end {shown(node_frontend)} differs from this bundle's {frontend_hash}: "
            f"flash firmware built from the same ser-edge version"
        )
    if mode == "results" and node_model != model_sha256:
        raise NodeMismatch(f"node model {shown(node_model)} is not this bundle's model {model_sha256}")
    if speech_sha256 and node_speech != speech_sha256:
        raise NodeMismatch(f"gate.kind speech: node speech gate model {shown(node_speech)} is not "
                           f"gate.speech_bundle's {speech_sha256} (flash firmware with it, "
                           "or use gate.kind energy)")  # fmt: skip
    return hello
