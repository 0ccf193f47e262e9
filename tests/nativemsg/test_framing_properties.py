"""Properties of the native-messaging framing and request check, over generated input (hypothesis).

Whatever bytes the browser (or anything else on stdin) sends, ``read_message`` returns a
JSON object or raises FrameError / EndOfInput — never another exception — and never reads
past the frame it announced; ``check_request`` then returns a checked command or raises
InvalidInputError. Every response the host can build is a frame the browser can read back. The
numbers of examples are bounded so the suite stays fast; ``make fuzz`` runs the atheris
harness in ``fuzz/fuzz_framing.py`` for as long as one likes.
"""

from __future__ import annotations

import io
import json
import math
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cardbridge import schema
from cardbridge.errors import InvalidInputError
from cardbridge.nativemsg import handshake_message, handshake_version
from cardbridge.nativemsg.framing import (
    HEADER,
    MAX_REQUEST,
    MAX_RESPONSE,
    MIN_REQUEST,
    EndOfInput,
    FrameError,
    ResponseTooLarge,
    encode_message,
    parse_message,
    read_message,
)
from cardbridge.nativemsg.framing import frame as frame_of
from cardbridge.nativemsg.host import check_request

EXAMPLES = settings(max_examples=300, deadline=None)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
json_objects = st.dictionaries(st.text(max_size=12), json_values, max_size=6)
requests = st.fixed_dictionaries(
    {"command": st.sampled_from([*schema.NATIVE_COMMANDS, "format-card", ""]) | st.text(max_size=20)},
    optional={
        "arguments": st.dictionaries(
            st.sampled_from(["challengeNonce", "origin", "lang", "hash", "hashFunction", "certificate", "pin"])
            | st.text(max_size=12),
            json_values,
            max_size=6,
        ),
        "extra": json_values,
    },
)


def frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


def _read(data: bytes, chunk: int | None = None) -> tuple[dict[str, Any] | None, str | None, int]:
    """(message, error kind, bytes consumed) for ``data`` on stdin, read ``chunk`` bytes at a time."""
    stream = io.BytesIO(data)

    def read(n: int) -> bytes:
        return stream.read(n if chunk is None else min(n, chunk))

    try:
        message = read_message(read)
    except FrameError:
        return None, "FrameError", stream.tell()
    except EndOfInput:
        return None, "EndOfInput", stream.tell()
    return message, None, stream.tell()


@EXAMPLES
@given(data=st.binary(max_size=9000))
def test_any_bytes_give_a_message_or_a_frame_error(data: bytes) -> None:
    message, error, consumed = _read(data)
    if error == "EndOfInput":
        assert data == b""
    elif error is None:
        assert isinstance(message, dict)
        (length,) = struct.unpack("=I", data[:4])
        assert MIN_REQUEST <= length <= MAX_REQUEST
        assert consumed == 4 + length  # nothing read past the frame
    else:
        assert consumed <= 4 + MAX_REQUEST  # a bad length: the body is never read


@EXAMPLES
@given(length=st.integers(0, 2**32 - 1), body=st.binary(max_size=600))
def test_any_length_header_is_bounded(length: int, body: bytes) -> None:
    data = HEADER.pack(length) + body
    _, error, consumed = _read(data)
    if not MIN_REQUEST <= length <= MAX_REQUEST:
        assert error == "FrameError" and consumed == 4
    elif length > len(body):
        assert error == "FrameError"  # the input ended inside the frame
    else:
        assert consumed == 4 + length


@EXAMPLES
@given(body=st.binary(min_size=MIN_REQUEST, max_size=MAX_REQUEST))
def test_any_body_in_a_frame_is_a_json_object_or_refused(body: bytes) -> None:
    message, error, consumed = _read(frame(body) + b"trailing bytes stay unread")
    assert consumed == 4 + len(body)
    if error is None:
        assert message == parse_message(body)
        assert isinstance(message, dict)
    else:
        assert error == "FrameError"


@EXAMPLES
@given(text=st.text(max_size=3000))
def test_any_text_body_is_a_json_object_or_refused(text: str) -> None:
    body = text.encode("utf-8", "surrogatepass")
    try:
        message = parse_message(body)
    except FrameError:
        return
    assert isinstance(message, dict)
    # What was accepted is plain JSON: it encodes again, finite numbers only.
    assert json.loads(json.dumps(message, allow_nan=False)) == message


@EXAMPLES
@given(message=json_objects, chunk=st.integers(1, 64))
def test_round_trip_in_any_chunking(message: dict[str, Any], chunk: int) -> None:
    try:
        data = encode_message(message)
    except ResponseTooLarge:  # pragma: no cover - the strategy stays far below 1 MiB
        return
    assert len(data) <= 4 + MAX_RESPONSE
    if not MIN_REQUEST <= len(data) - 4 <= MAX_REQUEST:  # a response may be larger (or smaller) than a request
        return
    assert _read(data)[0] == message
    assert _read(data, chunk)[0] == message


@EXAMPLES
@given(request=requests)
def test_any_request_is_checked_or_refused(request: dict[str, Any]) -> None:
    body = json.dumps(request).encode()
    if not MIN_REQUEST <= len(body) <= MAX_REQUEST:
        return
    message, error, _ = _read(frame(body))
    assert error is None and message == request
    try:
        command, arguments = check_request(message)
    except InvalidInputError as refused:
        code = str(refused.code)
    else:
        code = None
    if code is not None:
        assert code in ("INVALID_ARGUMENT", "INVALID_NONCE", "INVALID_ORIGIN")
        return
    required, optional = schema.fields(schema.NATIVE_COMMANDS[command], origin=True)
    assert required <= set(arguments) <= required | optional
    assert all(isinstance(value, str) for value in arguments.values())
    assert set(request) <= {"command", "arguments"}


@EXAMPLES
@given(digits=st.integers(300, 8000), negative=st.booleans(), exponent=st.booleans())
def test_huge_numbers_are_refused_or_finite(digits: int, negative: bool, exponent: bool) -> None:
    # More than 4,300 digits (Python's int limit) or a float that overflows to infinity:
    # FrameError, never ValueError, and never an inf that no response could carry.
    number = ("-" if negative else "") + "9" * digits + ("e999" if exponent else "")
    body = ('{"command": "quit", "arguments": {}, "n": ' + number + "}").encode()
    if len(body) > MAX_REQUEST:
        return
    message, error, _ = _read(frame(body))
    if error is None:
        assert message is not None
        value = message["n"]
        assert not isinstance(value, float) or math.isfinite(value)
        encode_message(message)  # whatever was accepted can be sent back
    else:
        assert error == "FrameError"


@EXAMPLES
@given(version=st.text(max_size=40))
def test_the_ready_made_handshake_is_the_encoded_one(version: str) -> None:
    # The host writes its handshake without json: byte for byte what encode_message makes.
    ready = frame_of(handshake_message(version))
    assert ready == encode_message({"version": handshake_version(version)})
    assert frame_of(b"{}") == encode_message({})  # the answer to quit
