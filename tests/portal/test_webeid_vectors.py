"""Real tokens made by the Web eID app (data/webeid/README.md): the validator must agree."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from cardbridge.portal import AuthTokenValidator, TokenValidationError

DATA = Path(__file__).parent / "data" / "webeid"
VECTORS: list[dict[str, Any]] = json.loads((DATA / "vectors.json").read_text(encoding="utf-8"))
EXPECTED_CODES = {"invalid-signature": "TOKEN_SIGNATURE_INVALID"}


def _validator(case: dict[str, Any], **kwargs: Any) -> AuthTokenValidator:
    return AuthTokenValidator(case["origin"], [(DATA / name).read_bytes() for name in case["trusted"]], **kwargs)


def _at(case: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(case["at"].replace("Z", "+00:00"))


def test_there_are_valid_and_invalid_vectors() -> None:
    assert {case["expect"] == "valid" for case in VECTORS} == {True, False}


@pytest.mark.parametrize("case", VECTORS, ids=[case["name"] for case in VECTORS])
def test_web_eid_vector(case: dict[str, Any]) -> None:
    validator = _validator(case)
    if case["expect"] == "valid":
        identity = validator.validate(case["token"], case["nonce"], at=_at(case))
        for field, value in case["identity"].items():
            assert getattr(identity, field) == value
        assert identity.algorithm == json.loads(case["token"])["algorithm"]
    else:
        with pytest.raises(TokenValidationError) as info:
            validator.validate(case["token"], case["nonce"], at=_at(case))
        if case["expect"] in EXPECTED_CODES:
            assert info.value.code == EXPECTED_CODES[case["expect"]]


VALID = [case for case in VECTORS if case["expect"] == "valid"]


@pytest.mark.parametrize("case", VALID, ids=[case["name"] for case in VALID])
def test_valid_vector_is_bound_to_its_origin_nonce_and_time(case: dict[str, Any]) -> None:
    at = _at(case)
    other_site = AuthTokenValidator("https://ria.ee.example.org", [(DATA / n).read_bytes() for n in case["trusted"]])
    with pytest.raises(TokenValidationError) as info:
        other_site.validate(case["token"], case["nonce"], at=at)
    assert info.value.code == "TOKEN_SIGNATURE_INVALID"
    validator = _validator(case)
    with pytest.raises(TokenValidationError) as info:
        validator.validate(case["token"], case["nonce"][:-1] + "0", at=at)
    assert info.value.code == "TOKEN_SIGNATURE_INVALID"
    with pytest.raises(TokenValidationError) as info:
        validator.validate(case["token"], case["nonce"], at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    assert info.value.code == "CERTIFICATE_EXPIRED"


@pytest.mark.parametrize("case", VALID, ids=[case["name"] for case in VALID])
def test_valid_vector_needs_its_ca(case: dict[str, Any], dev_ca: Any) -> None:
    validator = AuthTokenValidator(case["origin"], [dev_ca.certificate])
    with pytest.raises(TokenValidationError) as info:
        validator.validate(case["token"], case["nonce"], at=_at(case))
    assert info.value.code == "CERTIFICATE_UNTRUSTED"
