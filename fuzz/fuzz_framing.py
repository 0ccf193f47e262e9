#!/usr/bin/env python3
"""atheris harness: the native-messaging framing and the host's request check.

Input: the bytes the browser writes to the host's stdin. Properties checked on each input:

- ``read_message`` returns a JSON object or raises FrameError / EndOfInput, nothing else;
- it never reads past the frame it announced, and reading in small chunks gives the same;
- what it accepted encodes again (``encode_message``) and reads back equal;
- ``check_request`` returns a checked command (known command, exactly its arguments, all
  strings) or raises InvalidInputError with INVALID_ARGUMENT (INVALID_NONCE, INVALID_ORIGIN for those arguments).

Run: ``make fuzz`` (all harnesses), or ``.venv/bin/python fuzz/fuzz_framing.py
-max_total_time=60 fuzz/corpus/framing fuzz/seeds/framing`` (libFuzzer flags). Without
atheris the module still imports, so the suite can run ``TestOneInput`` on the seeds.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

try:
    import atheris
except ModuleNotFoundError:  # the test suite imports this file without atheris
    atheris = None

# Coverage instrumentation only when run as the fuzzer, not when the suite imports this file.
_INSTRUMENT = atheris is not None and __name__ == "__main__"

with atheris.instrument_imports(include=["cardbridge"]) if _INSTRUMENT else contextlib.nullcontext():
    from cardbridge import schema
    from cardbridge.errors import InvalidInputError
    from cardbridge.nativemsg.framing import (
        HEADER,
        MAX_REQUEST,
        MIN_REQUEST,
        EndOfInput,
        FrameError,
        encode_message,
        read_message,
    )
    from cardbridge.nativemsg.host import check_request


def _read(data: bytes, chunk: int) -> tuple[dict[str, Any] | None, int]:
    stream = io.BytesIO(data)
    try:
        message = read_message(lambda n: stream.read(min(n, chunk)))
    except (FrameError, EndOfInput):
        return None, stream.tell()
    return message, stream.tell()


def TestOneInput(data: bytes) -> None:
    message, consumed = _read(data, 1 << 20)
    chunked, consumed_chunked = _read(data, 7)
    assert (chunked, consumed_chunked) == (message, consumed), "chunked reading differs"
    if message is None:
        return
    assert isinstance(message, dict)
    (length,) = HEADER.unpack(data[: HEADER.size])
    assert MIN_REQUEST <= length <= MAX_REQUEST
    assert consumed == HEADER.size + length, "read past the frame"
    frame = encode_message(message)  # accepted input is plain JSON: it must encode
    if MIN_REQUEST <= len(frame) - HEADER.size <= MAX_REQUEST:
        again, _ = _read(frame, 1 << 20)
        assert again == message, "round trip differs"
    try:
        command, arguments = check_request(message)
    except InvalidInputError as refused:
        assert refused.code in ("INVALID_ARGUMENT", "INVALID_NONCE", "INVALID_ORIGIN"), refused.code
        return
    required, optional = schema.fields(schema.NATIVE_COMMANDS[command], origin=True)
    assert required <= set(arguments) <= required | optional
    assert all(isinstance(value, str) for value in arguments.values())


if __name__ == "__main__":
    from _harness import run  # this folder is first on sys.path when the harness runs

    run(TestOneInput)
