#!/usr/bin/env python3
"""atheris harness: the HTTP API's request decoding (guards and bodies).

Input: one byte that picks the endpoint, then header lines (``Name: value``), a blank
line, and the body. Properties checked on each input:

- the guards (``check_host``, ``check_origin_header``, ``check_body_headers``) pass or
  refuse with HOST_NOT_ALLOWED, ORIGIN_NOT_ALLOWED, UNSUPPORTED_MEDIA_TYPE or
  REQUEST_TOO_LARGE, nothing else; when they pass, Host and Origin are the bridge's own
  and an allowed origin, and the body is uncompressed JSON;
- each endpoint's decoder (``cardbridge.server.decode``) returns its request or refuses
  with a 400 code, nothing else; what it accepted has a nonce of 44-128 visible ASCII
  characters, a language tag, a hash of its hash function's length;
- the strict JSON reader returns a value or StrictJsonError, and what it returned reads
  back equal from ``json.dumps``.

Run: ``make fuzz`` (all harnesses), or ``.venv/bin/python fuzz/fuzz_http_request.py
-max_total_time=60 fuzz/corpus/http_request fuzz/seeds/http_request`` (libFuzzer flags).
Without atheris the module still imports, so the suite can run ``TestOneInput`` on seeds.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Coroutine
from typing import Any, TypeVar, cast

try:
    import atheris
except ModuleNotFoundError:  # the test suite imports this file without atheris
    atheris = None

# Coverage instrumentation only when run as the fuzzer, not when the suite imports this file.
_INSTRUMENT = atheris is not None and __name__ == "__main__"

with atheris.instrument_imports(include=["cardbridge"]) if _INSTRUMENT else contextlib.nullcontext():
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request
    from multidict import CIMultiDict

    from cardbridge import strictjson
    from cardbridge.authtoken import NONCE_MAX_LENGTH, NONCE_MIN_LENGTH
    from cardbridge.errors import CardbridgeError, Code, InvalidInputError
    from cardbridge.i18n import is_language_tag
    from cardbridge.model import HASH_LENGTHS
    from cardbridge.server.decode import DECODERS, AuthenticateRequest, SignRequest
    from cardbridge.server.guards import check_body_headers, check_host, check_origin_header
    from cardbridge.server.problems import http_status
    from cardbridge.server.settings import SERVICE, SETTINGS, ServerSettings
    from cardbridge.service import CardService

PORT = 24231
ORIGIN = "https://login.example.no"
SETTINGS_ = ServerSettings(port=PORT, allowed_origins=frozenset({ORIGIN}))
APP = web.Application()
APP[SETTINGS] = SETTINGS_
APP[SERVICE] = CardService([])  # no cards, no policy: the Origin guard checks the allow-list only
PATHS = sorted(DECODERS)
T = TypeVar("T")
GUARD_CODES = {Code.HOST_NOT_ALLOWED, Code.ORIGIN_NOT_ALLOWED, Code.UNSUPPORTED_MEDIA_TYPE, Code.REQUEST_TOO_LARGE}


def _headers(block: bytes) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for line in block.decode("latin-1").split("\n"):
        name, sep, value = line.partition(":")
        if sep and name.strip():
            headers.add(name.strip(), value.strip())
    return headers


def _at_once(step: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that finishes without waiting: the Origin guard of a service
    with no policy (it reads no file, so nothing goes to a worker thread). No event loop."""
    try:
        step.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    step.close()
    raise AssertionError("the Origin guard waited for something")


def _guards(path: str, headers: CIMultiDict[str]) -> None:
    request = make_mocked_request("POST", path, headers=headers, app=APP)
    try:
        check_host(request)
        origin = _at_once(check_origin_header(request))
        check_body_headers(request)
    except CardbridgeError as refused:
        assert refused.code in GUARD_CODES, refused.code
        return
    assert headers.getall("Host") == [headers["Host"]] and headers["Host"] in SETTINGS_.hosts()
    assert origin == ORIGIN
    assert request.content_type == "application/json"


def _decode(path: str, body: bytes) -> None:
    try:
        decoded = DECODERS[path](body)
    except InvalidInputError as refused:
        assert http_status(refused.code) == 400, refused.code
        return
    lang = getattr(decoded, "lang", None)
    assert lang is None or is_language_tag(lang)
    if isinstance(decoded, AuthenticateRequest):
        nonce = decoded.challenge_nonce
        assert NONCE_MIN_LENGTH <= len(nonce) <= NONCE_MAX_LENGTH and all("!" <= c <= "~" for c in nonce)
    if isinstance(decoded, SignRequest):
        assert len(decoded.digest) == HASH_LENGTHS[decoded.hash_function]


def _json(body: bytes) -> None:
    try:
        value = strictjson.loads(body)
    except strictjson.StrictJsonError:
        return
    assert strictjson.loads(json.dumps(value)) == value


def TestOneInput(data: bytes) -> None:
    path = PATHS[data[0] % len(PATHS)] if data else PATHS[0]
    block, _, body = data[1:].partition(b"\n\n")
    _guards(path, _headers(block))
    _decode(path, body)
    _decode(path, data)  # the whole input as a body too
    _json(body)


if __name__ == "__main__":
    from _harness import run  # this folder is first on sys.path when the harness runs

    run(TestOneInput)
