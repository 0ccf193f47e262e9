"""Frames and the error-code table, without a process."""

from __future__ import annotations

import io
import json
import struct

import pytest

from cardbridge.errors import Code
from cardbridge.nativemsg import codes
from cardbridge.nativemsg.framing import (
    MAX_REQUEST,
    MAX_RESPONSE,
    EndOfInput,
    FrameError,
    ResponseTooLarge,
    encode_message,
    read_message,
)
from cardbridge.nativemsg.host import Output


def frame(body: bytes) -> bytes:
    return struct.pack("=I", len(body)) + body


def reader(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)


def test_round_trip() -> None:
    message = {"command": "quit", "arguments": {}}
    assert read_message(reader(encode_message(message)).read) == message


def test_native_byte_order() -> None:
    assert encode_message({})[:4] == (2).to_bytes(4, "little" if struct.pack("=I", 1)[0] == 1 else "big")


def test_clean_end_of_input() -> None:
    with pytest.raises(EndOfInput):
        read_message(reader(b"").read)


def test_byte_at_a_time_input_is_read_whole() -> None:
    data = frame(b'{"command":"quit","arguments":{}}')
    stream = reader(data)
    assert read_message(lambda n: stream.read(1)) == {"command": "quit", "arguments": {}}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x01\x00", "inside a message's length"),
        (struct.pack("=I", 4) + b"{}  ", "at least 5"),
        (struct.pack("=I", 0), "at least 5"),
        (struct.pack("=I", MAX_REQUEST + 1), "at most 8192"),
        (struct.pack("=I", 0xFFFFFFFF), "at most 8192"),
        (struct.pack("=I", 100) + b"{" * 10, "ended inside a message"),
        (frame(b'{"a": "\xff\xfe"}'), "UTF-8"),
        (frame(b'{"a": '), "not valid JSON"),
        (frame(b'{"a": NaN}'), "NaN"),
        (frame(b'{"a": 1, "a": 2}'), "twice"),
        (frame(b"[1, 2, 3]"), "object"),
        (frame(b'"hello"'), "object"),
        (frame(b"12345"), "object"),
        (frame(b"[" * 8000), "not valid JSON"),
        (frame(b'{"a": 1} trailing'), "not valid JSON"),
    ],
)
def test_hostile_frames(data: bytes, words: str) -> None:
    with pytest.raises(FrameError, match=words):
        read_message(reader(data).read)


def test_length_over_limit_reads_no_body() -> None:
    stream = reader(struct.pack("=I", MAX_REQUEST + 1) + b"x" * 100)
    with pytest.raises(FrameError):
        read_message(stream.read)
    assert stream.tell() == 4


def test_response_limit() -> None:
    assert len(encode_message({"a": "x" * (MAX_RESPONSE - 100)})) <= MAX_RESPONSE + 4
    with pytest.raises(ResponseTooLarge):
        encode_message({"a": "x" * MAX_RESPONSE})


def test_output_never_sends_a_frame_over_the_limit(tmp_path: object) -> None:
    import os

    read_fd, write_fd = os.pipe()
    try:
        Output(write_fd).send({"a": "x" * MAX_RESPONSE})
        os.close(write_fd)
        data = b""
        while chunk := os.read(read_fd, 65536):
            data += chunk
    finally:
        os.close(read_fd)
    (length,) = struct.unpack("=I", data[:4])
    assert length == len(data) - 4 <= MAX_RESPONSE
    assert json.loads(data[4:])["error"]["cardbridgeCode"] == "INTERNAL"


def test_every_code_has_a_webeid_code() -> None:
    for code in Code:
        assert codes.webeid_code(str(code)).startswith("ERR_WEBEID_")
    assert codes.webeid_code("USER_CANCELLED") == "ERR_WEBEID_USER_CANCELLED"
    assert codes.webeid_code("INVALID_NONCE") == "ERR_WEBEID_NATIVE_INVALID_ARGUMENT"
    assert codes.webeid_code("PIN_BLOCKED") == "ERR_WEBEID_NATIVE_FATAL"
    assert codes.webeid_code("PIN_NOT_ACTIVE") == "ERR_WEBEID_NATIVE_FATAL"  # as the Web eID app's window, no PIN
    for webeid, ours in codes.FROM_WEBEID.items():
        assert ours in {str(c) for c in Code}, webeid


def test_error_frame_shape() -> None:
    assert codes.error_frame("PIN_INCORRECT", "Wrong PIN.", 2) == {
        "error": {
            "code": "ERR_WEBEID_NATIVE_FATAL",
            "message": "Wrong PIN.",
            "cardbridgeCode": "PIN_INCORRECT",
            "retriesLeft": 2,
        }
    }
