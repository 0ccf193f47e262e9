"""Properties of the HTTP request decoding (``cardbridge.server.decode``): whatever bytes a
client sends as a body, each endpoint's decoder gives its checked request or an
InvalidInputError (400), never another exception; valid bodies come back as sent.

Bounded examples, so the suite stays fast; ``fuzz/fuzz_http_request.py`` runs the same
decoders under atheris for as long as a developer likes.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cardbridge.errors import InvalidInputError
from cardbridge.i18n import is_language_tag
from cardbridge.model import HASH_LENGTHS
from cardbridge.server.decode import (
    DECODERS,
    AuthenticateRequest,
    SignRequest,
    decode_authenticate,
    decode_sign,
    decode_signing_certificate,
)
from cardbridge.server.problems import http_status

FIELDS = ["challengeNonce", "lang", "origin", "certificate", "hash", "hashFunction", "pin"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=60)
    | st.sampled_from(["nb", "en-GB", "SHA-256", "SHA-384", "A" * 44, "AAAA", "https://login.example.no"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
bodies = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), json_values, max_size=6)
nonces = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=44, max_size=128)


def decode_all(data: bytes) -> None:
    """Each endpoint's decoder: a request, or a 400 InvalidInputError; nothing else."""
    for decoder in DECODERS.values():
        refusal: InvalidInputError | None = None
        try:
            decoder(data)
        except InvalidInputError as exc:
            refusal = exc
        if refusal is not None:
            assert http_status(refusal.code) == 400, refusal.code
            assert len(refusal.message) < 300


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=2000))
def test_any_bytes(data: bytes) -> None:
    decode_all(data)


@settings(max_examples=200, deadline=None)
@given(body=bodies)
def test_any_json_object(body: dict[str, Any]) -> None:
    decode_all(json.dumps(body).encode())


@settings(max_examples=200, deadline=None)
@given(
    body=bodies,
    cut=st.integers(min_value=0, max_value=400),
    insert=st.binary(min_size=0, max_size=8),
)
def test_mutated_json(body: dict[str, Any], cut: int, insert: bytes) -> None:
    data = json.dumps(body).encode()
    cut = min(cut, len(data))
    decode_all(data[:cut] + insert + data[cut + 1 :])


# Number literals json.dumps never writes: thousands of digits, exponents that overflow.
digits = st.integers(min_value=1, max_value=6000).map(lambda n: "1" + "0" * (n - 1))
number_literals = st.one_of(
    st.builds(lambda sign, d: f"{sign}{d}", st.sampled_from(["", "-"]), digits),
    st.builds(
        lambda d, fraction, exponent: f"{d}{fraction}{exponent}",
        digits,
        st.sampled_from(["", ".5", "." + "9" * 400]),
        st.sampled_from(["", "e400", "E-400", "e+99999"]),
    ),
)


@settings(max_examples=100, deadline=None)
@given(number=number_literals, field=st.sampled_from(FIELDS), nested=st.booleans())
def test_number_literals(number: str, field: str, nested: bool) -> None:
    value = f"[{number}]" if nested else number
    decode_all(f'{{"{field}": {value}, "challengeNonce": "{"A" * 44}"}}'.encode())


@settings(max_examples=200, deadline=None)
@given(nonce=nonces, lang=st.sampled_from([None, "nb", "nn", "en", "en-GB", "se-NO-x-1"]))
def test_a_valid_authenticate_body_comes_back_as_sent(nonce: str, lang: str | None) -> None:
    body = {"challengeNonce": nonce, **({"lang": lang} if lang else {})}
    assert decode_authenticate(json.dumps(body).encode()) == AuthenticateRequest(nonce, lang)


@settings(max_examples=200, deadline=None)
@given(
    certificate=st.binary(min_size=1, max_size=300),
    hash_function=st.sampled_from(sorted(HASH_LENGTHS)),
    data=st.data(),
)
def test_a_valid_sign_body_comes_back_as_sent(certificate: bytes, hash_function: str, data: st.DataObject) -> None:
    size = HASH_LENGTHS[hash_function]
    digest = data.draw(st.binary(min_size=size, max_size=size))
    body = {
        "certificate": base64.b64encode(certificate).decode(),
        "hash": base64.b64encode(digest).decode(),
        "hashFunction": hash_function,
    }
    assert decode_sign(json.dumps(body).encode()) == SignRequest(certificate, digest, hash_function)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=40) | st.from_regex(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8}){0,3}\n?", fullmatch=True))
def test_lang_is_a_tag_or_refused(text: str) -> None:
    # The schema's lang pattern and the language rule of cardbridge.i18n (config, dialogs) agree.
    code = None
    try:
        assert decode_signing_certificate(json.dumps({"lang": text}).encode()).lang == text
    except InvalidInputError as refused:
        code = refused.code
    assert code == (None if is_language_tag(text) else "INVALID_ARGUMENT")
