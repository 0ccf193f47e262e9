"""The HTTP API in process (aiohttp's test client) against SoftHSM2 tokens."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_runner import BaseRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from multidict import CIMultiDict

from cardbridge.errors import PinIncorrectError
from cardbridge.pinentry import PinRequest
from cardbridge.server import ServerSettings, create_app, make_runner
from cardbridge.server.problems import problem
from cardbridge.service import CardService, open_backends
from tests.conftest import ScriptedPinentry
from tests.server.conftest import GATED_PINENTRY, ORIGIN, Gate, conforms, free_port, nonce, process_gone
from tests.softhsm import SoftHsm
from tests.test_i18n import BAD_LANGS
from tests.verify import verify_token

pytestmark = pytest.mark.softhsm

MakeClient = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def service(softhsm: SoftHsm) -> AsyncIterator[CardService]:
    svc = CardService(open_backends([softhsm.module]), user_timeout=20)
    yield svc
    await svc.aclose()


class BridgeTestServer(TestServer):
    """aiohttp's test server with the bridge's own runner (its limits and connection handler)."""

    def __init__(self, app: web.Application, settings: ServerSettings, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.settings = settings

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return make_runner(self.app, self.settings)


@pytest.fixture
def make_client(aiohttp_client: Any, service: CardService) -> MakeClient:
    async def make(**overrides: Any) -> TestClient[web.Request, web.Application]:
        port = free_port()
        options: dict[str, Any] = {
            "port": port,
            "allowed_origins": frozenset({ORIGIN}),
            "token_label": "p256",
            "pinentry_program": ScriptedPinentry.program,
            **overrides,
        }
        settings = ServerSettings(**options)
        client: TestClient[web.Request, web.Application] = await aiohttp_client(
            BridgeTestServer(create_app(service, settings), settings, port=port)
        )
        return client

    return make


@pytest.fixture
async def client(make_client: MakeClient, pinentry: ScriptedPinentry) -> TestClient[web.Request, web.Application]:
    return await make_client()


async def check(response: Any, path: str, method: str = "POST") -> dict[str, Any]:
    """The JSON body, after checking it against the OpenAPI document."""
    body = await response.json(content_type=None)
    conforms(path, method, response.status, response.headers["Content-Type"], body)
    return dict(body)


async def problem_of(response: Any, path: str, status: int, code: str, method: str = "POST") -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = await check(response, path, method)
    assert body["code"] == code and body["status"] == status
    assert "Traceback" not in json.dumps(body)
    return body


def origin_headers(origin: str = ORIGIN) -> dict[str, str]:
    return {"Origin": origin}


# -- guards ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:{port}",
        "127.0.0.1:1",
        "localhost",
        "127.0.0.1",
        "LOCALHOST:{port}",
        "127.0.0.1.nip.io:{port}",
        "0.0.0.0:{port}",
        "[::ffff:127.0.0.1]:{port}",
        "",
    ],
)
async def test_host_must_be_the_bridge_itself(client: TestClient[Any, Any], host: str) -> None:
    port = client.port
    response = await client.get("/v1/status", headers={"Host": host.format(port=port), "Origin": ORIGIN})
    await problem_of(response, "/v1/status", 403, "HOST_NOT_ALLOWED", "GET")
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
async def test_each_loopback_host_is_accepted(client: TestClient[Any, Any], host: str) -> None:
    response = await client.get("/v1/status", headers={"Host": f"{host}:{client.port}", "Origin": ORIGIN})
    assert response.status == 200
    await check(response, "/v1/status", "GET")


BAD_ORIGINS = [
    "null",
    "https://login.example.no.evil.example",
    "http://login.example.no",
    "https://login.example.no/",
    "https://LOGIN.example.no",
    "https://login.example.no:443",
    "https://evil-login.example.no",
    "https://example.no",
    "",
]


@pytest.mark.parametrize("origin", BAD_ORIGINS)
async def test_origin_not_allowed(client: TestClient[Any, Any], pinentry: ScriptedPinentry, origin: str) -> None:
    pinentry.respond("1234")
    for method, path, kwargs in [
        ("GET", "/v1/status", {}),
        ("POST", "/v1/authenticate", {"json": {"challengeNonce": nonce()}}),
        ("GET", "/v1/events", {}),
    ]:
        response = await client.request(method, path, headers=origin_headers(origin), **kwargs)
        await problem_of(response, path, 403, "ORIGIN_NOT_ALLOWED", method)
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]
    assert pinentry.dialogs() == []


async def test_origin_missing_or_twice(client: TestClient[Any, Any]) -> None:
    response = await client.get("/v1/status")
    await problem_of(response, "/v1/status", 403, "ORIGIN_NOT_ALLOWED", "GET")
    twice = CIMultiDict([("Origin", ORIGIN), ("Origin", ORIGIN)])
    response = await client.get("/v1/status", headers=twice)
    await problem_of(response, "/v1/status", 403, "ORIGIN_NOT_ALLOWED", "GET")
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_openapi_without_origin_but_not_with_a_bad_one(client: TestClient[Any, Any]) -> None:
    response = await client.get("/v1/openapi.json")
    assert response.status == 200
    doc = await response.json()
    assert doc["openapi"].startswith("3.1") and "/v1/authenticate" in doc["paths"]
    response = await client.get("/v1/openapi.json", headers=origin_headers("https://evil.example"))
    assert response.status == 403


async def test_preflight_from_an_allowed_origin(client: TestClient[Any, Any]) -> None:
    for path in ("/v1/authenticate", "/v1/status", "/v1/sign"):
        response = await client.options(
            path,
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert response.status == 204
        h = response.headers
        assert h["Access-Control-Allow-Origin"] == ORIGIN
        assert "Origin" in h["Vary"]
        assert "POST" in h["Access-Control-Allow-Methods"]
        assert "content-type" in h["Access-Control-Allow-Headers"].lower()
        assert int(h["Access-Control-Max-Age"]) > 0
        assert "Access-Control-Allow-Private-Network" not in h
        assert "Access-Control-Allow-Credentials" not in h
    response = await client.options(
        "/v1/authenticate",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Private-Network"] == "true"


async def test_preflight_from_another_origin_is_refused_without_cors(client: TestClient[Any, Any]) -> None:
    response = await client.options(
        "/v1/authenticate",
        headers={
            "Origin": "https://login.example.no.evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert response.status == 403
    assert not [h for h in response.headers if h.lower().startswith("access-control-")]


async def test_every_response_to_an_allowed_origin_names_it(client: TestClient[Any, Any]) -> None:
    responses = [
        await client.get("/v1/status", headers=origin_headers()),
        await client.post("/v1/authenticate", headers=origin_headers(), json={"challengeNonce": "short"}),
        await client.post("/v1/authenticate", headers=origin_headers(), data=b"{}"),  # no JSON content type
        await client.get("/v1/nothing", headers=origin_headers()),
        await client.get("/v1/authenticate", headers=origin_headers()),
    ]
    assert [r.status for r in responses] == [200, 400, 415, 404, 405]
    for response in responses:
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "Origin" in response.headers["Vary"]
        assert "Access-Control-Allow-Credentials" not in response.headers
    assert responses[4].headers["Allow"] == "POST"


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"]
)
async def test_post_body_must_be_json(
    client: TestClient[Any, Any], pinentry: ScriptedPinentry, content_type: str | None
) -> None:
    headers = origin_headers()
    if content_type:
        headers["Content-Type"] = content_type
    body = json.dumps({"challengeNonce": nonce()}).encode()
    response = await client.post("/v1/authenticate", data=body, headers=headers, skip_auto_headers=["Content-Type"])
    await problem_of(response, "/v1/authenticate", 415, "UNSUPPORTED_MEDIA_TYPE")
    assert pinentry.dialogs() == []


async def test_body_over_16_kib(client: TestClient[Any, Any], pinentry: ScriptedPinentry) -> None:
    big = json.dumps({"challengeNonce": nonce(), "lang": "x" * 17000})
    response = await client.post(
        "/v1/authenticate", data=big, headers={**origin_headers(), "Content-Type": "application/json"}
    )
    await problem_of(response, "/v1/authenticate", 413, "REQUEST_TOO_LARGE")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read with the limit
        for _ in range(20):
            yield b" " * 1024
        yield json.dumps({"challengeNonce": nonce()}).encode()

    response = await client.post(
        "/v1/authenticate", data=chunks(), headers={**origin_headers(), "Content-Type": "application/json"}
    )
    await problem_of(response, "/v1/authenticate", 413, "REQUEST_TOO_LARGE")
    assert pinentry.dialogs() == []


DUPLICATE_KEYS = '{"challengeNonce": "' + "A" * 44 + '", "challengeNonce": "' + "B" * 44 + '"}'
BAD_BODIES: list[tuple[str, Any, str]] = [
    ("/v1/authenticate", {"challengeNonce": "A" * 43}, "INVALID_NONCE"),
    ("/v1/authenticate", {"challengeNonce": "A" * 129}, "INVALID_NONCE"),
    ("/v1/authenticate", {"challengeNonce": "A" * 43 + " "}, "INVALID_NONCE"),
    ("/v1/authenticate", {"challengeNonce": 12345}, "INVALID_ARGUMENT"),
    ("/v1/authenticate", {}, "INVALID_ARGUMENT"),
    ("/v1/authenticate", {"challengeNonce": "A" * 44, "pin": "1234"}, "INVALID_ARGUMENT"),
    ("/v1/authenticate", {"challengeNonce": "A" * 44, "lang": "nb\nx"}, "INVALID_ARGUMENT"),
    *(("/v1/authenticate", {"challengeNonce": "A" * 44, "lang": lang}, "INVALID_ARGUMENT") for lang in BAD_LANGS),
    *(("/v1/signing-certificate", {"lang": lang}, "INVALID_ARGUMENT") for lang in BAD_LANGS[:4]),
    ("/v1/authenticate", ["challengeNonce"], "INVALID_ARGUMENT"),
    ("/v1/authenticate", "not json{", "INVALID_ARGUMENT"),
    (
        "/v1/authenticate",
        '{{"challengeNonce": "{}", "challengeNonce": "{}"}}'.format("A" * 44, "B" * 44),
        "INVALID_ARGUMENT",
    ),
    ("/v1/authenticate", '{"challengeNonce": NaN}', "INVALID_ARGUMENT"),
    ("/v1/authenticate", "[" * 5000 + "]" * 5000, "INVALID_ARGUMENT"),
    # Hostile JSON: a 5,000-digit number (Python refuses over 4,300 with a bare ValueError),
    # numbers that overflow, -Infinity, deep but small nesting, text after the value.
    ("/v1/authenticate", '{"challengeNonce": ' + "9" * 5000 + "}", "INVALID_ARGUMENT"),
    ("/v1/authenticate", '{"challengeNonce": "' + "A" * 44 + '", "lang": [' + "1" * 4301 + "]}", "INVALID_ARGUMENT"),
    ("/v1/authenticate", '{"challengeNonce": 1e999}', "INVALID_ARGUMENT"),
    ("/v1/authenticate", '{"challengeNonce": -Infinity}', "INVALID_ARGUMENT"),
    ("/v1/authenticate", '{"a": ' * 40 + "1" + "}" * 40, "INVALID_ARGUMENT"),
    ("/v1/authenticate", '{"challengeNonce": "' + "A" * 44 + '"} {}', "INVALID_ARGUMENT"),
    ("/v1/authenticate", '\ufeff{"challengeNonce": "' + "A" * 44 + '"}', "INVALID_ARGUMENT"),
    ("/v1/signing-certificate", {"unknown": "x"}, "INVALID_ARGUMENT"),
    (
        "/v1/sign",
        {"certificate": "AAAA", "hash": base64.b64encode(b"x" * 31).decode(), "hashFunction": "SHA-256"},
        "INVALID_ARGUMENT",
    ),
    (
        "/v1/sign",
        {"certificate": "AAAA", "hash": base64.b64encode(b"x" * 32).decode(), "hashFunction": "SHA-384"},
        "INVALID_ARGUMENT",
    ),
    (
        "/v1/sign",
        {"certificate": "AAAA", "hash": base64.b64encode(b"x" * 32).decode(), "hashFunction": "MD5"},
        "INVALID_ARGUMENT",
    ),
    ("/v1/sign", {"certificate": "AAAA", "hash": "not base64!", "hashFunction": "SHA-256"}, "INVALID_ARGUMENT"),
    (
        "/v1/sign",
        {"certificate": "A", "hash": base64.b64encode(b"x" * 32).decode(), "hashFunction": "SHA-256"},
        "INVALID_ARGUMENT",
    ),
    ("/v1/sign", {"hash": base64.b64encode(b"x" * 32).decode(), "hashFunction": "SHA-256"}, "INVALID_ARGUMENT"),
]


@pytest.mark.parametrize(
    ("path", "body", "code"), BAD_BODIES, ids=[f"{p}-{i}" for i, (p, _, _) in enumerate(BAD_BODIES)]
)
async def test_bad_input_is_400_and_opens_no_dialog(
    client: TestClient[Any, Any], pinentry: ScriptedPinentry, path: str, body: Any, code: str
) -> None:
    pinentry.respond("1234")
    data = body if isinstance(body, str) else json.dumps(body)
    response = await client.post(path, data=data, headers={**origin_headers(), "Content-Type": "application/json"})
    problem_body = await problem_of(response, path, 400, code)
    assert "1234" not in json.dumps(problem_body)
    assert pinentry.dialogs() == []


def test_the_openapi_document_states_the_one_lang_rule() -> None:
    from cardbridge.i18n import LANGUAGE_TAG_PATTERN
    from cardbridge.server import openapi_document

    schemas = openapi_document()["components"]["schemas"]
    patterns = {s["properties"]["lang"]["pattern"] for s in schemas.values() if "lang" in s.get("properties", {})}
    assert patterns == {f"^{LANGUAGE_TAG_PATTERN}$"}


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("gzip", b"this is not gzip"),
        ("gzip", gzip.compress(json.dumps({"challengeNonce": "A" * 44}).encode())),
        ("deflate", b"\x00\x01\x02"),
        ("br", b"\xff" * 10),
        ("identity, gzip", b"{}"),
    ],
)
async def test_a_compressed_body_is_refused_unread(
    client: TestClient[Any, Any], pinentry: ScriptedPinentry, encoding: str, data: bytes
) -> None:
    pinentry.respond("1234")
    response = await client.post(
        "/v1/authenticate",
        data=data,
        headers={**origin_headers(), "Content-Type": "application/json", "Content-Encoding": encoding},
    )
    await problem_of(response, "/v1/authenticate", 415, "UNSUPPORTED_MEDIA_TYPE")
    assert pinentry.dialogs() == []


async def raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    return answer


async def test_no_100_continue_before_the_guards_pass(client: TestClient[Any, Any]) -> None:
    head = (
        "POST /v1/authenticate HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {origin}\r\n"
        "Content-Type: application/json\r\nContent-Length: {length}\r\nExpect: 100-continue\r\n\r\n"
    )
    port = client.port
    refused = [
        head.format(port=port, origin="https://evil.example", length=100),
        head.format(port=port, origin=ORIGIN, length=10_000_000),
        head.format(port=port, origin=ORIGIN, length=100).replace("application/json", "text/plain"),
    ]
    for data in refused:
        answer = await raw(port, data.encode())
        assert answer.split()[1] in (b"403", b"413", b"415"), answer
    answer = await raw(port, head.format(port=port, origin=ORIGIN, length=100).encode())
    assert answer.startswith(b"HTTP/1.1 100 Continue"), answer


async def test_an_absolute_form_target_is_refused(client: TestClient[Any, Any]) -> None:
    data = f"GET http://evil.example/v1/status HTTP/1.1\r\nHost: 127.0.0.1:{client.port}\r\nOrigin: {ORIGIN}\r\n\r\n"
    answer = await raw(client.port, data.encode())
    assert answer.startswith(b"HTTP/1.1 403 ") and b"application/problem+json" in answer, answer


async def test_body_origin_must_be_the_header_origin(client: TestClient[Any, Any], pinentry: ScriptedPinentry) -> None:
    pinentry.respond("1234")
    body = {"challengeNonce": nonce(), "origin": "https://other.example.no"}
    response = await client.post("/v1/authenticate", json=body, headers=origin_headers())
    await problem_of(response, "/v1/authenticate", 403, "ORIGIN_NOT_ALLOWED")
    assert pinentry.dialogs() == []
    challenge = nonce()
    response = await client.post(
        "/v1/authenticate", json={"challengeNonce": challenge, "origin": ORIGIN}, headers=origin_headers()
    )
    assert response.status == 200
    verify_token(await check(response, "/v1/authenticate"), ORIGIN, challenge)


# -- operations --------------------------------------------------------------------------


async def test_authenticate_token_verifies(
    client: TestClient[Any, Any], pinentry: ScriptedPinentry, softhsm: SoftHsm
) -> None:
    pinentry.respond("1234")
    challenge = nonce()
    response = await client.post(
        "/v1/authenticate", json={"challengeNonce": challenge, "lang": "en"}, headers=origin_headers()
    )
    assert response.status == 200, await response.text()
    token = await check(response, "/v1/authenticate")
    assert token["algorithm"] == "ES256" and token["format"] == "web-eid:1.0"
    verify_token(token, ORIGIN, challenge)
    (desc,) = pinentry.texts("SETDESC")
    assert ORIGIN in desc and softhsm.citizen.common_name in desc
    assert "Access-Control-Allow-Origin" in response.headers


async def test_wrong_pin_then_cancel_is_a_cancel(client: TestClient[Any, Any], pinentry: ScriptedPinentry) -> None:
    pinentry.respond("9999", "CANCEL")
    response = await client.post("/v1/authenticate", json={"challengeNonce": nonce()}, headers=origin_headers())
    body = await problem_of(response, "/v1/authenticate", 403, "USER_CANCELLED")
    assert "9999" not in await response.text()
    assert set(body) <= {"type", "title", "status", "detail", "code", "text", "retriesLeft"}
    assert len(pinentry.dialogs()) == 2


def test_problem_carries_retries_left() -> None:
    response = problem(PinIncorrectError("Wrong PIN.", retries_left=2), lang="en")
    assert response.status == 403 and response.content_type == "application/problem+json"
    assert response.text is not None
    body = json.loads(response.text)
    assert body == {
        "type": "about:blank",
        "title": "Forbidden",
        "status": 403,
        "detail": "Wrong PIN.",
        "code": "PIN_INCORRECT",
        "text": "Wrong PIN. You have 2 tries left.",
        "retriesLeft": 2,
    }
    conforms("/v1/authenticate", "POST", 403, "application/problem+json", body)


def test_pin_not_active_is_403_with_the_advice_and_no_private_detail() -> None:
    from cardbridge.errors import PinNotActiveError
    from cardbridge.server import openapi_document

    error = PinNotActiveError("The card's PIN2 is not active yet.", pin="signing", country="EE")
    response = problem(error, lang="en")
    assert response.status == 403 and response.text is not None
    body = json.loads(response.text)
    assert body["code"] == "PIN_NOT_ACTIVE" and "DigiDoc4" in body["text"]
    assert set(body) == {"type", "title", "status", "detail", "code", "text"}, "no country, no PIN kind"
    for path in ("/v1/authenticate", "/v1/sign"):
        conforms(path, "POST", 403, "application/problem+json", body)
        assert "403 PIN_NOT_ACTIVE" in openapi_document()["paths"][path]["post"]["summary"]


async def test_cancel_is_user_cancelled(client: TestClient[Any, Any], pinentry: ScriptedPinentry) -> None:
    pinentry.respond("CANCEL")
    response = await client.post("/v1/authenticate", json={"challengeNonce": nonce()}, headers=origin_headers())
    await problem_of(response, "/v1/authenticate", 403, "USER_CANCELLED")


async def test_user_who_walks_away_times_out_and_the_dialog_closes(
    make_client: MakeClient, service: CardService, pinentry: ScriptedPinentry
) -> None:
    service.user_timeout = 1.5
    client = await make_client()
    pinentry.respond("HANG")
    response = await client.post("/v1/authenticate", json={"challengeNonce": nonce()}, headers=origin_headers())
    await problem_of(response, "/v1/authenticate", 408, "USER_TIMEOUT")
    (dialog,) = pinentry.dialogs()
    assert process_gone(dialog["pid"])
    assert not service.busy


async def test_unexpected_error_is_500_without_a_trace(make_client: MakeClient) -> None:
    class Broken:
        async def get_pin(self, request: PinRequest) -> bytearray:
            raise RuntimeError("secret internals")

    client = await make_client(pin_source=Broken)
    response = await client.post("/v1/authenticate", json={"challengeNonce": nonce()}, headers=origin_headers())
    body = await problem_of(response, "/v1/authenticate", 500, "INTERNAL")
    assert "secret internals" not in json.dumps(body) and "RuntimeError" not in json.dumps(body)


async def test_signing_certificate_and_sign(client: TestClient[Any, Any], pinentry: ScriptedPinentry) -> None:
    pinentry.respond("OK")  # the person agrees to share the certificate
    response = await client.post("/v1/signing-certificate", json={"lang": "en"}, headers=origin_headers())
    assert response.status == 200, await response.text()
    body = await check(response, "/v1/signing-certificate")
    assert {"cryptoAlgorithm": "ECC", "hashFunction": "SHA-256", "paddingScheme": "NONE"} in body[
        "supportedSignatureAlgorithms"
    ]
    (consent,) = pinentry.dialogs()
    assert [verb for verb, _ in consent["commands"] if verb in ("CONFIRM", "GETPIN")] == ["CONFIRM"], "no PIN"
    assert ORIGIN in pinentry.texts("SETDESC")[0]
    der = base64.b64decode(body["certificate"])
    cert = x509.load_der_x509_certificate(der)
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.content_commitment

    pinentry.respond("1234")
    digest = hashlib.sha256(b"a document").digest()
    response = await client.post(
        "/v1/sign",
        json={
            "certificate": body["certificate"],
            "hash": base64.b64encode(digest).decode(),
            "hashFunction": "SHA-256",
            "lang": "en",
        },
        headers=origin_headers(),
    )
    assert response.status == 200, await response.text()
    signed = await check(response, "/v1/sign")
    assert signed["signatureAlgorithm"] == {
        "cryptoAlgorithm": "ECC",
        "hashFunction": "SHA-256",
        "paddingScheme": "NONE",
    }
    raw = base64.b64decode(signed["signature"])
    half = len(raw) // 2
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(
        encode_dss_signature(int.from_bytes(raw[:half]), int.from_bytes(raw[half:])),
        digest,
        ec.ECDSA(Prehashed(hashes.SHA256())),
    )
    (desc,) = pinentry.texts("SETDESC")
    assert ORIGIN in desc and "sign" in desc.lower()


async def test_signing_certificate_only_when_the_person_agrees(
    client: TestClient[Any, Any], pinentry: ScriptedPinentry, softhsm: SoftHsm
) -> None:
    pinentry.respond("CANCEL")
    response = await client.post("/v1/signing-certificate", json={"lang": "nb"}, headers=origin_headers())
    body = await problem_of(response, "/v1/signing-certificate", 403, "USER_CANCELLED")
    text = json.dumps(body, ensure_ascii=False)
    assert softhsm.citizen.fodselsnummer not in text and softhsm.citizen.surname not in text and "MII" not in text
    (desc,) = pinentry.texts("SETDESC")
    assert ORIGIN in desc and softhsm.citizen.common_name in desc and "fødselsnummeret" in desc
    assert pinentry.texts("SETTITLE") == ["Del sertifikatet ditt"]


async def test_sign_refuses_a_key_that_is_also_a_login_key(
    make_client: MakeClient, pinentry: ScriptedPinentry, service: CardService
) -> None:
    # The dual-use certificate: nonRepudiation with digitalSignature and clientAuth.
    (listing,) = [t for t in await service.list_tokens() if t.info.label == "dual-use"]
    (cert,) = [c for c in listing.certificates if c.purpose.value == "signing"]
    client = await make_client(token_label="dual-use")
    other_login = hashlib.sha256(hashlib.sha256(b"https://other.example.no").digest() + b"x" * 32).digest()
    response = await client.post(
        "/v1/sign",
        json={
            "certificate": base64.b64encode(cert.der).decode(),
            "hash": base64.b64encode(other_login).decode(),
            "hashFunction": "SHA-256",
            "lang": "en",
        },
        headers=origin_headers(),
    )
    body = await problem_of(response, "/v1/sign", 422, "DUAL_USE_KEY")
    assert "signature" not in body and "log in" in body["text"]
    assert pinentry.dialogs() == [], "refused before any dialog"


async def test_sign_with_a_certificate_on_no_card_asks_for_the_card(
    client: TestClient[Any, Any], pinentry: ScriptedPinentry
) -> None:
    pinentry.respond("CANCEL")
    response = await client.post(
        "/v1/sign",
        json={
            "certificate": base64.b64encode(b"not a certificate").decode(),
            "hash": base64.b64encode(bytes(32)).decode(),
            "hashFunction": "SHA-256",
        },
        headers=origin_headers(),
    )
    await problem_of(response, "/v1/sign", 403, "USER_CANCELLED")
    (dialog,) = pinentry.dialogs()
    assert ["CONFIRM", "--one-button"] in dialog["commands"]
    (desc,) = pinentry.texts("SETDESC")
    assert desc.startswith(ORIGIN) and "sertifikatet som trengs" in desc


async def test_status_has_no_personal_data(
    make_client: MakeClient, softhsm: SoftHsm, pinentry: ScriptedPinentry
) -> None:
    other = "https://other.example.no"
    client = await make_client(allowed_origins=frozenset({ORIGIN, other}))
    response = await client.get("/v1/status", headers=origin_headers())
    status = await check(response, "/v1/status", "GET")
    tokens = status["tokens"]
    assert len(tokens) >= len(softhsm.labels) and all(t["cardPresent"] for t in tokens)
    assert status["busy"] is False and status["pcsc"]["watched"] is False
    # A token's label (on many cards the holder's name) and serial never reach a web origin.
    assert all("label" not in t and "serial" not in t for t in tokens)
    values = {v for t in tokens for v in t.values() if isinstance(v, str)}
    assert not values & set(softhsm.labels)
    text = await response.text()
    for personal in (softhsm.citizen.common_name, softhsm.citizen.id_code, "MII", "BEGIN CERTIFICATE"):
        assert personal not in text
    # An opaque id per token: stable for the origin, different for another origin.
    ids = [t["id"] for t in tokens]
    assert len(set(ids)) == len(ids)
    again = await (await client.get("/v1/status", headers=origin_headers())).json()
    assert [t["id"] for t in again["tokens"]] == ids
    elsewhere = await (await client.get("/v1/status", headers=origin_headers(other))).json()
    assert not {t["id"] for t in elsewhere["tokens"]} & set(ids)
    assert pinentry.dialogs() == []


# -- one operation at a time, and disconnects ------------------------------------------------


async def test_second_request_during_a_dialog_is_busy_and_the_first_succeeds(
    make_client: MakeClient, gate: Gate
) -> None:
    client = await make_client(pinentry_program=GATED_PINENTRY)
    challenge = nonce()
    first = asyncio.ensure_future(
        client.post("/v1/authenticate", json={"challengeNonce": challenge}, headers=origin_headers())
    )
    await asyncio.to_thread(gate.wait_open)
    for path, body in [("/v1/authenticate", {"challengeNonce": nonce()}), ("/v1/signing-certificate", {})]:
        response = await client.post(path, json=body, headers=origin_headers())
        await problem_of(response, path, 409, "BUSY")
    # The bridge still answers status while the dialog is open.
    response = await asyncio.wait_for(client.get("/v1/status", headers=origin_headers()), 5)
    assert (await check(response, "/v1/status", "GET"))["busy"] is True
    assert len(gate.dialogs()) == 1, "no second dialog"
    gate.answer("1234")
    response = await asyncio.wait_for(first, 20)
    assert response.status == 200
    verify_token(await response.json(), ORIGIN, challenge)


async def test_client_that_goes_away_closes_the_dialog(
    make_client: MakeClient, service: CardService, gate: Gate
) -> None:
    client = await make_client(pinentry_program=GATED_PINENTRY)
    _reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    body = json.dumps({"challengeNonce": nonce()}).encode()
    writer.write(
        b"POST /v1/authenticate HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nOrigin: %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (client.port, ORIGIN.encode(), len(body), body)
    )
    await writer.drain()
    (pid,) = await asyncio.to_thread(gate.wait_open)
    writer.close()
    await writer.wait_closed()
    assert await asyncio.to_thread(process_gone, pid), "the dialog was not closed"
    for _ in range(100):
        if not service.busy:
            break
        await asyncio.sleep(0.05)
    assert not service.busy
    gate.answer("1234")  # too late: nobody asks any more
    await asyncio.sleep(0.2)
    assert len(gate.dialogs()) == 1


# -- events ----------------------------------------------------------------------------------


async def next_event(stream: Any) -> tuple[str, dict[str, Any]]:
    event, data = "", ""
    while True:
        line = (await asyncio.wait_for(stream.readline(), 10)).decode().rstrip("\n")
        if line.startswith(":"):
            continue
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and event:
            return event, json.loads(data)


class FakeMonitor:
    """Copies CardMonitor's contract: subscribers called on its own thread; readers() no I/O."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[Any], None]] = []
        self.present = False

    def subscribe(self, callback: Callable[[Any], None]) -> Callable[[], None]:
        self.callbacks.append(callback)
        return lambda: self.callbacks.remove(callback)

    def readers(self) -> list[Any]:
        class Reader:
            name = "Virtual PCD 00 00"
            card_present = self.present

        return [Reader()]

    def emit(self, kind: str, **extra: Any) -> None:
        class Event:
            def to_dict(self) -> dict[str, Any]:
                return {"type": kind, "reader": "Virtual PCD 00 00", **extra}

        self.present = kind == "card-inserted"
        thread = threading.Thread(target=lambda: [cb(Event()) for cb in list(self.callbacks)])
        thread.start()
        thread.join()


