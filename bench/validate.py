"""Tokens validated per second by AuthTokenValidator (no OCSP), next to bare signature checks.

Both sides get the same tokens, made with software keys and development-CA certificates
(several citizens per key type). "bare" is what any validator must at least do: one
``cryptography`` verify of each token's signature over H(origin) || H(nonce), with the
public keys already loaded and the signatures already in DER. The two are measured in
alternating rounds in one run, so machine noise hits both alike; the ratio is
validator / bare (goal: at least 0.5). Also printed, for the record: the validator with its
chain cache turned off (every token's chain built and checked by pyhanko-certvalidator).

Run: python bench/validate.py   (about 10–20 seconds; stops by itself)
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from cardbridge.authtoken import AuthToken, signing_input
from cardbridge.emulator.devpki import Citizen, DevCA, PrivateKey
from cardbridge.model import Purpose, SignatureAlgorithm
from cardbridge.portal import AuthTokenValidator

ORIGIN = "https://login.example.no"
NONCE = "Q2FyZGJyaWRnZSBiZW5jaG1hcmsgbm9uY2UgMDEyMzQ="
CITIZENS_PER_KIND = 4
ROUNDS = 3
ROUND_SECONDS = 0.4
HASHES = {"SHA-256": hashes.SHA256(), "SHA-384": hashes.SHA384(), "SHA-512": hashes.SHA512()}
KINDS = {
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ES384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "PS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
}


@dataclass
class Case:
    token: str
    verify: Callable[[], None]  # the bare check of the same signature


def make_case(ca: DevCA, key: PrivateKey, algorithm: str, number: int) -> Case:
    alg = SignatureAlgorithm.from_jws(algorithm)
    hash_algorithm = HASHES[alg.hash_function]
    citizen = Citizen(given_name=f"Kari{number}", birth=dt.date(1980 + number, 3, 14))
    cert = ca.issue(key.public_key(), citizen, Purpose.AUTHENTICATION)
    message = signing_input(ORIGIN, NONCE, alg.hash_function)
    public_key = key.public_key()
    verify: Callable[[], None]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        der_signature = key.sign(message, ec.ECDSA(hash_algorithm))
        r, s = decode_dss_signature(der_signature)
        half = (key.curve.key_size + 7) // 8
        signature = r.to_bytes(half, "big") + s.to_bytes(half, "big")
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        assert encode_dss_signature(r, s) == der_signature  # what the validator rebuilds from r || s

        def verify() -> None:
            public_key.verify(der_signature, message, ec.ECDSA(hash_algorithm))
    else:
        pad: padding.AsymmetricPadding = (
            padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=hash_algorithm.digest_size)
            if alg.padding == "PSS"
            else padding.PKCS1v15()
        )
        signature = key.sign(message, pad, hash_algorithm)
        assert isinstance(public_key, rsa.RSAPublicKey)

        def verify() -> None:
            public_key.verify(signature, message, pad, hash_algorithm)

    token = AuthToken(cert.public_bytes(serialization.Encoding.DER), algorithm, signature).to_json()
    return Case(token, verify)


def rate(work: Callable[[], None], count: int, seconds: float) -> tuple[int, float]:
    """Run ``work`` (which handles ``count`` tokens) for about ``seconds``: (tokens, elapsed)."""
    done = 0
    start = time.perf_counter()
    while True:
        work()
        done += count
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done, elapsed


def measure(cases: list[Case], validators: dict[str, AuthTokenValidator]) -> dict[str, float]:
    tokens = [case.token for case in cases]
    verifies = [case.verify for case in cases]

    def bare() -> None:
        for verify in verifies:
            verify()

    def with_validator(validator: AuthTokenValidator) -> Callable[[], None]:
        def run() -> None:
            for token in tokens:
                validator.validate(token, NONCE)

        return run

    runs: dict[str, Callable[[], None]] = {"bare": bare}
    runs.update({name: with_validator(v) for name, v in validators.items()})
    for run in runs.values():  # warm up: caches filled, every token checked once
        run()
    totals = {name: [0, 0.0] for name in runs}
    for _ in range(ROUNDS):  # alternate, so drift and noise hit every side alike
        for name, run in runs.items():
            seconds = ROUND_SECONDS if name != "validator, no chain cache" else ROUND_SECONDS / 2
            done, elapsed = rate(run, len(tokens), seconds)
            totals[name][0] += done
            totals[name][1] += elapsed
    return {name: done / elapsed for name, (done, elapsed) in totals.items()}


def main() -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        ca = DevCA.load_or_create(Path(folder))
        groups: dict[str, list[Case]] = {}
        for algorithm, make_key in KINDS.items():
            groups[algorithm] = [make_case(ca, make_key(), algorithm, n) for n in range(CITIZENS_PER_KIND)]
        groups["mixed"] = [case for cases in list(groups.values()) for case in cases]

        def validators() -> dict[str, AuthTokenValidator]:
            return {
                "validator": AuthTokenValidator(ORIGIN, [ca.certificate]),
                "validator, no chain cache": AuthTokenValidator(ORIGIN, [ca.certificate], chain_cache_size=0),
            }

        print(f"{'tokens':<8} {'validator/s':>12} {'bare/s':>10} {'ratio':>7}   {'no cache/s':>10} {'ratio':>7}")
        ratios: dict[str, float] = {}
        for name, cases in groups.items():
            figures = measure(cases, validators())
            ratio = figures["validator"] / figures["bare"]
            cold = figures["validator, no chain cache"]
            ratios[name] = ratio
            print(
                f"{name:<8} {figures['validator']:>12.0f} {figures['bare']:>10.0f} {ratio:>7.2f}"
                f"   {cold:>10.0f} {cold / figures['bare']:>7.2f}"
            )
    verdict = "met" if ratios["mixed"] >= 0.5 else "NOT met"
    print(f"goal validator/bare >= 0.5 on the mixed set: {verdict} ({ratios['mixed']:.2f})")
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
