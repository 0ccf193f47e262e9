#!/usr/bin/env python3
"""atheris harness: the portal's token validator, from the token text to the certificate.

The first input byte picks what the rest is (modulo 4):

0. a token as the login page posts it (UTF-8 text) → ``AuthTokenValidator.validate``;
1. a certificate (DER) → the lenient certificate parser and the purpose check;
2. byte edits to a valid authentication certificate, whose token is then signed with the
   certificate's own key → ``validate``: only the CA's signature stands in the way;
3. byte edits to the text of a valid token → ``validate``.

An edit is three bytes: a 16-bit position (modulo the length) and the new byte. The
properties: every refusal is a TokenValidationError with a stable code (CERTIFICATE_* from
the certificate parser), never another exception; nothing but the unchanged certificate
validates; a token that validates proves the start-up token's certificate and algorithm
(a harmless change such as white space; nothing else can carry this run's signature).

The development CA, the citizen's key and the valid token are made afresh at start-up (in
memory). Run: ``make fuzz``, or ``.venv/bin/python fuzz/fuzz_token.py -max_total_time=60
fuzz/corpus/token fuzz/seeds/token``. Without atheris the module still imports, so the
suite can run ``TestOneInput`` on the seeds.
"""

from __future__ import annotations

import base64
import contextlib
import json
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

try:
    import atheris
except ModuleNotFoundError:  # the test suite imports this file without atheris
    atheris = None

# Coverage instrumentation only when run as the fuzzer, not when the suite imports this file.
_INSTRUMENT = atheris is not None and __name__ == "__main__"

_LIBRARIES = ["cardbridge", "asn1crypto"]
with atheris.instrument_imports(include=_LIBRARIES) if _INSTRUMENT else contextlib.nullcontext():
    from cardbridge.authtoken import AuthToken, signing_input
    from cardbridge.emulator.devpki import Citizen, DevCA
    from cardbridge.errors import Code
    from cardbridge.model import Purpose
    from cardbridge.portal import AuthTokenValidator, TokenValidationError
    from cardbridge.portal._certificate import check_purpose, parse_subject_certificate

ORIGIN = "https://login.example.no"
NONCE = "Q2FyZGJyaWRnZSBmdXp6IG5vbmNlIDAxMjM0NTY3ODk="
CODES = frozenset(Code)
MAX_EDITS = 16

with tempfile.TemporaryDirectory(prefix="cardbridge-fuzz-") as _folder:
    CA = DevCA.load_or_create(Path(_folder) / "ca")  # kept in memory; the folder goes now
KEY = ec.generate_private_key(ec.SECP256R1())
CERTIFICATE = CA.issue(KEY.public_key(), Citizen(), Purpose.AUTHENTICATION).public_bytes(serialization.Encoding.DER)
# chain_cache_size=0: every certificate goes through the chain check, not a cached answer.
VALIDATOR = AuthTokenValidator(ORIGIN, [CA.certificate], chain_cache_size=0)


def make_token(certificate: bytes) -> str:
    """An ES256 token over ORIGIN and NONCE signed with KEY, carrying ``certificate``."""
    r, s = decode_dss_signature(KEY.sign(signing_input(ORIGIN, NONCE, "SHA-256"), ec.ECDSA(hashes.SHA256())))
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return AuthToken(unverified_certificate=certificate, algorithm="ES256", signature=signature).to_json()


TOKEN = make_token(CERTIFICATE)
assert VALIDATOR.validate(TOKEN, NONCE).certificate == CERTIFICATE


def edit(target: bytes, edits: bytes) -> bytes:
    out = bytearray(target)
    for i in range(0, min(len(edits) - len(edits) % 3, 3 * MAX_EDITS), 3):
        out[int.from_bytes(edits[i : i + 2], "big") % len(out)] = edits[i + 2]
    return bytes(out)


def refused(token: str) -> str | None:
    """None when ``token`` validates; else its refusal's code (other exceptions propagate)."""
    try:
        VALIDATOR.validate(token, NONCE)
    except TokenValidationError as exc:
        assert exc.code in CODES, exc.code
        return str(exc.code)
    return None


def check_token(text: str) -> None:
    """Refused with a stable code, or it proves the valid token's certificate and algorithm
    (only a harmless change of that token, as in appVersion or white space, can)."""
    try:
        identity = VALIDATOR.validate(text, NONCE)
    except TokenValidationError as exc:
        assert exc.code in CODES, exc.code
        return
    original = json.loads(TOKEN)
    assert identity.certificate == base64.b64decode(original["unverifiedCertificate"]), "another certificate"
    assert identity.algorithm == original["algorithm"], "another algorithm"


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 4, data[1:]
    if mode == 0:
        check_token(rest.decode("utf-8", "replace"))
    elif mode == 1:
        try:
            check_purpose(parse_subject_certificate(rest))
        except TokenValidationError as exc:
            assert str(exc.code).startswith("CERTIFICATE_"), exc.code
    elif mode == 2:
        certificate = edit(CERTIFICATE, rest)
        code = refused(make_token(certificate))
        assert (code is None) == (certificate == CERTIFICATE), f"changed certificate: {code}"
    else:
        check_token(edit(TOKEN.encode("ascii"), rest).decode("ascii", "replace"))


if __name__ == "__main__":
    from _harness import run  # this folder is first on sys.path when the harness runs

    run(TestOneInput)