async def test_events_status_first_then_card_events(make_client: MakeClient, service: CardService) -> None:
    monitor = FakeMonitor()
    service.events.watch(monitor)
    client = await make_client(heartbeat=0.2)
    response = await client.get("/v1/events", headers=origin_headers())
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    kind, data = await next_event(response.content)
    assert kind == "status"
    conforms("/v1/status", "GET", 200, "application/json", data)
    assert data["readers"] == [{"name": "Virtual PCD 00 00", "cardPresent": False}]
    monitor.emit("card-inserted")
    assert await next_event(response.content) == (
        "card-inserted",
        {"type": "card-inserted", "reader": "Virtual PCD 00 00"},
    )
    status = await (await client.get("/v1/status", headers=origin_headers())).json()
    assert status["readers"] == [{"name": "Virtual PCD 00 00", "cardPresent": True}]
    # A card event names the kind of card, never its ATR (some carry a chip serial) or module.
    card = {"atr": "3B 8E 80 01 12 34", "name": "PIV card", "driver": "piv", "module": "/x.so", "known": True}
    monitor.emit("card-removed", card=card, label="NORDMANN,KARI")
    assert await next_event(response.content) == (
        "card-removed",
        {
            "type": "card-removed",
            "reader": "Virtual PCD 00 00",
            "card": {"name": "PIV card", "driver": "piv", "known": True},
        },
    )
    response.close()
    service.events.unwatch()
    assert monitor.callbacks == []


