import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from cardbridge.errors import PinIncorrectError, PinInvalidLengthError
from cardbridge.model import Purpose, SignatureAlgorithm
from cardbridge.pkcs11.backend import ModuleBackend, Pkcs11Token
from tests.softhsm import SoftHsm

pytestmark = pytest.mark.softhsm


@pytest.fixture(scope="module")
def backend(softhsm: SoftHsm) -> ModuleBackend:
    return ModuleBackend(softhsm.module)


def _token(backend: ModuleBackend, label: str) -> Pkcs11Token:
    tokens = backend.executor.submit(backend.tokens).result()
    (token,) = [t for t in tokens if t.info.label == label]
    return token


def _on_worker(backend: ModuleBackend, fn, *args):  # type: ignore[no-untyped-def]
    return backend.executor.submit(fn, *args).result()


def test_lists_tokens_with_certificates_by_purpose(backend: ModuleBackend, softhsm: SoftHsm) -> None:
    tokens = _on_worker(backend, backend.tokens)
    assert {t.info.label for t in tokens} >= set(softhsm.labels)
    token = _token(backend, "two-auth")
    purposes = sorted(c.purpose for c in _on_worker(backend, token.certificates))
    assert purposes == [Purpose.AUTHENTICATION, Purpose.AUTHENTICATION, Purpose.SIGNING]


def test_runs_on_one_worker_thread(backend: ModuleBackend) -> None:
    import threading

    names = {backend.executor.submit(lambda: threading.current_thread().name).result() for _ in range(5)}
    assert len(names) == 1 and next(iter(names)).startswith("pkcs11-")


@pytest.mark.parametrize(("label", "jws"), [("p256", "ES256"), ("p384", "ES384"), ("rsa", "RS256"), ("rsa", "PS256")])
def test_signatures_verify_with_cryptography(backend: ModuleBackend, label: str, jws: str) -> None:
    token = _token(backend, label)
    cert = next(c for c in _on_worker(backend, token.certificates) if c.purpose is Purpose.AUTHENTICATION)
    algorithm = SignatureAlgorithm.from_jws(jws)
    assert algorithm in _on_worker(backend, token.supported_algorithms, cert)
    hash_cls = {"SHA-256": hashes.SHA256, "SHA-384": hashes.SHA384}[algorithm.hash_function]
    message = b"message to sign"
    digest = hashlib.new(algorithm.hash_function.replace("-", "").lower(), message).digest()
    signature = _on_worker(backend, token.sign_digest, cert, bytearray(b"1234"), digest, algorithm)
    from cryptography import x509

    key = x509.load_der_x509_certificate(cert.der).public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        half = len(signature) // 2
        der = encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))
        key.verify(der, message, ec.ECDSA(hash_cls()))
    else:
        assert isinstance(key, rsa.RSAPublicKey)
        pad = padding.PKCS1v15() if jws.startswith("RS") else padding.PSS(padding.MGF1(hash_cls()), padding.PSS.AUTO)
        key.verify(signature, message, pad, hash_cls())


def test_wrong_pin_and_bad_length(backend: ModuleBackend) -> None:
    token = _token(backend, "p256")
    cert = next(c for c in _on_worker(backend, token.certificates) if c.purpose is Purpose.AUTHENTICATION)
    algorithm = SignatureAlgorithm.from_jws("ES256")
    with pytest.raises(PinIncorrectError):
        _on_worker(backend, token.sign_digest, cert, bytearray(b"9999"), b"\x00" * 32, algorithm)
    with pytest.raises(PinInvalidLengthError) as info:
        _on_worker(backend, token.sign_digest, cert, bytearray(b"12"), b"\x00" * 32, algorithm)
    assert info.value.details == {"minLength": 4, "maxLength": 255}
    status = _on_worker(backend, token.pin_status, cert)
    assert not status.blocked and not status.protected_path
    # After the failures the right PIN still works: nothing was locked or left logged in.
    assert len(_on_worker(backend, token.sign_digest, cert, bytearray(b"1234"), b"\x00" * 32, algorithm)) == 64
