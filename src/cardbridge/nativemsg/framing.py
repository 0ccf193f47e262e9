"""Native-messaging frames: a 32-bit length in native byte order, then that many bytes of
UTF-8 JSON.

Limits (the Web eID app's, and the browsers'): a request is 5 to 8192 bytes and must be one
JSON object; a response is at most 1 MiB (Chrome's limit for a host's message). Anything
else is a :class:`FrameError`: the host answers it with one error frame and exits.

Only the standard library, and only cheap modules: the host imports this at start-up, and
writes its handshake and the answer to ``quit`` with :func:`frame` (``json`` is loaded only to
encode any other message).
"""

from __future__ import annotations

import struct

from cardbridge import strictjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

HEADER = struct.Struct("=I")  # native byte order, 4 bytes
MIN_REQUEST = 5
MAX_REQUEST = 8192
MAX_RESPONSE = 1024 * 1024


class FrameError(ValueError):
    """A request that breaks the framing or JSON rules (kept light: no error-tree import)."""


class EndOfInput(Exception):
    """stdin ended cleanly, before the first byte of a frame."""


def _read_exactly(read: Callable[[int], bytes], size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def parse_message(body: bytes) -> dict[str, Any]:
    """The JSON object in ``body``; FrameError for invalid UTF-8, invalid JSON or a non-object."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError("The message is not valid UTF-8.") from None
    try:
        value = strictjson.loads(text)
    except strictjson.StrictJsonError as exc:
        raise FrameError(f"The message is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise FrameError("The message must be a JSON object.")
    return value


def read_message(read: Callable[[int], bytes]) -> dict[str, Any]:
    """Read one request frame with ``read(n)`` (like ``os.read`` on stdin).

    Raises EndOfInput when the input ends before the frame starts, FrameError for a length
    out of bounds (the body is then not read), an input that ends inside the frame, invalid
    UTF-8 or JSON, or JSON that is not an object.
    """
    header = _read_exactly(read, HEADER.size)
    if not header:
        raise EndOfInput
    if len(header) < HEADER.size:
        raise FrameError("The input ended inside a message's length.")
    (length,) = HEADER.unpack(header)
    if length < MIN_REQUEST:
        raise FrameError(f"The message length is {length}; at least {MIN_REQUEST} bytes are required.")
    if length > MAX_REQUEST:
        raise FrameError(f"The message length is {length}; at most {MAX_REQUEST} bytes are allowed.")
    body = _read_exactly(read, length)
    if len(body) < length:
        raise FrameError(f"The input ended inside a message ({len(body)} of {length} bytes).")
    return parse_message(body)


class ResponseTooLarge(ValueError):
    """A response over MAX_RESPONSE bytes: never sent."""


def encode_message(message: dict[str, Any]) -> bytes:
    """One frame: the length and the JSON (ASCII; non-ASCII is escaped)."""
    import json

    return frame(json.dumps(message, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii"))


def frame(body: bytes) -> bytes:
    """One frame of ``body``, JSON that is already encoded as :func:`encode_message` does."""
    if len(body) > MAX_RESPONSE:
        raise ResponseTooLarge(f"The response would be {len(body)} bytes; at most {MAX_RESPONSE} are allowed.")
    return HEADER.pack(len(body)) + body