async def test_event_streams_end_when_the_server_stops(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.get("/v1/events", headers=origin_headers())
    assert (await next_event(response.content))[0] == "status"
    await client.server.runner.shutdown()  # on_shutdown: what runner.cleanup() does first
    assert (await next_event(response.content))[0] == "server-stopping"


async def test_problem_text_speaks_the_requests_language(
    client: TestClient[Any, Any], pinentry: ScriptedPinentry
) -> None:
    pinentry.respond("CANCEL")
    response = await client.post(
        "/v1/authenticate", json={"challengeNonce": nonce(), "lang": "nn"}, headers=origin_headers()
    )
    body = await problem_of(response, "/v1/authenticate", 403, "USER_CANCELLED")
    from cardbridge.i18n import error_text

    assert body["text"] == error_text("USER_CANCELLED", "nn")
    assert body["text"] != error_text("USER_CANCELLED", "en")
    # Before any body is read the language comes from Accept-Language.
    response = await client.post(
        "/v1/authenticate",
        data=b"x",
        headers={**origin_headers(), "Content-Type": "text/plain", "Accept-Language": "en-GB,en;q=0.8"},
    )
    body = await problem_of(response, "/v1/authenticate", 415, "UNSUPPORTED_MEDIA_TYPE")
    assert body["text"] == error_text("UNSUPPORTED_MEDIA_TYPE", "en")


@pytest.mark.parametrize(
    ("lang", "expected"),
    [("et", "en"), ("fi-FI", "en"), ("nl", "en"), ("nn", "nn"), ("nb", "nb"), ("en", "en"), (None, "nb")],
)
async def test_dialog_and_problem_speak_english_for_a_language_we_lack(
    client: TestClient[Any, Any],
    pinentry: ScriptedPinentry,
    monkeypatch: pytest.MonkeyPatch,
    lang: str | None,
    expected: str,
) -> None:
    # An Estonian, Finnish or Dutch page reads English (the one catalogue those citizens can
    # read), never bokmål; ours as named; nothing named (no lang, no locale) stays bokmål.
    from cardbridge.i18n import error_text, gettext

    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(variable, raising=False)
    pinentry.respond("CANCEL")
    body_json: dict[str, str] = {"challengeNonce": nonce()}
    if lang is not None:
        body_json["lang"] = lang
    response = await client.post("/v1/authenticate", json=body_json, headers=origin_headers())
    body = await problem_of(response, "/v1/authenticate", 403, "USER_CANCELLED")
    assert body["text"] == error_text("USER_CANCELLED", expected)
    (title,) = pinentry.texts("SETTITLE")
    assert title == gettext(expected, "Log in with your ID card")
    (desc,) = pinentry.texts("SETDESC")
    assert gettext(expected, "Enter your login PIN (PIN1) if you agree.") in desc.splitlines()


async def test_accept_language_by_the_same_rule(
    client: TestClient[Any, Any], pinentry: ScriptedPinentry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Accept-Language goes through the rule a body's lang does: the most wanted of ours
    # (q counts, q=0 is "not this one"), else English for a language we lack.
    from cardbridge.i18n import error_text

    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(variable, raising=False)
    for header, expected in [
        ("fi-FI,fi;q=0.9", "en"),
        ("et;q=0.9,nn;q=0.5", "nn"),
        ("nb;q=0,de", "en"),
        ("de;q=0.2,nb;q=0.8", "nb"),
    ]:
        response = await client.post(
            "/v1/authenticate",
            data=b"x",
            headers={**origin_headers(), "Content-Type": "text/plain", "Accept-Language": header},
        )
        body = await problem_of(response, "/v1/authenticate", 415, "UNSUPPORTED_MEDIA_TYPE")
        assert body["text"] == error_text("UNSUPPORTED_MEDIA_TYPE", expected), header
    assert pinentry.dialogs() == []
